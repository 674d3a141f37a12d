"""``mesos quota ...`` and ``mesos weights ...``: the per-role knobs of the allocator."""

from __future__ import annotations

from typing import Any

import click

from mesos.cli.mesos_cli.context import Ctx, fmt_number, json_option, pass_ctx
from mesos.resources import Resources, ResourcesError

__all__ = ["quota", "weights"]

SHORTHANDS = ("cpus", "mem", "disk", "gpus")


def _amounts(text: str | None, option: str) -> dict[str, float]:
    """Scalar amounts from ``cpus:2;mem:1024``; ranges and sets make no sense in a quota."""
    if not text:
        return {}
    try:
        parsed = Resources.parse(text)
    except (ResourcesError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    if parsed.reservations():
        raise click.BadParameter("quota amounts take no role", param_hint=option)
    if any(item.get("type") != "SCALAR" for item in parsed.to_json()):
        raise click.BadParameter("only scalar resources (cpus, mem, ...) can be in a quota",
                                 param_hint=option)
    return {name: parsed.scalar(name) for name in parsed.names()}


def _as_message(amounts: dict[str, float]) -> dict[str, Any]:
    return {name: {"value": value} for name, value in sorted(amounts.items())}


def _flat(amounts: dict[str, Any] | None) -> str:
    if not amounts:
        return "-"
    return "; ".join(f"{name}:{fmt_number(v.get('value') if isinstance(v, dict) else v)}"
                     for name, v in sorted(amounts.items()))


@click.group()
def quota() -> None:
    """Quota of roles: guarantees and limits.

    A guarantee is held back for the role; a limit caps what it may be offered.
    """


@quota.command("get")
@click.argument("role", required=False)
@json_option
@pass_ctx
def quota_get(ctx: Ctx, role: str | None) -> None:
    """Show the quota of every role, or of ROLE."""
    status = ctx.master().call({"type": "GET_QUOTA"})["get_quota"]["status"]
    configs = [c for c in status.get("configs", []) if role is None or c.get("role") == role]
    if ctx.as_json:
        ctx.print_json(configs)
        return
    rows = [[c.get("role", ""), _flat(c.get("guarantees")), _flat(c.get("limits"))]
            for c in configs]
    ctx.print_table(["ROLE", "GUARANTEES", "LIMITS"], rows,
                    f"No quota for role '{role}'." if role else "No quota is set.")


def _shorthand_option(name: str) -> Any:
    return click.option(f"--{name}", type=click.FloatRange(min=0), default=None,
                        help=f"Guarantee and limit this much {name}.")


@quota.command("set")
@click.argument("role")
@_shorthand_option("cpus")
@_shorthand_option("mem")
@_shorthand_option("disk")
@_shorthand_option("gpus")
@click.option("--guarantee", metavar="RESOURCES", help="Guarantees, e.g. 'cpus:2;mem:1024'.")
@click.option("--limit", metavar="RESOURCES", help="Limits, e.g. 'cpus:4;mem:4096'.")
@pass_ctx
def quota_set(ctx: Ctx, role: str, cpus: float | None, mem: float | None, disk: float | None,
              gpus: float | None, guarantee: str | None, limit: str | None) -> None:
    """Replace ROLE's quota (UPDATE_QUOTA).

    --cpus/--mem/--disk/--gpus set a guarantee and an equal limit; --guarantee and
    --limit set either side on its own and win for the resources they name.
    """
    guarantees = _amounts(guarantee, "'--guarantee'")
    limits = _amounts(limit, "'--limit'")
    for name, value in zip(SHORTHANDS, (cpus, mem, disk, gpus), strict=True):
        if value is not None:
            guarantees.setdefault(name, value)
            limits.setdefault(name, value)
    if not guarantees and not limits:
        raise click.UsageError("nothing to set: give --cpus, --mem, --disk, --gpus, "
                               "--guarantee or --limit (or use 'mesos quota remove')")
    config: dict[str, Any] = {"role": role}
    if guarantees:
        config["guarantees"] = _as_message(guarantees)
    if limits:
        config["limits"] = _as_message(limits)
    ctx.master().call({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [config]}})
    click.echo(f"Quota of role '{role}' set: guarantees {_flat(config.get('guarantees'))}, "
               f"limits {_flat(config.get('limits'))}.")


@quota.command("remove")
@click.argument("role")
@pass_ctx
def quota_remove(ctx: Ctx, role: str) -> None:
    """Remove ROLE's quota (UPDATE_QUOTA with no guarantees and no limits)."""
    ctx.master().call({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": role}]}})
    click.echo(f"Quota of role '{role}' removed.")


@click.group()
def weights() -> None:
    """Weights of roles: their relative share in fair allocation."""


@weights.command("get")
@json_option
@pass_ctx
def weights_get(ctx: Ctx) -> None:
    """Show the roles whose weight was set (every other role weighs 1)."""
    infos = ctx.master().call({"type": "GET_WEIGHTS"})["get_weights"].get("weight_infos", [])
    if ctx.as_json:
        ctx.print_json(infos)
        return
    rows = [[i.get("role", ""), fmt_number(i.get("weight", 1.0))] for i in infos]
    ctx.print_table(["ROLE", "WEIGHT"], rows, "No weights are set (every role weighs 1).")


def _parse_weight(item: str) -> dict[str, Any]:
    role, sep, raw = item.partition("=")
    if not sep or not role:
        raise click.BadParameter(f"'{item}' is not ROLE=WEIGHT", param_hint="ROLE=WEIGHT")
    try:
        weight = float(raw)
    except ValueError:
        raise click.BadParameter(f"weight '{raw}' of role '{role}' is not a number",
                                 param_hint="ROLE=WEIGHT") from None
    if not weight > 0:
        raise click.BadParameter(f"weight of role '{role}' must be positive",
                                 param_hint="ROLE=WEIGHT")
    return {"role": role, "weight": weight}


@weights.command("set")
@click.argument("items", nargs=-1, required=True, metavar="ROLE=WEIGHT...")
@pass_ctx
def weights_set(ctx: Ctx, items: tuple[str, ...]) -> None:
    """Set the weight of one or more roles (UPDATE_WEIGHTS), e.g. eng=2 ops=0.5."""
    infos = [_parse_weight(item) for item in items]
    ctx.master().call({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": infos}})
    click.echo("Weights set: " + ", ".join(f"{i['role']}={fmt_number(i['weight'])}" for i in infos))
