"""``mesos maintenance ...``, ``mesos reserve`` and ``mesos unreserve``.

Thin wrappers over the master's operator calls: the master validates; what it refuses
comes back as its own message, and a call it does not have yet (501) is named.
"""

from __future__ import annotations

import json
from typing import Any

import click

from mesos.cli.mesos_cli.context import Ctx, fmt_time, json_option, pass_ctx
from mesos.errors import ValidationError
from mesos.resources import Resources, ResourcesError

__all__ = ["maintenance", "reserve", "unreserve"]


def _machine(text: str) -> dict[str, str]:
    """``HOSTNAME``, ``HOSTNAME/IP`` or ``/IP`` as a MachineID."""
    hostname, _, ip = text.partition("/")
    if not hostname and not ip:
        raise click.BadParameter(f"'{text}' names no machine", param_hint="MACHINE")
    machine = {"hostname": hostname} if hostname else {}
    if ip:
        machine["ip"] = ip
    return machine


def _machine_name(machine: dict[str, Any]) -> str:
    return "/".join(p for p in (machine.get("hostname", ""), machine.get("ip", "")) if p) or "?"


@click.group()
def maintenance() -> None:
    """Maintenance: schedules, and machines taken down or up."""


@maintenance.command("status")
@json_option
@pass_ctx
def status(ctx: Ctx) -> None:
    """Machines now draining or down (GET_MAINTENANCE_STATUS)."""
    body = ctx.master().call({"type": "GET_MAINTENANCE_STATUS"})
    state = body["get_maintenance_status"]["status"]
    if ctx.as_json:
        ctx.print_json(state)
        return
    rows = [[_machine_name(m.get("id", {})), "draining"] for m in state.get("draining_machines", [])]
    rows += [[_machine_name(m), "down"] for m in state.get("down_machines", [])]
    ctx.print_table(["MACHINE", "MODE"], rows, "No machine is draining or down.")


@maintenance.group("schedule")
def schedule() -> None:
    """The maintenance schedule: windows of machines and when they will be unavailable."""


def _seconds(duration: Any) -> float:
    return float((duration or {}).get("nanoseconds", 0)) / 1e9


@schedule.command("get")
@json_option
@pass_ctx
def schedule_get(ctx: Ctx) -> None:
    """Show the schedule (GET_MAINTENANCE_SCHEDULE)."""
    body = ctx.master().call({"type": "GET_MAINTENANCE_SCHEDULE"})
    windows = body["get_maintenance_schedule"]["schedule"].get("windows", [])
    if ctx.as_json:
        ctx.print_json({"windows": windows})
        return
    rows = []
    for window in windows:
        unavailable = window.get("unavailability", {})
        rows.append([", ".join(_machine_name(m) for m in window.get("machine_ids", [])),
                     fmt_time(_seconds(unavailable.get("start"))),
                     f"{_seconds(unavailable.get('duration')):g}s"
                     if unavailable.get("duration") else "-"])
    ctx.print_table(["MACHINES", "START", "DURATION"], rows, "The schedule is empty.")


@schedule.command("set")
@click.argument("schedule_file", type=click.File("r"))
@pass_ctx
def schedule_set(ctx: Ctx, schedule_file: Any) -> None:
    """Replace the schedule with the Schedule JSON in SCHEDULE_FILE ('-' for stdin),
    e.g. {"windows": [{"machine_ids": [{"hostname": "h1"}], "unavailability":
    {"start": {"nanoseconds": 1}}}]} (UPDATE_MAINTENANCE_SCHEDULE)."""
    try:
        body = json.load(schedule_file)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="SCHEDULE_FILE") from None
    if not isinstance(body, dict):
        raise click.BadParameter("expected a Schedule object {\"windows\": [...]}",
                                 param_hint="SCHEDULE_FILE")
    ctx.master().call({"type": "UPDATE_MAINTENANCE_SCHEDULE",
                       "update_maintenance_schedule": {"schedule": body}})
    click.echo("Maintenance schedule updated.")


@maintenance.command("down")
@click.argument("machines", nargs=-1, required=True, metavar="MACHINE...")
@pass_ctx
def down(ctx: Ctx, machines: tuple[str, ...]) -> None:
    """Take machines down (START_MAINTENANCE); MACHINE is HOSTNAME, HOSTNAME/IP or /IP."""
    ids = [_machine(m) for m in machines]
    ctx.master().call({"type": "START_MAINTENANCE", "start_maintenance": {"machines": ids}})
    click.echo("Down: " + ", ".join(_machine_name(m) for m in ids))


@maintenance.command("up")
@click.argument("machines", nargs=-1, required=True, metavar="MACHINE...")
@pass_ctx
def up(ctx: Ctx, machines: tuple[str, ...]) -> None:
    """Bring machines back up (STOP_MAINTENANCE); MACHINE is HOSTNAME, HOSTNAME/IP or /IP."""
    ids = [_machine(m) for m in machines]
    ctx.master().call({"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": ids}})
    click.echo("Up: " + ", ".join(_machine_name(m) for m in ids))


def _reserved(text: str, role: str, principal: str | None) -> list[dict[str, Any]]:
    """``cpus:1;mem:128`` as v1 Resources carrying one dynamic reservation for ``role``."""
    reservation: dict[str, Any] = {"type": "DYNAMIC", "role": role}
    if principal:
        reservation["principal"] = principal
    try:
        parsed = Resources.parse(text)
        if parsed.reservations():
            raise click.BadParameter("give unreserved amounts; --role says whose they become",
                                     param_hint="RESOURCES")
        return parsed.push_reservation(reservation).to_json()
    except (ResourcesError, ValidationError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="RESOURCES") from None


def _reservation_command(call: str, verb: str) -> click.Command:
    @click.command(verb)
    @click.argument("agent_id")
    @click.argument("resources")
    @click.option("--role", required=True, help="The role of the reservation.")
    @click.option("--principal", default=None, help="The principal that reserves.")
    @pass_ctx
    def command(ctx: Ctx, agent_id: str, resources: str, role: str,
                principal: str | None) -> None:
        body = {"agent_id": {"value": agent_id},
                "resources": _reserved(resources, role, principal)}
        ctx.master().call({"type": call, call.lower(): body})
        click.echo(f"{verb.capitalize()}d {resources} for role '{role}' on agent {agent_id}.")

    command.help = (f"{verb.capitalize()} RESOURCES such as 'cpus:1;mem:128' on AGENT_ID "
                    f"for --role, dynamically ({call}).")
    command.short_help = f"{verb.capitalize()} resources on an agent for a role."
    return command


reserve = _reservation_command("RESERVE_RESOURCES", "reserve")
unreserve = _reservation_command("UNRESERVE_RESOURCES", "unreserve")
