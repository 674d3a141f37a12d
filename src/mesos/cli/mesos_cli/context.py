"""What every command shares: the master it talks to, and how it prints.

People get rich tables; ``--json`` gets one JSON document on stdout that scripts can
parse. Errors never go to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table

from mesos.cli.mesos_cli.client import AgentClient, MasterClient
from mesos.cli.mesos_cli.leader import resolve_master

__all__ = ["Ctx", "fmt_number", "fmt_time", "json_option", "pass_ctx"]

F = TypeVar("F", bound=Callable[..., Any])


class Ctx:
    """Options of the ``mesos`` group, and the master resolved on first use."""

    def __init__(self, master_spec: str, timeout: float, as_json: bool) -> None:
        self.master_spec = master_spec
        self.timeout = timeout
        self.as_json = as_json
        self._master: MasterClient | None = None

    def master(self) -> MasterClient:
        if self._master is None:
            self._master = MasterClient(resolve_master(self.master_spec, self.timeout), self.timeout)
        return self._master

    def agent(self, address: str) -> AgentClient:
        return AgentClient(address, self.timeout)

    def print_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=True))

    def print_table(self, columns: Sequence[str], rows: Sequence[Sequence[str]],
                    empty: str) -> None:
        """A borderless table; IDs fold rather than being cut, since people copy them."""
        if not rows:
            click.echo(empty)
            return
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        # A pipe has no width: do not wrap at 80 columns what the reader will grep.
        width = None if sys.stdout.isatty() else 1000
        Console(width=width, highlight=False, soft_wrap=False).print(table)


pass_ctx = click.make_pass_decorator(Ctx)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    obj = ctx.find_object(Ctx)
    if value and obj is not None:
        obj.as_json = True


def json_option(fn: F) -> F:
    """``--json`` on a subcommand too, so ``mesos agent list --json`` works as well."""
    option = click.option("--json", "as_json", is_flag=True, expose_value=False,
                          callback=_set_json, help="Print machine-readable JSON.")
    return option(fn)


def fmt_number(value: Any) -> str:
    if isinstance(value, int | float):
        return f"{value:g}"
    return str(value)


def fmt_time(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "-"
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
