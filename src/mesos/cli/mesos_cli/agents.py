"""``mesos agent ...``: list agents, and the operator calls that act on one agent."""

from __future__ import annotations

from typing import Any

import click

from mesos.cli.mesos_cli.client import address_of_pid
from mesos.cli.mesos_cli.context import Ctx, fmt_number, json_option, pass_ctx

__all__ = ["agent", "agent_state"]


def agent_state(agent: dict[str, Any]) -> str:
    if agent.get("deactivated"):
        return "deactivated"
    return "active" if agent.get("active") else "disconnected"


def _used_of_total(agent: dict[str, Any], name: str) -> str:
    used = agent.get("used_resources", {}).get(name, 0.0)
    total = agent.get("resources", {}).get(name, 0.0)
    return f"{fmt_number(used)}/{fmt_number(total)}"


@click.group()
def agent() -> None:
    """Agents registered with the master."""


@agent.command("list")
@json_option
@pass_ctx
def list_agents(ctx: Ctx) -> None:
    """List the agents with their state and used/total resources."""
    agents = ctx.master().get_json("/master/slaves")["slaves"]
    if ctx.as_json:
        ctx.print_json(agents)
        return
    rows = [[a["id"], a.get("hostname", ""), address_of_pid(a.get("pid", "")), agent_state(a),
             _used_of_total(a, "cpus"), _used_of_total(a, "mem"), _used_of_total(a, "disk")]
            for a in sorted(agents, key=lambda a: (a.get("hostname", ""), a["id"]))]
    ctx.print_table(["ID", "HOSTNAME", "ADDRESS", "STATE", "CPUS", "MEM (MB)", "DISK (MB)"],
                    rows, "No agents.")


def _agent_call(ctx: Ctx, call: str, agent_id: str, **extra: Any) -> None:
    ctx.master().call({"type": call, call.lower(): {"agent_id": {"value": agent_id}, **extra}})


@agent.command("gone")
@click.argument("agent_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def gone(ctx: Ctx, agent_id: str, yes: bool) -> None:
    """Mark an agent gone for good (MARK_AGENT_GONE): its tasks become TASK_GONE_BY_OPERATOR
    and it may never register again. This cannot be undone."""
    if not yes:
        click.confirm(f"Mark agent {agent_id} gone? It can never rejoin", abort=True)
    _agent_call(ctx, "MARK_AGENT_GONE", agent_id)
    click.echo(f"Agent {agent_id} marked gone.")


@agent.command("drain")
@click.argument("agent_id")
@click.option("--grace-period", type=click.FloatRange(min=0), default=None,
              help="Seconds each task gets to stop before it is killed.")
@click.option("--mark-gone", is_flag=True, help="Mark the agent gone once it is drained.")
@pass_ctx
def drain(ctx: Ctx, agent_id: str, grace_period: float | None, mark_gone: bool) -> None:
    """Kill the agent's tasks and then deactivate it (DRAIN_AGENT)."""
    extra: dict[str, Any] = {"mark_gone": mark_gone}
    if grace_period is not None:
        seconds = int(grace_period)
        extra["max_grace_period"] = {"seconds": seconds,
                                     "nanos": round((grace_period - seconds) * 1e9)}
    _agent_call(ctx, "DRAIN_AGENT", agent_id, **extra)
    click.echo(f"Agent {agent_id} is draining.")


@agent.command("deactivate")
@click.argument("agent_id")
@pass_ctx
def deactivate(ctx: Ctx, agent_id: str) -> None:
    """Stop offering the agent's resources; its tasks keep running (DEACTIVATE_AGENT)."""
    _agent_call(ctx, "DEACTIVATE_AGENT", agent_id)
    click.echo(f"Agent {agent_id} deactivated.")


@agent.command("reactivate")
@click.argument("agent_id")
@pass_ctx
def reactivate(ctx: Ctx, agent_id: str) -> None:
    """Offer the agent's resources again (REACTIVATE_AGENT)."""
    _agent_call(ctx, "REACTIVATE_AGENT", agent_id)
    click.echo(f"Agent {agent_id} reactivated.")
