"""`DRFAllocator`: weighted dominant-resource-fairness over roles, then frameworks.

This is the first, flat cut of Mesos' hierarchical allocator (no quota, no role
tree yet). One `allocate(now)` walks the agents; for each agent it asks the role
sorter for the roles in order of weighted dominant share, and within each role the
role's framework sorter for its frameworks in order of dominant share, and hands the
agent's available resources to the first eligible framework (Mesos' stage 2,
`__allocate`). Shares are updated after every hand-out, so the next agent already
sees the new order (progressive filling).

Eligibility of framework F under role R on agent A, in the order it is checked:

* F is active, subscribed to R and not suppressed for R (sorter activation);
* A is active and, if A has `gpus`, F has the `GPU_RESOURCES` capability;
* F gets what on A is unreserved or reserved to R (or an ancestor of R), minus
  revocable resources unless F has `REVOCABLE_RESOURCES`;
* that chunk passes `min_allocatable` and no live refuse filter of F on A for R
  contains it.

Bookkeeping is exact `Resources` per (agent, framework, role); the sorters only see
compact quantity vectors, updated incrementally. Allocation roles
(`allocation_info`) never appear inside the allocator: `Allocation.resources` are
plain, and resources given back with an `allocation_info` are attributed to that
role and stripped. Everything is pure and synchronous; `now` is passed in.

Seams for the full hierarchical allocator: sorters are made by `sorter_factory`
(any `Sorter`), filters live in `filters.OfferFilters`, agents' attributes and
capabilities are kept for constraint/quota stages, and `_allocate_agent` is the one
place a quota stage would run before the fair-share stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesos.allocator.filters import OfferFilters
from mesos.allocator.interface import GPU_RESOURCES, REVOCABLE_RESOURCES, Allocation
from mesos.allocator.sorter import DRFSorter, Sorter
from mesos.resources import Resources

_EMPTY = Resources.empty()

# Mesos' MIN_CPUS / MIN_MEM: a chunk with at least one of these is worth offering.
DEFAULT_MIN_ALLOCATABLE: tuple[dict[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})

MinAllocatable = Resources | Sequence[Resources] | None


def min_allocatable_alternatives(spec: MinAllocatable) -> tuple[dict[str, float], ...]:
    """Normalise `min_allocatable` to alternatives, each a set of minimum quantities.

    `None` is Mesos' default (`cpus:0.01|mem:32`). One `Resources` makes each kind in
    it an alternative (`cpus:0.01;mem:32` means cpus >= 0.01 *or* mem >= 32). A
    sequence of `Resources` is `--min_allocatable_resources` split on `|`: a chunk
    is allocatable if it holds *all* quantities of at least one of them. No
    alternatives at all means any non-empty chunk is allocatable.
    """
    if spec is None:
        return DEFAULT_MIN_ALLOCATABLE
    if isinstance(spec, Resources):
        return tuple({name: amount} for name, amount in spec.quantities().items())
    return tuple(r.quantities() for r in spec)


@dataclass(slots=True, eq=False)
class _Agent:
    id: str
    total: Resources
    available: Resources
    quantities: dict[str, float]
    attributes: tuple[Mapping[str, Any], ...]
    capabilities: frozenset[str]
    has_gpus: bool
    has_reservations: bool
    active: bool = True
    # (framework id, role) -> what that framework holds here under that role.
    allocations: dict[tuple[str, str], Resources] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Framework:
    id: str
    roles: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    suppressed: frozenset[str] = frozenset()
    active: bool = False
    # False while the framework is known only from what agents report it uses.
    registered: bool = False
    # role -> ids of the agents where the framework holds resources under it.
    holdings: dict[str, dict[str, None]] = field(default_factory=dict)
    # Whether resources were reported used without `allocation_info` before the
    # framework was added, and so were counted under role "*" for the time being.
    guessed: bool = False


class DRFAllocator:
    """The default allocator: see the module docstring. Implements `Allocator`."""

    def __init__(
        self,
        min_allocatable: MinAllocatable = None,
        *,
        sorter_factory: Callable[[], Sorter] | None = None,
        fair_sharing_excluded_resource_names: Iterable[str] = (),
    ) -> None:
        excluded = tuple(fair_sharing_excluded_resource_names)
        self._new_sorter: Callable[[], Sorter] = sorter_factory or (lambda: DRFSorter(excluded))
        self._min_allocatable = min_allocatable_alternatives(min_allocatable)
        self._agents: dict[str, _Agent] = {}
        self._frameworks: dict[str, _Framework] = {}
        self._role_sorter: Sorter = self._new_sorter()
        self._framework_sorters: dict[str, Sorter] = {}
        self._weights: dict[str, float] = {}
        self._pool: dict[str, float] = {}
        self._filters = OfferFilters()

    # ------------------------------------------------------------------ agents

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Resources] | None = None,
        attributes: Sequence[Mapping[str, Any]] = (),
        capabilities: Iterable[str] = (),
    ) -> None:
        """Add an active agent. An agent id that is already known is replaced."""
        if agent_id in self._agents:
            self.remove_agent(agent_id)
        total = total.unallocated()
        agent = _Agent(
            id=agent_id,
            total=total,
            available=total,
            quantities=total.quantities(),
            attributes=tuple(attributes),
            capabilities=frozenset(capabilities),
            has_gpus=total.scalar("gpus") > 0,
            has_reservations=bool(total.reserved()),
        )
        self._agents[agent_id] = agent
        self._grow_pool(agent.quantities, 1.0)
        for framework_id, resources in (used or {}).items():
            framework = self._frameworks.get(framework_id)
            if framework is None:
                framework = self._frameworks[framework_id] = _Framework(framework_id)
            self._track_used(agent, framework, resources)

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent and everything allocated on it. Unknown ids are ignored."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        for (framework_id, role), held in list(agent.allocations.items()):
            self._untrack(agent, self._frameworks[framework_id], role, held)
        self._grow_pool(agent.quantities, -1.0)
        self._filters.remove_agent(agent_id)

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """Replace the agent's total; what is allocated stays allocated.

        If the new total no longer holds every allocation (revocable resources
        shrank), the agent simply has nothing available until enough is recovered.
        """
        agent = self._agent(agent_id)
        total = total.unallocated()
        allocated = agent.total - agent.available
        self._grow_pool(agent.quantities, -1.0)
        agent.total = total
        agent.available = total.minus(allocated)
        agent.quantities = total.quantities()
        agent.has_gpus = total.scalar("gpus") > 0
        agent.has_reservations = bool(total.reserved())
        self._grow_pool(agent.quantities, 1.0)

    def activate_agent(self, agent_id: str) -> None:
        self._agent(agent_id).active = True

    def deactivate_agent(self, agent_id: str) -> None:
        """Offer nothing more from the agent; its allocations stay as they are."""
        self._agent(agent_id).active = False

    # ------------------------------------------------------------------ frameworks

    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        capabilities: Iterable[str] = (),
        suppressed_roles: Iterable[str] = (),
        used: Mapping[str, Resources] | None = None,
        active: bool = True,
    ) -> None:
        """Add a framework; `used` maps agent ids to what it already holds there.

        A framework that agents reported as using resources before it was added
        keeps those allocations.
        """
        framework = self._frameworks.get(framework_id)
        if framework is None:
            framework = self._frameworks[framework_id] = _Framework(framework_id)
        elif framework.registered:
            raise ValueError(f"Framework '{framework_id}' is already added")
        framework.registered = True
        framework.active = active
        self._subscribe(framework, roles, capabilities, suppressed_roles)
        if framework.guessed:
            self._reattribute_guessed(framework)
        for agent_id, resources in (used or {}).items():
            agent = self._agents.get(agent_id)
            if agent is not None:
                self._track_used(agent, framework, resources)

    def remove_framework(self, framework_id: str) -> None:
        """Forget the framework; whatever it still holds goes back to its agents."""
        framework = self._frameworks.pop(framework_id, None)
        if framework is None:
            return
        roles = set(framework.roles) | set(framework.holdings)
        framework.roles = ()
        framework.active = False
        for role, agent_ids in list(framework.holdings.items()):
            for agent_id in list(agent_ids):
                agent = self._agents[agent_id]
                self._untrack(agent, framework, role, agent.allocations[(framework_id, role)])
        for role in roles:
            self._untrack_role_if_idle(framework, role)
        self._filters.clear(framework_id)

    def activate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        framework.active = True
        self._sync_activity(framework)

    def deactivate_framework(self, framework_id: str) -> None:
        """Offer the framework nothing; its allocations stay, its filters go (as in Mesos)."""
        framework = self._framework(framework_id)
        framework.active = False
        self._sync_activity(framework)
        self._filters.clear(framework_id)

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        capabilities: Iterable[str],
        suppressed_roles: Iterable[str] = (),
    ) -> None:
        """New roles, capabilities and suppressed roles (replacing the old ones).

        Allocations under a role the framework leaves stay counted against that role
        until they are recovered; filters for such roles are dropped.
        """
        self._subscribe(self._framework(framework_id), roles, capabilities, suppressed_roles)

    # ------------------------------------------------------------------ offers

    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None,
        now: float,
        role: str | None = None,
    ) -> None:
        """Give back `resources` of `framework_id` on `agent_id`.

        The role they were held under is `role`, else their `allocation_info`, else
        whichever of the framework's roles on that agent holds them. Only what is
        actually held is returned (recovering twice is harmless); unknown agents and
        frameworks are ignored. With `refuse_seconds` > 0 the framework is not
        offered these resources (or less) on that agent under that role again before
        `now + refuse_seconds`.
        """
        agent = self._agents.get(agent_id)
        framework = self._frameworks.get(framework_id)
        if agent is None or framework is None:
            return
        for part_role, part in self._attribute(agent, framework, resources, role):
            held = agent.allocations.get((framework_id, part_role))
            if held is not None:
                returned = held - held.minus(part)
                if returned:
                    self._untrack(agent, framework, part_role, returned)
            if refuse_seconds is not None and refuse_seconds > 0 and framework.registered:
                self._filters.add(framework_id, agent_id, part_role, part, now + refuse_seconds)

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Stop offering to the framework under `roles` (all its roles when None)."""
        framework = self._framework(framework_id)
        more = framework.roles if roles is None else roles
        framework.suppressed = framework.suppressed | frozenset(more)
        self._sync_activity(framework)

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None:
        """Undo `suppress` for `roles` (all when None) and drop their refuse filters."""
        framework = self._framework(framework_id)
        if roles is None:
            framework.suppressed = frozenset()
            self._filters.clear(framework_id)
        else:
            revived = frozenset(roles)
            framework.suppressed = framework.suppressed - revived
            self._filters.clear(framework_id, revived)
        self._sync_activity(framework)

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set role weights (> 0; default 1). Roles need not exist yet."""
        for role, weight in weights.items():
            if not weight > 0:
                raise ValueError(f"Weight of role '{role}' must be positive, got {weight}")
        for role, weight in weights.items():
            self._role_sorter.update_weight(role, weight)
            self._weights[role] = weight

    def allocate(self, now: float) -> list[Allocation]:
        """Hand out every active agent's available resources; see the module docstring."""
        allocations: list[Allocation] = []
        for agent in self._agents.values():
            if agent.active and agent.available:
                self._allocate_agent(agent, now, allocations)
        return allocations

    # ------------------------------------------------------------------ introspection

    def used(self, agent_id: str, framework_id: str | None = None) -> Resources:
        """What is allocated on the agent (to `framework_id` only, when given)."""
        agent = self._agent(agent_id)
        result = _EMPTY
        for (holder, _role), held in agent.allocations.items():
            if framework_id is None or holder == framework_id:
                result = result + held
        return result

    def available(self, agent_id: str) -> Resources:
        return self._agent(agent_id).available

    def total(self, agent_id: str) -> Resources:
        return self._agent(agent_id).total

    def allocation(self, framework_id: str) -> dict[str, dict[str, Resources]]:
        """`{agent id: {role: resources}}` the framework holds."""
        framework = self._framework(framework_id)
        result: dict[str, dict[str, Resources]] = {}
        for role, agent_ids in framework.holdings.items():
            for agent_id in agent_ids:
                held = self._agents[agent_id].allocations[(framework_id, role)]
                result.setdefault(agent_id, {})[role] = held
        return result

    def role_share(self, role: str) -> float:
        """The weighted dominant share of `role` (0 for a role nobody is in)."""
        return self._role_sorter.share(role) if self._role_sorter.contains(role) else 0.0

    def framework_share(self, framework_id: str, role: str) -> float:
        """The dominant share of the framework within `role`."""
        sorter = self._framework_sorters.get(role)
        if sorter is None or not sorter.contains(framework_id):
            return 0.0
        return sorter.share(framework_id)

    def roles(self) -> list[str]:
        """Roles that have at least one framework (subscribed, or still holding resources)."""
        return list(self._framework_sorters)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    @property
    def offer_filters(self) -> OfferFilters:
        return self._filters

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def framework_ids(self) -> list[str]:
        return [f.id for f in self._frameworks.values() if f.registered]

    def validate(self) -> None:
        """Check the bookkeeping invariants; raises AssertionError naming the first broken one."""
        by_role: dict[str, dict[str, float]] = {}
        for agent in self._agents.values():
            allocated = _EMPTY
            for (framework_id, role), held in agent.allocations.items():
                allocated = allocated + held
                if agent.id not in self._frameworks[framework_id].holdings.get(role, {}):
                    raise AssertionError(f"{framework_id}/{role} on {agent.id} not indexed")
                vector = by_role.setdefault(role, {})
                for name, amount in held.quantities().items():
                    vector[name] = round(vector.get(name, 0.0) + amount, 3)
            if agent.available + allocated != agent.total:
                raise AssertionError(
                    f"Agent {agent.id}: available {agent.available} + allocated {allocated}"
                    f" != total {agent.total}"
                )
        for role in self._framework_sorters:
            if self._role_sorter.allocation(role) != by_role.get(role, {}):
                raise AssertionError(f"Role sorter allocation of '{role}' is stale")

    # ------------------------------------------------------------------ allocation

    def _allocatable(self, resources: Resources) -> bool:
        if not resources:
            return False
        alternatives = self._min_allocatable
        if not alternatives:
            return True
        quantities = resources.quantities()
        return any(
            all(quantities.get(name, 0.0) >= amount for name, amount in minimum.items())
            for minimum in alternatives
        )

    def _allocate_agent(self, agent: _Agent, now: float, out: list[Allocation]) -> None:
        """Offer one agent: roles by share, then frameworks by share (Mesos' stage 2)."""
        if not self._allocatable(agent.available):
            return
        for role in self._role_sorter.sort():
            if agent.has_reservations:
                offerable = agent.available.allocatable_to(role)
            else:
                offerable = agent.available
            if not self._allocatable(offerable):
                continue
            for framework_id in self._framework_sorters[role].sort():
                framework = self._frameworks[framework_id]
                chunk = self._chunk_for(agent, framework, role, offerable, now)
                if chunk is None:
                    continue
                self._track(agent, framework, role, chunk)
                out.append(Allocation(framework_id, agent.id, role, chunk))
                offerable = offerable - chunk
                if not self._allocatable(offerable):
                    break
            if not agent.available:
                return

    def _chunk_for(
        self, agent: _Agent, framework: _Framework, role: str, offerable: Resources, now: float
    ) -> Resources | None:
        """What of `offerable` the framework may be offered under `role`, or None."""
        capabilities = framework.capabilities
        if agent.has_gpus and GPU_RESOURCES not in capabilities:
            return None
        chunk = offerable if REVOCABLE_RESOURCES in capabilities else offerable.non_revocable()
        if not self._allocatable(chunk):
            return None
        if self._filters.is_filtered(framework.id, agent.id, role, chunk, now):
            return None
        return chunk

    # ------------------------------------------------------------------ bookkeeping

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(f"Unknown agent '{agent_id}'") from None

    def _framework(self, framework_id: str) -> _Framework:
        framework = self._frameworks.get(framework_id)
        if framework is None or not framework.registered:
            raise KeyError(f"Unknown framework '{framework_id}'")
        return framework

    def _grow_pool(self, quantities: Mapping[str, float], sign: float) -> None:
        for name, amount in quantities.items():
            value = round(self._pool.get(name, 0.0) + sign * amount, 3)
            if value > 0:
                self._pool[name] = value
            else:
                self._pool.pop(name, None)
        for sorter in [self._role_sorter, *self._framework_sorters.values()]:
            if sign > 0:
                sorter.add_total(quantities)
            else:
                sorter.remove_total(quantities)

    def _subscribe(
        self,
        framework: _Framework,
        roles: Iterable[str],
        capabilities: Iterable[str],
        suppressed_roles: Iterable[str],
    ) -> None:
        old = set(framework.roles)
        framework.roles = tuple(dict.fromkeys(roles))
        framework.capabilities = frozenset(capabilities)
        framework.suppressed = frozenset(suppressed_roles)
        left = old - set(framework.roles)
        if left:
            self._filters.clear(framework.id, left)
        for role in framework.roles:
            self._track_role(framework, role)
        for role in left:
            self._untrack_role_if_idle(framework, role)
        self._sync_activity(framework)

    def _track_role(self, framework: _Framework, role: str) -> None:
        """Make the framework a client of the role's sorter (creating the role if new)."""
        sorter = self._framework_sorters.get(role)
        if sorter is None:
            sorter = self._framework_sorters[role] = self._new_sorter()
            if self._pool:
                sorter.add_total(self._pool)
            self._role_sorter.add(role)
        if not sorter.contains(framework.id):
            sorter.add(framework.id)

    def _untrack_role_if_idle(self, framework: _Framework, role: str) -> None:
        """Drop the framework from a role it left once it holds nothing there."""
        if role in framework.roles or role in framework.holdings:
            return
        sorter = self._framework_sorters.get(role)
        if sorter is None or not sorter.contains(framework.id):
            return
        sorter.remove(framework.id)
        if len(sorter) == 0:
            del self._framework_sorters[role]
            self._role_sorter.remove(role)
        else:
            self._sync_role(role)

    def _sync_activity(self, framework: _Framework) -> None:
        """(De)activate the framework in each role's sorter to match its state."""
        for role in set(framework.roles) | set(framework.holdings):
            sorter = self._framework_sorters[role]
            if (
                framework.active
                and framework.registered
                and role in framework.roles
                and role not in framework.suppressed
            ):
                sorter.activate(framework.id)
            else:
                sorter.deactivate(framework.id)
            self._sync_role(role)

    def _sync_role(self, role: str) -> None:
        """A role is in the role sort only while some framework in it can be offered."""
        if self._framework_sorters[role].active_count():
            self._role_sorter.activate(role)
        else:
            self._role_sorter.deactivate(role)

    def _track(self, agent: _Agent, framework: _Framework, role: str, resources: Resources) -> None:
        key = (framework.id, role)
        agent.allocations[key] = agent.allocations.get(key, _EMPTY) + resources
        agent.available = agent.available - resources
        framework.holdings.setdefault(role, {})[agent.id] = None
        quantities = resources.quantities()
        self._role_sorter.allocated(role, quantities)
        self._framework_sorters[role].allocated(framework.id, quantities)

    def _untrack(
        self, agent: _Agent, framework: _Framework, role: str, resources: Resources
    ) -> None:
        key = (framework.id, role)
        left = agent.allocations[key] - resources
        if left:
            agent.allocations[key] = left
        else:
            del agent.allocations[key]
            agent_ids = framework.holdings[role]
            del agent_ids[agent.id]
            if not agent_ids:
                del framework.holdings[role]
        agent.available = agent.available + resources
        quantities = resources.quantities()
        self._role_sorter.unallocated(role, quantities)
        self._framework_sorters[role].unallocated(framework.id, quantities)
        self._untrack_role_if_idle(framework, role)

    def _track_used(self, agent: _Agent, framework: _Framework, resources: Resources) -> None:
        """Count resources already in use (agent re-registration, framework failover)."""
        default_role = framework.roles[0] if framework.roles else "*"
        if not framework.registered and any(r.allocation_role is None for r in resources):
            framework.guessed = True
        for role, part in _split_by_allocation_role(resources, default_role, framework.roles):
            part = agent.available - agent.available.minus(part)  # never over-allocate
            if part:
                self._track_role(framework, role)
                self._track(agent, framework, role, part)
        self._sync_activity(framework)

    def _reattribute_guessed(self, framework: _Framework) -> None:
        """Move what was counted under "*" for an unknown framework to its real roles."""
        framework.guessed = False
        if "*" in framework.roles or not framework.roles or "*" not in framework.holdings:
            return
        for agent_id in list(framework.holdings["*"]):
            agent = self._agents[agent_id]
            held = agent.allocations[(framework.id, "*")]
            self._untrack(agent, framework, "*", held)
            self._track_used(agent, framework, held)

    def _attribute(
        self, agent: _Agent, framework: _Framework, resources: Resources, role: str | None
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


def _split_by_allocation_role(
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
