"""The allocator's books: every change to what is allocated, available or reserved.

All changes funnel through a few methods so that the derived books stay exact:

* `_track` / `_untrack`: resources move between an agent's `available` and one
  (framework, role) allocation. They update the role tree's sorters (subtree
  shares), the role's framework sorter, quota consumption and the headroom.
* `_set_available` / `_set_total`: an agent's available or total resources change;
  unallocated reservations count toward their role's consumption, unreserved
  non-revocable resources of active agents are the available headroom.
* `_subscribe`, `_track_role`, `_untrack_role_if_idle`, `_sync_activity`: which
  frameworks are in which role's sorter, and which of them can be offered to.

Dirty tracking for incremental cycles: an agent whose available resources grew is
*pending*; events that can make resources wanted anywhere (a framework added or
revived, quota or limits loosened) mark every free agent pending (`_touch_all`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mesos.allocator import quota, vectors
from mesos.allocator.role_tree import Role, check_roles
from mesos.allocator.state import (
    EMPTY,
    NEEDS_GPU,
    NEEDS_REGION,
    AgentState,
    AllocatorState,
    FrameworkState,
)
from mesos.allocator.vectors import Vector
from mesos.resources import Resources

_NO_RESERVATIONS: dict[str, Vector] = {}


class Books(AllocatorState):
    """Bookkeeping methods of the hierarchical allocator (see the module docstring)."""

    # ------------------------------------------------------------------ agents

    def _new_agent(self, agent: AgentState, total: Resources) -> None:
        self._agent_seq += 1
        self._agents[agent.id] = agent
        self._set_total(agent, total)
        self._tree.add_total(agent.total_q)
        self._set_available(agent, total)
        self._touch(agent)

    def _set_total(self, agent: AgentState, total: Resources) -> None:
        """Replace the agent's total: flags, reservation books (not the pool)."""
        for role_path, amount in agent.total_reserved.items():
            role = self._tree.get(role_path)
            if role is not None:
                vectors.subtract(role.reserved, amount)
                self._tree.prune(role)
        agent.total = total
        agent.total_q = vectors.scalars(total)
        agent.has_reservations = bool(total.reserved())
        agent.has_revocable = bool(total.revocable())
        remote = self._local_region is not None and agent.region not in (
            None,
            self._local_region,
        )
        gpus = self._filter_gpus and total.scalar("gpus") > 0
        agent.needs = (NEEDS_GPU if gpus else 0) | (NEEDS_REGION if remote else 0)
        agent.total_reserved = vectors.quota_parts(total)[2] if agent.has_reservations else {}
        for role_path, amount in agent.total_reserved.items():
            vectors.add(self._tree.ensure(role_path).reserved, amount)

    def _set_available(self, agent: AgentState, available: Resources) -> None:
        """Replace what is available on the agent and the books derived from it."""
        if not available:
            free: Vector = {}
            reserved = _NO_RESERVATIONS
        elif agent.plain:
            free, reserved = vectors.scalars(available), _NO_RESERVATIONS
        else:
            _, free, reserved = vectors.quota_parts(available)
        old_free, old_reserved = agent.avail_free, agent.avail_reserved
        agent.available = available
        agent.avail_free = free
        agent.avail_reserved = reserved
        if agent.active and (free or old_free):
            vectors.subtract(self._headroom.available, old_free)
            vectors.add(self._headroom.available, free)
            self._headroom.changed()
        if reserved or old_reserved:
            for role_path in {*reserved, *old_reserved}:
                delta = dict(reserved.get(role_path, {}))
                vectors.subtract(delta, old_reserved.get(role_path, {}))
                if delta:
                    self._consume(self._tree.ensure(role_path), delta)
        self._refresh_free(agent)

    def _refresh_free(self, agent: AgentState) -> None:
        free = agent.active and bool(agent.available) and self._allocatable(agent.available)
        if free != agent.free:
            agent.free = free
            if free:
                self._free[agent.id] = agent
            else:
                del self._free[agent.id]

    def _drop_agent(self, agent: AgentState) -> None:
        """Forget the agent (its allocations must have been untracked)."""
        self._set_available(agent, EMPTY)
        self._tree.remove_total(agent.total_q)
        self._set_total(agent, EMPTY)
        del self._agents[agent.id]
        self._pending.pop(agent.id, None)

    def _set_agent_active(self, agent: AgentState, active: bool) -> None:
        if agent.active == active:
            return
        if active:
            vectors.add(self._headroom.available, agent.avail_free)
        else:
            vectors.subtract(self._headroom.available, agent.avail_free)
        self._headroom.changed()
        agent.active = active
        self._refresh_free(agent)
        if active:
            self._touch(agent)
            self._touch_all_if_quota()

    # ------------------------------------------------------------------ pending

    def _touch(self, agent: AgentState) -> None:
        """The agent may have something new to offer: look at it next cycle."""
        self._pending[agent.id] = agent

    def _touch_all(self) -> None:
        """Something may now want what nobody wanted: look at every free agent."""
        self._all_pending = True

    def _touch_all_if_quota(self) -> None:
        """Freed resources may loosen a limit or the headroom elsewhere."""
        if self._quotas:
            self._all_pending = True

    # ------------------------------------------------------------------ allocations

    def _track(
        self, agent: AgentState, framework: FrameworkState, role: Role, resources: Resources
    ) -> None:
        """`resources` (part of `agent.available`) go to `framework` under `role`."""
        key = (framework.id, role.path)
        before = agent.allocations.get(key)
        agent.allocations[key] = resources if before is None else before + resources
        framework.holdings.setdefault(role.path, {})[agent.id] = None
        if resources is agent.available and agent.plain:
            quantities = agent.avail_free
            left = EMPTY
        else:
            quantities = vectors.scalars(resources)
            left = agent.available - resources
        self._tree.allocated(role, quantities)
        role.frameworks.allocated(framework.id, quantities)
        if agent.plain:
            self._consume(role, quantities)
        else:
            held, _, reserved = vectors.quota_parts(resources)
            self._consume(role, held)
            if self._quotas and any(path != role.path for path in reserved):
                # Resources reserved to an ancestor count toward the roles in between
                # only now: their need (so the required headroom) may have dropped
                # without the available headroom dropping with it.
                self._rewalk = True
        self._set_available(agent, left)

    def _untrack(
        self, agent: AgentState, framework: FrameworkState, role: Role, resources: Resources
    ) -> None:
        """`resources` held by `framework` under `role` go back to the agent."""
        key = (framework.id, role.path)
        left = agent.allocations[key] - resources
        if left:
            agent.allocations[key] = left
        else:
            del agent.allocations[key]
            agent_ids = framework.holdings[role.path]
            del agent_ids[agent.id]
            if not agent_ids:
                del framework.holdings[role.path]
        quantities = vectors.scalars(resources)
        self._tree.unallocated(role, quantities)
        role.frameworks.unallocated(framework.id, quantities)
        consumed = quantities if agent.plain else vectors.quota_parts(resources)[0]
        self._consume(role, {name: -amount for name, amount in consumed.items()})
        self._set_available(agent, agent.available + resources)
        self._touch(agent)
        self._touch_all_if_quota()
        self._untrack_role_if_idle(framework, role.path)

    def _consume(self, role: Role, delta: Vector) -> None:
        """`role`'s subtree (so each ancestor) consumes `delta` more (or less)."""
        if not delta:
            return
        node: Role | None = role
        while node is not None and node.parent is not None:
            vectors.add(node.consumed, delta)
            node = node.parent
        if role.guaranteed_kinds:
            quota.propagate_needs(role, self._headroom.required)
            self._headroom.changed()
        if not role.consumed:
            self._tree.prune(role)

    def _allocatable(self, resources: Resources) -> bool:
        if not resources:
            return False
        alternatives = self._min_allocatable
        if not alternatives:
            return True
        quantities = resources.quantities()
        for minimum in alternatives:
            for name, amount in minimum.items():
                if quantities.get(name, 0.0) < amount:
                    break
            else:
                return True
        return False

    # ------------------------------------------------------------------ frameworks

    def _subscribe(
        self,
        framework: FrameworkState,
        roles: Iterable[str],
        capabilities: Iterable[str],
        suppressed_roles: Iterable[str],
    ) -> None:
        roles = tuple(dict.fromkeys(roles))
        check_roles(roles, self._whitelist)
        old = set(framework.roles)
        framework.roles = roles
        framework.set_capabilities(capabilities)
        framework.suppressed = frozenset(suppressed_roles)
        left = old - set(roles)
        if left:
            self._filters.clear(framework.id, left)
        for role in roles:
            self._track_role(framework, role)
        for role in left:
            self._untrack_role_if_idle(framework, role)
        self._sync_activity(framework)
        self._touch_all()

    def _track_role(self, framework: FrameworkState, path: str) -> Role:
        """Make the framework a client of the role's framework sorter."""
        role = self._tree.ensure(path)
        if not role.frameworks.contains(framework.id):
            role.frameworks.add(framework.id)
        return role

    def _untrack_role_if_idle(self, framework: FrameworkState, path: str) -> None:
        """Drop the framework from a role it left once it holds nothing there."""
        if path in framework.roles or path in framework.holdings:
            return
        role = self._tree.get(path)
        if role is None or not role.frameworks.contains(framework.id):
            return
        role.frameworks.remove(framework.id)
        self._tree.sync_activity(role)
        self._tree.prune(role)

    def _sync_activity(self, framework: FrameworkState) -> None:
        """(De)activate the framework in each role's sorter to match its state."""
        offerable = framework.active and framework.registered
        for path in set(framework.roles) | set(framework.holdings):
            role = self._tree[path]
            if offerable and path in framework.roles and path not in framework.suppressed:
                role.frameworks.activate(framework.id)
            else:
                role.frameworks.deactivate(framework.id)
            self._tree.sync_activity(role)

    def _track_used(
        self, agent: AgentState, framework: FrameworkState, resources: Resources
    ) -> None:
        """Count resources already in use (agent re-registration, framework failover)."""
        default_role = framework.roles[0] if framework.roles else "*"
        if not framework.registered and any(r.allocation_role is None for r in resources):
            framework.guessed = True
        for path, part in split_by_allocation_role(resources, default_role, framework.roles):
            part = agent.available - agent.available.minus(part)  # never over-allocate
            if part:
                role = self._track_role(framework, path)
                self._track(agent, framework, role, part)
        self._sync_activity(framework)

    def _reattribute_guessed(self, framework: FrameworkState) -> None:
        """Move what was counted under "*" for an unknown framework to its real roles."""
        framework.guessed = False
        if "*" in framework.roles or not framework.roles or "*" not in framework.holdings:
            return
        star = self._tree["*"]
        for agent_id in list(framework.holdings["*"]):
            agent = self._agents[agent_id]
            held = agent.allocations[(framework.id, "*")]
            self._untrack(agent, framework, star, held)
            self._track_used(agent, framework, held)

    def _attribute(
        self,
        agent: AgentState,
        framework: FrameworkState,
        resources: Resources,
        role: str | None,
    ) -> list[tuple[str, Resources]]:
        """Split recovered resources by the role they were held under."""
        if role is not None:
            return [(role, resources.unallocated())]
        parts: list[tuple[str, Resources]] = []
        rest = resources
        for allocation_role, part in resources.allocations().items():
            parts.append((allocation_role, part.unallocated()))
            rest = rest - part
        for (holder, held_role), held in agent.allocations.items():
            if not rest:
                break
            if holder == framework.id:
                taken = held - held.minus(rest)
                if taken:
                    parts.append((held_role, taken))
                    rest = rest - taken
        if rest:
            parts.append((framework.roles[0] if framework.roles else "*", rest))
        return parts


def split_by_allocation_role(
    resources: Resources, default_role: str, roles: Sequence[str]
) -> list[tuple[str, Resources]]:
    """`[(role, plain resources)]`: by `allocation_info`, else by reservation role when
    the framework is in it, else under `default_role`."""
    parts: list[tuple[str, Resources]] = []
    rest = resources
    for role, part in resources.allocations().items():
        parts.append((role, part.unallocated()))
        rest = rest - part
    for role, part in rest.reservations().items():
        if role in roles:
            parts.append((role, part))
            rest = rest - part
    if rest:
        parts.append((default_role, rest))
    return parts
