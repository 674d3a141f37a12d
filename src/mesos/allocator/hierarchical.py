"""`HierarchicalAllocator`: Mesos' hierarchical DRF allocator, pure and synchronous.

What it does, with the Mesos semantics it follows:

* **Roles** are hierarchical (`eng/web/prod`); a framework subscribes to one role
  or many (MULTI_ROLE); `*` is an ordinary role. With a `roles` whitelist
  (`--roles`) other roles are refused (`ValueError`).
* **Two levels of sorting**: roles by weighted share of their subtree (the role
  tree, `role_tree`), then frameworks within a role. DRF (default) or random,
  chosen with `role_sorter=` / `framework_sorter=` (`--role_sorter`,
  `--framework_sorter`). `update_weights` is UPDATE_WEIGHTS.
* **Quota** (`update_quota`, UPDATE_QUOTA): guarantees are offered first and kept
  reachable with headroom; limits are never exceeded (`quota`, `stages`).
* **Reservations**, static or dynamic, with refinement: resources reserved to
  `eng` go to `eng` and its descendants only (`Resources.allocatable_to`).
  RESERVE/UNRESERVE and friends change resources through `update_allocation`
  (held by a framework) and `update_available` (unallocated, operator API).
* **Filters**: `recover_resources(..., refuse_seconds)` (DECLINE), `suppress` /
  `revive` per role (`filters`).
* **Capabilities**: revocable resources only to REVOCABLE_RESOURCES frameworks,
  agents with GPUs only to GPU_RESOURCES ones (`filter_gpu_resources`), agents in a
  region other than `local_region` only to REGION_AWARE ones; agents without a
  domain go to everyone. `min_allocatable` is `--min_allocatable_resources`.
* **Maintenance**: `update_unavailability`, `inverse_offers`,
  `update_inverse_offer` (`maintenance`).

`allocate(now)` runs one cycle over the agents that may have changed since the last
one (`books`); `allocate(now, full=True)` looks at every agent. Time is always
passed in; nothing here reads a clock, sleeps or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mesos.allocator import quota
from mesos.allocator.audit import audit
from mesos.allocator.filters import OfferFilters
from mesos.allocator.interface import Allocation
from mesos.allocator.maintenance import InverseOffer, Maintenance, Unavailability
from mesos.allocator.quota import Quota, QuotaSpec
from mesos.allocator.role_tree import check_roles
from mesos.allocator.stages import Stages
from mesos.allocator.state import EMPTY, AgentState, FrameworkState, region_of
from mesos.resources import Resources


class HierarchicalAllocator(Stages):
    """The default allocator (entry point `hierarchical`, alias `drf`); see the module
    docstring. Options: `min_allocatable`, `role_sorter`, `framework_sorter`,
    `sorter_factory`, `fair_sharing_excluded_resource_names`, `roles`,
    `local_region`, `filter_gpu_resources`, `seed` (random sorters)."""

    # ------------------------------------------------------------------ agents

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Resources] | None = None,
        attributes: Sequence[Mapping[str, Any]] = (),
        capabilities: Iterable[str] = (),
        domain: Any = None,
    ) -> None:
        """Add an active agent; an id already known is replaced.

        `used` maps framework ids to what they hold on it already; `domain` is a
        `DomainInfo` (struct or JSON) or a region name.
        """
        if agent_id in self._agents:
            self.remove_agent(agent_id)
        agent = AgentState(
            id=agent_id,
            seq=self._agent_seq,
            total=EMPTY,
            attributes=tuple(attributes),
            capabilities=frozenset(capabilities),
            region=region_of(domain),
        )
        self._new_agent(agent, total.unallocated())
        for framework_id, resources in (used or {}).items():
            framework = self._frameworks.get(framework_id)
            if framework is None:
                framework = self._frameworks[framework_id] = FrameworkState(framework_id)
            self._track_used(agent, framework, resources)
        self._touch_all_if_quota()

    def remove_agent(self, agent_id: str) -> None:
        """Forget the agent and everything allocated on it. Unknown ids are ignored."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        for (framework_id, path), held in list(agent.allocations.items()):
            self._untrack(agent, self._frameworks[framework_id], self._tree[path], held)
        self._drop_agent(agent)
        self._filters.remove_agent(agent_id)
        self._maintenance.forget_agent(agent_id)

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """Replace the agent's total; what is allocated stays allocated.

        If the new total no longer holds every allocation (revocable resources
        shrank), the agent simply has nothing available until enough is recovered.
        """
        agent = self._agent(agent_id)
        total = total.unallocated()
        allocated = agent.total - agent.available
        self._tree.remove_total(agent.total_q)
        self._set_total(agent, total)
        self._tree.add_total(agent.total_q)
        self._set_available(agent, total.minus(allocated))
        self._touch(agent)
        self._touch_all_if_quota()

    def update_available(self, agent_id: str, old: Resources, new: Resources) -> None:
        """Operations on unallocated resources (operator RESERVE, UNRESERVE, CREATE,
        DESTROY...): `old`, which must be available, becomes `new`; the total follows.

        Raises ValueError (and changes nothing) if `old` is not available.
        """
        agent = self._agent(agent_id)
        old, new = old.unallocated(), new.unallocated()
        if not agent.available.contains(old):
            raise ValueError(f"Agent '{agent_id}': {old} is not available to update")
        self._retotal(agent, agent.total - old + new)
        self._set_available(agent, agent.available - old + new)
        self._touch(agent)
        self._touch_all()

    def update_allocation(
        self, framework_id: str, agent_id: str, role: str, old: Resources, new: Resources
    ) -> None:
        """Operations on offered resources (RESERVE, UNRESERVE, CREATE, ... in ACCEPT):
        `old`, held by the framework under `role`, becomes `new`, still held.

        Raises ValueError (and changes nothing) if `old` is not held there.
        """
        agent = self._agent(agent_id)
        framework = self._framework(framework_id)
        old, new = old.unallocated(), new.unallocated()
        held = agent.allocations.get((framework_id, role), EMPTY)
        if not held.contains(old):
            raise ValueError(f"Framework '{framework_id}' does not hold {old} on '{agent_id}'")
        node = self._tree[role]
        self._untrack(agent, framework, node, old)
        self._retotal(agent, agent.total - old + new)
        self._set_available(agent, agent.available - old + new)
        self._track(agent, framework, self._track_role(framework, role), new)
        self._sync_activity(framework)

    def _retotal(self, agent: AgentState, total: Resources) -> None:
        self._tree.remove_total(agent.total_q)
        self._set_total(agent, total)
        self._tree.add_total(agent.total_q)

    def activate_agent(self, agent_id: str) -> None:
        self._set_agent_active(self._agent(agent_id), True)

    def deactivate_agent(self, agent_id: str) -> None:
        """Offer nothing more from the agent; its allocations stay as they are."""
        self._set_agent_active(self._agent(agent_id), False)

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
        roles = tuple(roles)
        check_roles(roles, self._whitelist)
        framework = self._frameworks.get(framework_id)
        if framework is None:
            framework = FrameworkState(framework_id)
        elif framework.registered:
            raise ValueError(f"Framework '{framework_id}' is already added")
        framework.registered = True
        framework.active = active
        self._subscribe(framework, roles, capabilities, suppressed_roles)
        self._frameworks[framework_id] = framework
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
        for path, agent_ids in list(framework.holdings.items()):
            for agent_id in list(agent_ids):
                agent = self._agents[agent_id]
                node = self._tree[path]
                self._untrack(agent, framework, node, agent.allocations[(framework_id, path)])
        for path in roles:
            self._untrack_role_if_idle(framework, path)
        self._filters.clear(framework_id)
        self._maintenance.forget_framework(framework_id)

    def activate_framework(self, framework_id: str) -> None:
        framework = self._framework(framework_id)
        framework.active = True
        self._sync_activity(framework)
        self._touch_all()

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
        framework = self._framework(framework_id)
        roles = tuple(roles)
        check_roles(roles, self._whitelist)
        self._subscribe(framework, roles, capabilities, suppressed_roles)

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
        for path, part in self._attribute(agent, framework, resources, role):
            held = agent.allocations.get((framework_id, path))
            if held is not None:
                returned = held - held.minus(part)
                if returned:
                    self._untrack(agent, framework, self._tree[path], returned)
            if refuse_seconds is not None and refuse_seconds > 0 and framework.registered:
                self._filters.add(framework_id, agent_id, path, part, now + refuse_seconds)

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
        self._touch_all()

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set role weights (> 0; default 1). Roles need not exist yet."""
        for role, weight in weights.items():
            if not weight > 0:
                raise ValueError(f"Weight of role '{role}' must be positive, got {weight}")
        for role, weight in weights.items():
            self._tree.update_weight(role, weight)

    def update_quota(
        self, role: str, guarantees: QuotaSpec = None, limits: QuotaSpec = None
    ) -> None:
        """UPDATE_QUOTA for one role: `guarantees` and `limits` as `Resources`,
        `{name: amount}` or `{name: {"value": amount}}`; None (both) removes it.

        Raises `QuotaError` (a ValueError) and changes nothing if the result breaks
        Mesos' rules (see `quota.validate`).
        """
        self.update_quotas({role: Quota.of(guarantees, limits)})

    def update_quotas(self, quotas: Mapping[str, Quota]) -> None:
        """Several roles at once, all or nothing (one UPDATE_QUOTA call)."""
        result = dict(self._quotas)
        for role, config in quotas.items():
            if config.is_default():
                result.pop(role, None)
            else:
                result[role] = config
        quota.validate(result)
        for path in set(self._quotas) | set(result):
            config = result.get(path, Quota())
            node = self._tree.ensure(path)
            node.guarantees = dict(config.guarantees)
            node.limits = dict(config.limits)
        self._quotas = result
        self._tree.refresh_quota_flags()
        self._headroom.required = quota.recompute_needs(self._tree)
        self._headroom.changed()
        for node in list(self._tree):
            self._tree.prune(node)
        self._touch_all()

    def allocate(self, now: float, full: bool = False) -> list[Allocation]:
        """One allocation cycle (see `stages`); `full` looks at every agent."""
        if full:
            self._touch_all()
        return self._cycle(now)

    # ------------------------------------------------------------------ maintenance

    def update_unavailability(
        self, agent_id: str, start: float | None, duration: float | None = None
    ) -> None:
        """Schedule maintenance of the agent from `start` for `duration` seconds
        (None: open-ended); `start` None cancels it. Forgets earlier answers."""
        self._agent(agent_id)
        window = None if start is None else Unavailability(start, duration)
        self._maintenance.update(agent_id, window)

    def unavailability(self, agent_id: str) -> Unavailability | None:
        """The agent's maintenance window (the master puts it into offers)."""
        return self._maintenance.unavailability(agent_id)

    def inverse_offers(self, now: float) -> list[InverseOffer]:
        """Inverse offers due now: for each draining agent, one to every registered
        framework holding resources there that has none outstanding for it and no
        live refusal. Call after `allocate`; answers come to `update_inverse_offer`."""

        def holders(agent_id: str) -> list[str]:
            agent = self._agents[agent_id]
            ids = dict.fromkeys(framework_id for framework_id, _ in agent.allocations)
            return [i for i in ids if self._frameworks[i].registered]

        return self._maintenance.inverse_offers(now, holders)

    def update_inverse_offer(
        self,
        agent_id: str,
        framework_id: str,
        accepted: bool | None,
        refuse_seconds: float | None,
        now: float,
    ) -> None:
        """The framework accepted (True) or declined (False) the inverse offer, or the
        master rescinded it (None); `refuse_seconds` > 0 holds the next one back."""
        self._maintenance.answer(agent_id, framework_id, accepted, refuse_seconds, now)

    @property
    def maintenance(self) -> Maintenance:
        """The maintenance books (`answers(agent)`, `outstanding(agent)`, `draining()`)."""
        return self._maintenance

    # ------------------------------------------------------------------ introspection

    def used(self, agent_id: str, framework_id: str | None = None) -> Resources:
        """What is allocated on the agent (to `framework_id` only, when given)."""
        agent = self._agent(agent_id)
        result = EMPTY
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
        """The weighted share of `role`'s subtree among its siblings (0 if unknown)."""
        node = self._tree.get(role)
        return 0.0 if node is None else self._tree.share(node)

    def framework_share(self, framework_id: str, role: str) -> float:
        """The dominant share of the framework within `role`."""
        node = self._tree.get(role)
        if node is None or not node.frameworks.contains(framework_id):
            return 0.0
        return node.frameworks.share(framework_id)

    def roles(self) -> list[str]:
        """Roles that have at least one framework (subscribed, or still holding resources)."""
        return [node.path for node in self._tree if len(node.frameworks)]

    def weights(self) -> dict[str, float]:
        return self._tree.weights()

    def quota(self, role: str) -> Quota:
        return self._quotas.get(role, Quota())

    def quotas(self) -> dict[str, Quota]:
        return dict(self._quotas)

    def consumed(self, role: str) -> dict[str, float]:
        """Quota consumption of `role`'s subtree: what it holds (revocable excluded)
        plus its unallocated reservations, in plain units."""
        node = self._tree.get(role)
        return {} if node is None else {k: v / 1000 for k, v in node.consumed.items()}

    def headroom(self) -> tuple[dict[str, float], dict[str, float]]:
        """`(available, required)` headroom in plain units (see `quota`)."""
        room = self._headroom
        return (
            {k: v / 1000 for k, v in room.available.items()},
            {k: v / 1000 for k, v in room.required.items()},
        )

    @property
    def offer_filters(self) -> OfferFilters:
        return self._filters

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def framework_ids(self) -> list[str]:
        return [f.id for f in self._frameworks.values() if f.registered]

    def validate(self) -> None:
        """Check the incremental books against a recount; AssertionError names the first
        broken invariant. For tests (it walks everything)."""
        audit(self)

    # ------------------------------------------------------------------ lookups

    def _agent(self, agent_id: str) -> AgentState:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(f"Unknown agent '{agent_id}'") from None

    def _framework(self, framework_id: str) -> FrameworkState:
        framework = self._frameworks.get(framework_id)
        if framework is None or not framework.registered:
            raise KeyError(f"Unknown framework '{framework_id}'")
        return framework
