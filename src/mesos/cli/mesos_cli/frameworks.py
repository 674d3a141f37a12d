"""``mesos framework list``: the frameworks the master knows."""

from __future__ import annotations

from typing import Any

import click

from mesos.cli.mesos_cli.context import Ctx, fmt_number, fmt_time, json_option, pass_ctx

__all__ = ["framework", "framework_state"]


def framework_state(fw: dict[str, Any], completed: bool) -> str:
    if completed:
        return "completed"
    if not fw.get("connected", True):
        return "disconnected"
    return "active" if fw.get("active") else "inactive"


def _roles(fw: dict[str, Any]) -> str:
    roles = fw.get("roles")
    return ",".join(roles) if isinstance(roles, list) else str(fw.get("role", "*"))


@click.group()
def framework() -> None:
    """Frameworks registered with the master."""


@framework.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include completed frameworks.")
@json_option
@pass_ctx
def list_frameworks(ctx: Ctx, show_all: bool) -> None:
    """List frameworks (only those still registered, unless --all)."""
    body = ctx.master().get_json("/master/frameworks")
    entries = [(fw, False) for fw in body.get("frameworks", [])]
    if show_all:
        entries += [(fw, True) for fw in body.get("completed_frameworks", [])]
    if ctx.as_json:
        ctx.print_json([{**fw, "completed": done} for fw, done in entries])
        return
    rows = []
    for fw, done in entries:
        used = fw.get("used_resources", {})
        rows.append([fw["id"], fw.get("name", ""), _roles(fw), fw.get("user", ""),
                     framework_state(fw, done), str(len(fw.get("tasks", []))),
                     fmt_number(used.get("cpus", 0.0)), fmt_number(used.get("mem", 0.0)),
                     fmt_time(fw.get("registered_time"))])
    ctx.print_table(["ID", "NAME", "ROLES", "USER", "STATE", "TASKS", "CPUS", "MEM (MB)",
                     "REGISTERED"], rows, "No frameworks.")
