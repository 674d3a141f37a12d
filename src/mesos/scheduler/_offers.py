"""Pure helpers for framework authors: read offers, carve resources, build tasks.

Everything here takes and returns Mesos v1 JSON shapes (plain dicts, see the
reference §3) and does no I/O, so it can be used from any event handler and tested
without a master.

Scalar amounts are counted in thousandths, as Mesos' fixed-point scalars are, so
three tasks of ``cpus:0.1`` fit exactly into an offer of ``cpus:0.3``.

Carving keeps the offer's own resource entries (role, reservations,
``allocation_info``): a task's resources are pieces of the offer, so the master
finds them contained in the offer whatever reservation format it speaks.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesos.v1 import enums

__all__ = [
    "TERMINAL_STATES",
    "command_info",
    "fit_tasks",
    "fits",
    "is_terminal",
    "launch_operation",
    "scalar",
    "scalar_resources",
    "scalars",
    "take",
    "task_info",
    "to_id",
]

Resource = dict[str, Any]
IdLike = str | Mapping[str, Any]

# Task states after which Mesos sends no further update for the task (ref §3 TaskStatus).
TERMINAL_STATES = enums.TERMINAL_STATES

_MILLI = 1000


def _milli(value: float) -> int:
    return round(float(value) * _MILLI)


def to_id(value: IdLike) -> dict[str, str]:
    """``"abc"`` or ``{"value": "abc"}`` -> ``{"value": "abc"}`` (a v1 ID message)."""
    if isinstance(value, str):
        return {"value": value}
    return {"value": str(value["value"])}


def is_terminal(state: str) -> bool:
    """Whether a ``TaskState`` name is terminal (no further updates follow)."""
    return state in TERMINAL_STATES


# --------------------------------------------------------------------------- reading


def _scalar_value(resource: Mapping[str, Any]) -> float | None:
    if resource.get("type", "SCALAR") != "SCALAR":
        return None
    scalar_ = resource.get("scalar")
    if not isinstance(scalar_, Mapping) or "value" not in scalar_:
        return None
    return float(scalar_["value"])


def scalars(resources: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Total scalar amount per resource name, across roles and reservations."""
    totals: dict[str, int] = {}
    for resource in resources:
        value = _scalar_value(resource)
        if value is not None:
            name = str(resource["name"])
            totals[name] = totals.get(name, 0) + _milli(value)
    return {name: milli / _MILLI for name, milli in totals.items()}


def scalar(resources: Iterable[Mapping[str, Any]], name: str) -> float:
    """Total scalar amount of one resource (``0.0`` when absent)."""
    return scalars(resources).get(name, 0.0)


# --------------------------------------------------------------------------- carving


def _is_reserved(resource: Mapping[str, Any]) -> bool:
    if resource.get("reservations"):
        return True
    role = resource.get("role")
    return role is not None and role != "*"


def _carvable(resource: Mapping[str, Any], allow_revocable: bool) -> bool:
    """A scalar entry that may be split: no volumes, mount disks, shared resources."""
    if _scalar_value(resource) is None:
        return False
    if "shared" in resource:
        return False
    if "revocable" in resource and not allow_revocable:
        return False
    disk = resource.get("disk")
    if isinstance(disk, Mapping):
        if "persistence" in disk or "volume" in disk:
            return False
        source = disk.get("source")
        if isinstance(source, Mapping) and source.get("type", "PATH") != "PATH":
            return False
    return True


def _with_value(resource: Mapping[str, Any], milli: int) -> Resource:
    piece = copy.deepcopy(dict(resource))
    piece["scalar"] = {"value": milli / _MILLI}
    return piece


def take(
    resources: Sequence[Mapping[str, Any]],
    wants: Mapping[str, float],
    *,
    allow_revocable: bool = False,
) -> tuple[list[Resource], list[Resource]] | None:
    """Carve scalar amounts out of ``resources``.

    Returns ``(taken, rest)``: ``taken`` are pieces of the given entries (keeping
    their role, reservations and ``allocation_info``) summing to ``wants``, and
    ``rest`` is what remains; ``None`` when the amounts do not fit. Reserved entries
    are used before unreserved ones, as Mesos' ``mesos-execute`` does. Persistent
    volumes, mount disks, shared and (unless allowed) revocable resources are never
    carved.
    """
    need = {name: _milli(amount) for name, amount in wants.items() if _milli(amount) > 0}
    for name, amount in wants.items():
        if _milli(amount) < 0:
            raise ValueError(f"Negative amount for resource '{name}': {amount}")
    order = sorted(range(len(resources)), key=lambda i: not _is_reserved(resources[i]))
    taken: list[Resource] = []
    remaining: dict[int, int] = {}
    for i in order:
        resource = resources[i]
        name = str(resource.get("name"))
        if need.get(name, 0) <= 0 or not _carvable(resource, allow_revocable):
            continue
        have = _milli(_scalar_value(resource) or 0.0)
        used = min(have, need[name])
        if used <= 0:
            continue
        need[name] -= used
        taken.append(_with_value(resource, used))
        remaining[i] = have - used
    if any(left > 0 for left in need.values()):
        return None
    rest: list[Resource] = []
    for i, resource in enumerate(resources):
        if i not in remaining:
            rest.append(copy.deepcopy(dict(resource)))
        elif remaining[i] > 0:
            rest.append(_with_value(resource, remaining[i]))
    return taken, rest


def fits(
    resources: Sequence[Mapping[str, Any]],
    wants: Mapping[str, float],
    *,
    allow_revocable: bool = False,
) -> bool:
    """Whether ``wants`` can be carved out of ``resources``."""
    return take(resources, wants, allow_revocable=allow_revocable) is not None


def fit_tasks(
    resources: Sequence[Mapping[str, Any]],
    wants: Mapping[str, float],
    count: int,
    *,
    allow_revocable: bool = False,
) -> list[list[Resource]]:
    """Carve up to ``count`` tasks of ``wants`` each; one resource list per task.

    ``wants`` must ask for something (an empty request would fit infinitely often).
    """
    if not any(_milli(v) > 0 for v in wants.values()):
        raise ValueError("A task must ask for some resources")
    out: list[list[Resource]] = []
    left: Sequence[Mapping[str, Any]] = resources
    while len(out) < count:
        carved = take(left, wants, allow_revocable=allow_revocable)
        if carved is None:
            break
        taken, left = carved
        out.append(taken)
    return out


# --------------------------------------------------------------------------- building


def scalar_resources(amounts: Mapping[str, float], *, role: str | None = None) -> list[Resource]:
    """``{"cpus": 0.5}`` -> v1 ``Resource`` JSON (unreserved unless ``role`` is given).

    ``role`` writes the pre-refinement ``"role"`` field, which every master accepts.
    """
    out: list[Resource] = []
    for name, amount in amounts.items():
        if _milli(amount) <= 0:
            continue
        resource: Resource = {"name": name, "type": "SCALAR", "scalar": {"value": amount}}
        if role is not None:
            resource["role"] = role
        out.append(resource)
    return out


def command_info(
    value: str | None = None,
    *,
    shell: bool = True,
    arguments: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    uris: Sequence[str] | None = None,
    user: str | None = None,
) -> dict[str, Any]:
    """A v1 ``CommandInfo``. With ``shell=False`` ``arguments`` is the full argv."""
    info: dict[str, Any] = {"shell": shell}
    if value is not None:
        info["value"] = value
    if arguments:
        info["arguments"] = list(arguments)
    if environment:
        info["environment"] = {
            "variables": [{"name": k, "value": v} for k, v in environment.items()]
        }
    if uris:
        info["uris"] = [{"value": uri} for uri in uris]
    if user is not None:
        info["user"] = user
    return info


def task_info(
    name: str,
    agent_id: IdLike,
    resources: Sequence[Mapping[str, Any]],
    *,
    task_id: str | None = None,
    command: Mapping[str, Any] | None = None,
    executor: Mapping[str, Any] | None = None,
    container: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> dict[str, Any]:
    """A v1 ``TaskInfo``; ``task_id`` defaults to ``name``.

    Exactly one of ``command`` (see :func:`command_info`) and ``executor`` must be
    given, as Mesos requires for a LAUNCH.
    """
    if (command is None) == (executor is None):
        raise ValueError("A task needs exactly one of 'command' and 'executor'")
    info: dict[str, Any] = {
        "name": name,
        "task_id": {"value": task_id if task_id is not None else name},
        "agent_id": to_id(agent_id),
        "resources": [dict(r) for r in resources],
    }
    if command is not None:
        info["command"] = dict(command)
    if executor is not None:
        info["executor"] = dict(executor)
    if container is not None:
        info["container"] = dict(container)
    if labels:
        info["labels"] = {"labels": [{"key": k, "value": v} for k, v in labels.items()]}
    if data is not None:
        info["data"] = base64.b64encode(data).decode("ascii")
    return info


def launch_operation(task_infos: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """An ``Offer.Operation`` of type LAUNCH for the given ``TaskInfo``s."""
    return {"type": "LAUNCH", "launch": {"task_infos": [dict(t) for t in task_infos]}}
