"""Quota: guarantees, limits and the headroom arithmetic that keeps guarantees reachable.

A role's quota is a pair of scalar quantity vectors (Mesos 1.9+ `QuotaConfig`):

* `guarantees`: what the role's subtree is entitled to even when that exceeds its
  fair share. The allocator offers it first (the quota stage) and, while it is not
  met, keeps enough unallocated resources aside (the *headroom*) so that it stays
  reachable, even if the role has no framework yet;
* `limits`: what the subtree may never exceed. Kinds a limit does not name are
  unlimited.

What a subtree *consumes* is what its roles hold (revocable resources excluded) plus
the reservations to its roles that nobody holds: reserved resources count toward
the role they are reserved to whether or not they are in use (Mesos' quota
consumption).

Headroom. The *need* of a role is, per kind,
`max(0, guarantee - consumed, sum of its children's needs)`: a parent's guarantee
includes its children's, so what the subtree still requires is the larger of the two.
The required headroom is the sum of the top-level roles' needs; the available
headroom is everything unallocated, unreserved and non-revocable on active agents.
Giving `x` of a kind to role `R` reduces the required headroom by `min(x, cap(R))`,
where `cap(R)` is how much of the requirement `R`'s own allocations can satisfy (the
need of its top-level ancestor minus what that need would be if nothing along `R`'s
chain of ancestors had an unmet guarantee). So `R` may take, of a kind any guarantee
requires, `cap(R)` plus whatever surplus `available - required` there is:

* in the quota stage only roles with a positive `cap` are visited, and of the kinds
  guaranteed along their chain they get at most `cap` (other kinds only out of the
  surplus), which is Mesos' "allocate up to the unsatisfied guarantees";
* in the fair-share stage every role may take `cap + surplus`;
* limits cap both stages: `min over the chain of (limit - consumed)`.

Reserved resources never touch the headroom (they are not part of it) and are always
offered to their role in full. All amounts are thousandths (see `vectors`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesos.allocator import vectors
from mesos.allocator.role_tree import Role, RoleTree
from mesos.allocator.vectors import Vector
from mesos.resources import Resources
from mesos.values import scalar_from_float

QuotaSpec = Resources | Mapping[str, Any] | None


class QuotaError(ValueError):
    """An UPDATE_QUOTA the allocator refuses; the message names the role and kind."""


@dataclass(frozen=True, slots=True)
class Quota:
    """Guarantees and limits of one role, in thousandths; empty means none."""

    guarantees: Vector = field(default_factory=dict)
    limits: Vector = field(default_factory=dict)

    @classmethod
    def of(cls, guarantees: QuotaSpec = None, limits: QuotaSpec = None) -> Quota:
        """From `Resources` (scalars, any reservation), `{name: amount}` or Mesos'
        `{name: {"value": amount}}` JSON; None means none."""
        return cls(_quantities("guarantees", guarantees), _quantities("limits", limits))

    def is_default(self) -> bool:
        return not self.guarantees and not self.limits

    def to_json(self) -> dict[str, dict[str, float]]:
        """`{"guarantees": {name: amount}, "limits": {name: amount}}` in plain units."""
        return {
            "guarantees": {k: v / 1000 for k, v in sorted(self.guarantees.items())},
            "limits": {k: v / 1000 for k, v in sorted(self.limits.items())},
        }


def _quantities(what: str, spec: QuotaSpec) -> Vector:
    if spec is None:
        return {}
    if isinstance(spec, Resources):
        return vectors.scalars(spec)
    out: Vector = {}
    for name, raw in spec.items():
        value = raw.get("value") if isinstance(raw, Mapping) else raw
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise QuotaError(f"Invalid {what}: '{name}' must be a number, got {raw!r}")
        if not math.isfinite(value) or value < 0:
            raise QuotaError(f"Invalid {what}: '{name}' must be finite and >= 0, got {value}")
        millis = scalar_from_float(float(value))
        if millis or what == "limits":
            out[str(name)] = millis
    return out


def validate(quotas: Mapping[str, Quota]) -> None:
    """The rules Mesos' UPDATE_QUOTA enforces on the resulting configuration.

    Each role's guarantees must fit in its limits, and the guarantees of a role's
    children must together fit in the role's own guarantees (a child's guarantee is
    part of its parent's; a parent without quota guarantees nothing).
    """
    children: dict[str, Vector] = {}
    for role, quota in quotas.items():
        for name, amount in quota.guarantees.items():
            limit = quota.limits.get(name)
            if limit is not None and amount > limit:
                raise QuotaError(
                    f"Role '{role}': guarantee of '{name}' ({amount / 1000:g}) exceeds"
                    f" its limit ({limit / 1000:g})"
                )
        parent, sep, _ = role.rpartition("/")
        if sep and quota.guarantees:
            vectors.add(children.setdefault(parent, {}), quota.guarantees)
    for parent, total in children.items():
        own = quotas.get(parent, Quota()).guarantees
        for name, amount in total.items():
            if amount > own.get(name, 0):
                raise QuotaError(
                    f"Role '{parent}': its children's guarantees of '{name}'"
                    f" ({amount / 1000:g}) exceed its own ({own.get(name, 0) / 1000:g})"
                )


# ----------------------------------------------------------------------------- needs


def _own_need(role: Role) -> Vector:
    """`max(guarantee - consumed, children's needs)` per kind, zeros left out."""
    need = dict(role.child_need)
    consumed = role.consumed
    for name, amount in role.guarantees.items():
        gap = amount - consumed.get(name, 0)
        if gap > need.get(name, 0):
            need[name] = gap
    return need


def recompute_needs(tree: RoleTree) -> Vector:
    """Every role's `need` from scratch; returns the required headroom."""
    required: Vector = {}

    def visit(role: Role) -> Vector:
        role.child_need = {}
        for child in role.children.values():
            vectors.add(role.child_need, visit(child))
        role.need = _own_need(role)
        return role.need

    for top in tree.top_level():
        vectors.add(required, visit(top))
    return required


def propagate_needs(role: Role, required: Vector) -> None:
    """`role`'s chain consumed something more or less: refresh the needs up the chain
    and `required` (in place). A no-op when nothing on the chain has guarantees."""
    if not role.guaranteed_kinds:
        return
    node = role
    while True:
        new = _own_need(node)
        old = node.need
        node.need = new
        parent = node.parent
        assert parent is not None
        target = required if parent.parent is None else parent.child_need
        if new != old:
            vectors.subtract(target, old)
            vectors.add(target, new)
        if parent.parent is None:
            return
        node = parent


def cap(role: Role) -> Vector:
    """How much of the required headroom allocations to `role` can satisfy, per kind."""
    kinds = role.guaranteed_kinds
    if not kinds:
        return {}
    old = {k: role.need.get(k, 0) for k in kinds}
    new = {k: role.child_need.get(k, 0) for k in kinds}
    node = role
    while node.parent is not None and node.parent.parent is not None:
        parent = node.parent
        siblings = {k: parent.child_need.get(k, 0) - old[k] + new[k] for k in kinds}
        old = {k: parent.need.get(k, 0) for k in kinds}
        new = siblings
        node = parent
    return {k: old[k] - new[k] for k in kinds if old[k] > new[k]}


def limit_room(role: Role) -> Vector | None:
    """`min over the chain of (limit - consumed)`, floored at 0; None when unlimited."""
    if not role.limited:
        return None
    room: Vector = {}
    for node in role.chain():
        consumed = node.consumed
        for name, limit in node.limits.items():
            left = max(0, limit - consumed.get(name, 0))
            if left < room.get(name, left + 1):
                room[name] = left
    return room


# ----------------------------------------------------------------------------- headroom


class Headroom:
    """Available vs required headroom, and what a role may take (see the docstring)."""

    __slots__ = ("available", "required", "version")

    def __init__(self) -> None:
        self.available: Vector = {}
        self.required: Vector = {}
        # Bumped on every change of either vector (callers that change them in place
        # call `changed()`), so that derived values can be cached.
        self.version = 0

    def changed(self) -> None:
        self.version += 1

    def surplus(self) -> Vector:
        """`max(0, available - required)` for every kind the headroom requires."""
        available = self.available
        return {k: max(0, available.get(k, 0) - v) for k, v in self.required.items()}

    def allowance(self, role: Role, quota_stage: bool) -> Vector | None:
        """Most of each kind `role` may take of unreserved, non-revocable resources
        now; kinds left out (or None) are unconstrained."""
        required = self.required
        allowance: Vector = {}
        if required or (quota_stage and role.guaranteed_kinds):
            own = cap(role)
            available = self.available
            for name, amount in required.items():
                surplus = max(0, available.get(name, 0) - amount)
                allowance[name] = own.get(name, 0) + surplus
            if quota_stage:
                for name in role.guaranteed_kinds:
                    allowance[name] = own.get(name, 0)
        room = limit_room(role)
        if room is not None:
            for name, left in room.items():
                if left < allowance.get(name, left + 1):
                    allowance[name] = left
        return allowance if allowance or room is not None else None

    def hungry(self, role: Role) -> bool:
        """Whether `role` has guarantees (its own or inherited) left to satisfy."""
        return bool(role.guaranteed_kinds) and any(v > 0 for v in cap(role).values())

