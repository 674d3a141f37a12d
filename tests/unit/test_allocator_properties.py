"""Hypothesis state machine over the whole allocator: hierarchical roles, refined
reservations, quota, capabilities, regions, filters.

Two allocators get the same calls: one allocates incrementally (only agents that
changed), the other looks at every agent every cycle. They must hand out exactly the
same offers, a cycle over every agent right after must find nothing more, and after
every step:

* no agent is ever over-allocated, and the books recount exactly (`validate`);
* reserved resources only go to their role or its descendants;
* revocable resources, GPU agents and remote agents only to capable frameworks;
* no allocation pushes a role above its limit;
* what the allocator thinks frameworks hold is what they were given minus what
  they gave back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mesos.allocator import HierarchicalAllocator, QuotaError
from mesos.allocator.interface import GPU_RESOURCES, REGION_AWARE, REVOCABLE_RESOURCES
from mesos.resources import Resources
from mesos.values import is_ancestor_or_self

R = Resources.parse
AGENTS = ["a0", "a1", "a2", "a3", "a4"]
FRAMEWORKS = ["f0", "f1", "f2", "f3"]
ROLES = ["*", "eng", "eng/web", "eng/api", "ops"]
CAPS = [GPU_RESOURCES, REVOCABLE_RESOURCES, REGION_AWARE]


def revocable(text: str) -> Resources:
    return Resources.from_json([{**item, "revocable": {}} for item in R(text).to_json()])


def reserved(text: str, role: str) -> Resources:
    """`text` reserved to `role`, refined through its ancestors (eng, then eng/web)."""
    parts = role.split("/")
    result = R(text)
    for depth in range(1, len(parts) + 1):
        result = result.push_reservation({"type": "DYNAMIC", "role": "/".join(parts[:depth])})
    return result


@dataclass
class Mirror:
    roles: set[str]
    caps: set[str]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.inc = HierarchicalAllocator(local_region="eu")
        self.full = HierarchicalAllocator(local_region="eu")
        self.now = 0.0
        self.held: dict[tuple[str, str, str], Resources] = {}
        self.frameworks: dict[str, Mirror] = {}
        self.inactive_agents: set[str] = set()

    def both(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call both allocators; they must agree on the result or the exception."""
        results = []
        for allocator in (self.inc, self.full):
            try:
                results.append(("ok", getattr(allocator, method)(*args, **kwargs)))
            except (KeyError, ValueError) as exc:
                results.append(("error", type(exc)))
        assert results[0] == results[1], (method, results)
        if results[0][0] == "error":
            raise ValueError(method)
        return results[0][1]

    @initialize(cpus=st.integers(1, 8), role=st.sampled_from(ROLES[1:]))
    def start(self, cpus: int, role: str) -> None:
        self.add_agent("a0", cpus, 2, None, False, False, False)
        self.add_agent("a1", cpus, 4, role, False, True, False)
        self.add_framework("f0", {"eng/web"}, set())
        self.add_framework("f1", {"eng", "ops"}, {REVOCABLE_RESOURCES})

    # --- agents ---

    @rule(
        agent=st.sampled_from(AGENTS),
        cpus=st.integers(1, 8),
        mem=st.integers(0, 4),
        role=st.none() | st.sampled_from(ROLES[1:]),
        gpus=st.booleans(),
        rev=st.booleans(),
        remote=st.booleans(),
    )
    def add_agent(
        self,
        agent: str,
        cpus: int,
        mem: int,
        role: str | None,
        gpus: bool,
        rev: bool,
        remote: bool,
    ) -> None:
        if agent in self.inc.agent_ids():
            return
        total = R(f"cpus:{cpus};mem:{mem * 256};ports:[31000-31004]")
        if role:
            total = total + reserved(f"cpus:{cpus / 2};mem:512", role)
        if gpus:
            total = total + R("gpus:1")
        if rev:
            total = total + revocable("cpus:2")
        self.both("add_agent", agent, total, domain="us" if remote else None)
        self.inactive_agents.discard(agent)

    @rule(agent=st.sampled_from(AGENTS))
    def remove_agent(self, agent: str) -> None:
        self.both("remove_agent", agent)
        self.held = {k: v for k, v in self.held.items() if k[1] != agent}

    @rule(agent=st.sampled_from(AGENTS), active=st.booleans())
    def toggle_agent(self, agent: str, active: bool) -> None:
        if agent not in self.inc.agent_ids():
            return
        self.both("activate_agent" if active else "deactivate_agent", agent)
        (self.inactive_agents.discard if active else self.inactive_agents.add)(agent)

    @rule(agent=st.sampled_from(AGENTS), role=st.sampled_from(ROLES[1:]), cpus=st.integers(1, 2))
    def operator_reserve(self, agent: str, role: str, cpus: int) -> None:
        if agent not in self.inc.agent_ids():
            return
        old = R(f"cpus:{cpus}")
        if not self.inc.available(agent).unreserved().non_revocable().contains(old):
            return
        self.both("update_available", agent, old, reserved(f"cpus:{cpus}", role))

    # --- frameworks ---

    @rule(
        fw=st.sampled_from(FRAMEWORKS),
        roles=st.sets(st.sampled_from(ROLES), min_size=1, max_size=3),
        caps=st.sets(st.sampled_from(CAPS)),
    )
    def add_framework(self, fw: str, roles: set[str], caps: set[str]) -> None:
        if fw in self.frameworks:
            self.both("update_framework", fw, sorted(roles), caps)
        else:
            self.both("add_framework", fw, sorted(roles), caps)
        self.frameworks[fw] = Mirror(roles, caps)

    @rule(fw=st.sampled_from(FRAMEWORKS))
    def remove_framework(self, fw: str) -> None:
        self.both("remove_framework", fw)
        self.frameworks.pop(fw, None)
        self.held = {k: v for k, v in self.held.items() if k[0] != fw}

    @rule(fw=st.sampled_from(FRAMEWORKS), active=st.booleans())
    def toggle_framework(self, fw: str, active: bool) -> None:
        if fw not in self.frameworks:
            return
        self.both("activate_framework" if active else "deactivate_framework", fw)
        self.frameworks[fw].active = active

    @rule(fw=st.sampled_from(FRAMEWORKS), role=st.none() | st.sampled_from(ROLES), revive=st.booleans())
    def suppress_or_revive(self, fw: str, role: str | None, revive: bool) -> None:
        if fw not in self.frameworks:
            return
        roles = None if role is None else [role]
        mirror = self.frameworks[fw]
        self.both("revive" if revive else "suppress", fw, roles)
        if revive:
            mirror.suppressed.difference_update(roles or ROLES)
        else:
            mirror.suppressed.update(roles or mirror.roles)

    # --- policy ---

    @rule(role=st.sampled_from(ROLES), weight=st.sampled_from([0.5, 1.0, 3.0]))
    def weights(self, role: str, weight: float) -> None:
        self.both("update_weights", {role: weight})

    @rule(
        role=st.sampled_from(["eng", "eng/web", "ops"]),
        guarantee=st.none() | st.integers(1, 10),
        limit=st.none() | st.integers(0, 12),
    )
    def quota(self, role: str, guarantee: int | None, limit: int | None) -> None:
        guarantees = {"cpus": guarantee, "mem": guarantee * 128} if guarantee else None
        limits = {"cpus": limit} if limit is not None else None
        try:
            self.both("update_quota", role, guarantees, limits)
        except ValueError:
            for allocator in (self.inc, self.full):
                try:
                    allocator.update_quota(role, guarantees, limits)
                except QuotaError:
                    pass
                else:  # pragma: no cover - both() already compared them
                    raise AssertionError("only one allocator refused the quota") from None

    # --- offers ---

    @rule(step=st.sampled_from([0.0, 1.0, 10.0]))
    def allocate(self, step: float) -> None:
        self.now += step
        before = {agent: self.inc.available(agent) for agent in self.inc.agent_ids()}
        consumed = {role: self.inc.consumed(role) for role in ROLES}
        offers = self.inc.allocate(self.now)
        assert offers == self.full.allocate(self.now, full=True)
        # Nothing is left that a cycle over every agent would still hand out: the
        # incremental cycle did not miss an agent.
        assert self.inc.allocate(self.now, full=True) == []
        given: dict[str, Resources] = {}
        for x in offers:
            self.check_offer(x.framework_id, x.agent_id, x.role, x.resources)
            given[x.agent_id] = given.get(x.agent_id, Resources.empty()) + x.resources
            key = (x.framework_id, x.agent_id, x.role)
            self.held[key] = self.held.get(key, Resources.empty()) + x.resources
        for agent, resources in given.items():
            assert before[agent].contains(resources)  # never more than was available
        for role in ROLES:
            limits = self.inc.quota(role).limits
            after = self.inc.consumed(role)
            for name, limit in limits.items():
                assert after.get(name, 0.0) <= max(limit / 1000, consumed[role].get(name, 0.0))

    def check_offer(self, fw: str, agent: str, role: str, resources: Resources) -> None:
        info = self.frameworks[fw]
        assert info.active and role in info.roles and role not in info.suppressed
        assert agent not in self.inactive_agents
        for reservation_role in resources.reservations():
            assert is_ancestor_or_self(reservation_role, role)
        if resources.revocable():
            assert REVOCABLE_RESOURCES in info.caps
        if self.inc.total(agent).scalar("gpus"):
            assert GPU_RESOURCES in info.caps
        if self.inc._agents[agent].region == "us":
            assert REGION_AWARE in info.caps
        assert resources.unallocated() == resources

    @rule(
        data=st.data(),
        refuse=st.sampled_from([None, 0.0, 5.0]),
        part=st.sampled_from(["all", "unreserved", "cpus"]),
    )
    def recover(self, data: st.DataObject, refuse: float | None, part: str) -> None:
        if not self.held:
            return
        key = data.draw(st.sampled_from(sorted(self.held)))
        fw, agent, role = key
        resources = self.held[key]
        if part == "unreserved":
            resources = resources.unreserved()
        elif part == "cpus":
            resources = resources.named("cpus")
        left = self.held[key] - resources
        if left:
            self.held[key] = left
        else:
            del self.held[key]
        self.both("recover_resources", fw, agent, resources.allocate(role), refuse, self.now)

    @rule(agent=st.sampled_from(AGENTS), start=st.none() | st.sampled_from([5.0, 50.0]))
    def maintenance(self, agent: str, start: float | None) -> None:
        if agent in self.inc.agent_ids():
            self.both("update_unavailability", agent, start)
            for x in self.both("inverse_offers", self.now):
                assert (x.framework_id, x.agent_id) in {(k[0], k[1]) for k in self.held}

    @invariant()
    def books_balance(self) -> None:
        for allocator in (self.inc, self.full):
            allocator.validate()
        for agent in self.inc.agent_ids():
            used = self.inc.used(agent)
            assert self.inc.total(agent).contains(used) or not used  # never over-allocated
            mine = Resources.empty()
            for (_fw, held_agent, _role), resources in self.held.items():
                if held_agent == agent:
                    mine = mine + resources
            assert used == mine
            assert self.full.used(agent) == used


TestAllocatorMachine = AllocatorMachine.TestCase
TestAllocatorMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
