"""The ``mesos`` command: the root group, its options, and how failures end the process."""

from __future__ import annotations

from typing import Any

import click

from mesos import __version__
from mesos.cli.mesos_cli.agents import agent
from mesos.cli.mesos_cli.client import CliError
from mesos.cli.mesos_cli.context import Ctx
from mesos.cli.mesos_cli.frameworks import framework
from mesos.cli.mesos_cli.leader import DEFAULT_MASTER
from mesos.cli.mesos_cli.operations import maintenance, reserve, unreserve
from mesos.cli.mesos_cli.roles import quota, weights
from mesos.cli.mesos_cli.tasks import task

__all__ = ["cli", "main"]


class Group(click.Group):
    """Turns a :class:`CliError` raised anywhere below into ``error: ...`` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CliError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--master", "master", envvar="MESOS_MASTER", default=DEFAULT_MASTER,
              show_default=True, metavar="HOST:PORT|zk://HOST:PORT/PATH",
              help="The master to talk to (env MESOS_MASTER). A standby redirects to the leader.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Seconds to wait for any one HTTP answer.")
@click.version_option(__version__, prog_name="mesos")
@click.pass_context
def cli(ctx: click.Context, master: str, as_json: bool, timeout: float) -> None:
    """Operate a Mesos cluster: agents, frameworks, tasks and their sandboxes, roles,
    reservations and maintenance, through the master's HTTP API."""
    ctx.obj = Ctx(master, timeout, as_json)


for command in (agent, framework, task, quota, weights, maintenance, reserve, unreserve):
    cli.add_command(command)


def main() -> None:
    """Console entry point (click already treats a closed pipe as a quiet exit)."""
    cli.main(prog_name="mesos")
