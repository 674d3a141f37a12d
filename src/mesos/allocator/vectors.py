"""Compact scalar vectors: what the allocator counts with on its hot path.

A vector is `dict[str, int]`: resource name -> amount in thousandths (Mesos' fixed
point, the unit `Resources` stores scalars in), so every sum is exact and needs no
rounding. Only SCALAR resources are counted, as in Mesos' sorters and quota: ports
and other ranges or sets take no part in shares, quota or headroom. A shared
resource counts once, however many copies are handed out.

`scalars()` and `quota_parts()` read the internal layout of `Resources` (documented
in `mesos.resources`) directly: they run once per allocation, and going through the
public entry API would cost several times more. `shrink()` is the one place that
builds `Resources` from that layout, to cut scalars down to a quota allowance.
"""

from __future__ import annotations

from collections.abc import Mapping

from mesos.resources import Resources
from mesos.values import KIND, NAME, RES, REV, SCALAR, SHARED

Vector = dict[str, int]

# The Resources value layout (`Resources._m`): key tuple -> value.
_layout = Resources._make  # see the module docstring


def scalars(resources: Resources) -> Vector:
    """Scalar quantities of `resources` in thousandths."""
    out: Vector = {}
    for key, value in resources._m.items():
        if key[KIND] == SCALAR:
            if key[SHARED]:
                value = value[0]
            name = key[NAME]
            out[name] = out.get(name, 0) + value
    return out


def quota_parts(resources: Resources) -> tuple[Vector, Vector, dict[str, Vector]]:
    """`(non-revocable, unreserved non-revocable, {reservation role: reserved})` scalars.

    Quota consumption counts what is held except revocable resources, and
    reservations nobody holds toward the role they are reserved to; the headroom is
    what is unreserved and not revocable.
    """
    held: Vector = {}
    free: Vector = {}
    reserved: dict[str, Vector] = {}
    for key, value in resources._m.items():
        if key[KIND] != SCALAR or key[REV]:
            continue
        if key[SHARED]:
            value = value[0]
        name = key[NAME]
        held[name] = held.get(name, 0) + value
        stack = key[RES]
        if stack:
            vector = reserved.setdefault(stack[-1].role, {})
            vector[name] = vector.get(name, 0) + value
        else:
            free[name] = free.get(name, 0) + value
    return held, free, reserved


def add(vector: Vector, other: Mapping[str, int]) -> None:
    """`vector += other` in place; zero entries are dropped."""
    for name, amount in other.items():
        value = vector.get(name, 0) + amount
        if value:
            vector[name] = value
        else:
            vector.pop(name, None)


def subtract(vector: Vector, other: Mapping[str, int]) -> None:
    """`vector -= other` in place (may go negative; zero entries are dropped)."""
    for name, amount in other.items():
        value = vector.get(name, 0) - amount
        if value:
            vector[name] = value
        else:
            vector.pop(name, None)


def fits(vector: Mapping[str, int], caps: Mapping[str, int]) -> bool:
    """Whether `vector <= caps` for every kind `caps` names (other kinds are free)."""
    return all(vector.get(name, 0) <= cap for name, cap in caps.items())


def shrink(resources: Resources, caps: Mapping[str, int]) -> Resources:
    """`resources` with unreserved, non-revocable scalars cut down to `caps`.

    Reserved, revocable and non-scalar resources are kept whole; a kind `caps` does
    not name is kept whole too. Where several entries share a name (e.g. disks from
    different sources) they are taken in order until the cap is used up; shared
    resources are indivisible and kept only if they fit entirely.
    """
    left = dict(caps)
    out = {}
    changed = False
    for key, value in resources._m.items():
        name = key[NAME]
        if key[KIND] != SCALAR or key[RES] or key[REV] or name not in left:
            out[key] = value
            continue
        room = left[name]
        amount = value[0] if key[SHARED] else value
        if key[SHARED]:
            if amount <= room:
                out[key] = value
                left[name] = room - amount
            else:
                changed = True
            continue
        taken = min(amount, room)
        if taken > 0:
            out[key] = taken
            left[name] = room - taken
        if taken != amount:
            changed = True
    return _layout(out) if changed else resources
