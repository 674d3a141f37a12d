"""`audit(allocator)`: recount every incremental book from scratch and compare.

For tests (`HierarchicalAllocator.validate()` calls it after every step of the
property tests); it walks every agent, allocation and role, so it is slow on
purpose and never runs in a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesos.allocator import quota, vectors
from mesos.allocator.role_tree import Role
from mesos.allocator.state import EMPTY
from mesos.allocator.vectors import Vector

if TYPE_CHECKING:
    from mesos.allocator.hierarchical import HierarchicalAllocator


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _chain_add(books: dict[str, Vector], role: str, amount: Vector) -> None:
    while True:
        vectors.add(books.setdefault(role, {}), amount)
        head, sep, _ = role.rpartition("/")
        if not sep:
            return
        role = head


def audit(allocator: HierarchicalAllocator) -> None:
    a = allocator
    held_by_role: dict[str, Vector] = {}
    held_by_framework: dict[tuple[str, str], Vector] = {}
    consumed: dict[str, Vector] = {}
    reserved: dict[str, Vector] = {}
    pool: Vector = {}
    headroom: Vector = {}
    for agent in a._agents.values():
        allocated = EMPTY
        for (framework_id, path), held in agent.allocations.items():
            allocated = allocated + held
            framework = a._frameworks[framework_id]
            _check(
                agent.id in framework.holdings.get(path, {}),
                f"{framework_id}/{path} on {agent.id} not indexed",
            )
            amount = vectors.scalars(held)
            _chain_add(held_by_role, path, amount)
            vectors.add(held_by_framework.setdefault((framework_id, path), {}), amount)
            _chain_add(consumed, path, vectors.quota_parts(held)[0])
        _check(
            agent.available + allocated == agent.total,
            f"Agent {agent.id}: available {agent.available} + allocated {allocated}"
            f" != total {agent.total}",
        )
        _, free, unallocated = vectors.quota_parts(agent.available)
        _check(agent.avail_free == free, f"Agent {agent.id}: stale headroom part")
        _check(agent.avail_reserved == unallocated, f"Agent {agent.id}: stale reservations")
        for path, amount in unallocated.items():
            _chain_add(consumed, path, amount)
        for path, amount in vectors.quota_parts(agent.total)[2].items():
            vectors.add(reserved.setdefault(path, {}), amount)
        vectors.add(pool, vectors.scalars(agent.total))
        if agent.active:
            vectors.add(headroom, free)
        free_now = agent.active and a._allocatable(agent.available)
        _check(agent.free == free_now, f"Agent {agent.id}: stale free flag")
        _check((agent.id in a._free) == free_now, f"Agent {agent.id}: stale free set")
    _check(a._tree.pool() == pool, "Stale pool total")
    _check(a._headroom.available == headroom, "Stale available headroom")
    for role in a._tree:
        _audit_role(a, role, held_by_role, held_by_framework, consumed, reserved)
    for framework in a._frameworks.values():
        for path, agent_ids in framework.holdings.items():
            for agent_id in agent_ids:
                _check(
                    (framework.id, path) in a._agents[agent_id].allocations,
                    f"{framework.id}/{path}: holding on {agent_id} not on the agent",
                )
    needs = {role.path: dict(role.need) for role in a._tree}
    required = dict(a._headroom.required)
    _check(quota.recompute_needs(a._tree) == required, f"Stale required headroom {required}")
    for role in a._tree:
        _check(role.need == needs[role.path], f"Stale need of '{role.path}'")


def _audit_role(
    a: HierarchicalAllocator,
    role: Role,
    held_by_role: dict[str, Vector],
    held_by_framework: dict[tuple[str, str], Vector],
    consumed: dict[str, Vector],
    reserved: dict[str, Vector],
) -> None:
    path = role.path
    _check(not role.is_empty(), f"Role '{path}' is empty but kept")
    _check(
        a._tree.allocation(role) == held_by_role.get(path, {}),
        f"Role sorter allocation of '{path}' is stale",
    )
    _check(role.consumed == consumed.get(path, {}), f"Stale consumption of '{path}'")
    _check(role.reserved == reserved.get(path, {}), f"Stale reservations of '{path}'")
    for framework_id in role.frameworks.clients():  # type: ignore[attr-defined]
        _check(
            role.frameworks.allocation(framework_id)
            == held_by_framework.get((framework_id, path), {}),
            f"Framework sorter allocation of {framework_id} in '{path}' is stale",
        )
    active = role.frameworks.active_count() > 0
    _check(role.counted == active, f"Role '{path}': stale activity")
    expected = int(active) + sum(c.active_roles for c in role.children.values())
    _check(role.active_roles == expected, f"Role '{path}': stale active count")
