"""`DRFAllocator`: explicit `now`, no event loop; DRF paper example; hypothesis invariants."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from mesos.allocator import Allocation, Allocator, DRFAllocator
from mesos.allocator.interface import GPU_RESOURCES, REVOCABLE_RESOURCES
from mesos.resources import Resources

R = Resources.parse


def revocable(text: str) -> Resources:
    return Resources.from_json([{**item, "revocable": {}} for item in R(text).to_json()])


def offers(allocator: DRFAllocator, now: float = 0.0) -> dict[tuple[str, str], Resources]:
    """`{(framework, agent): resources}` from one `allocate(now)`."""
    result: dict[tuple[str, str], Resources] = {}
    for a in allocator.allocate(now):
        key = (a.framework_id, a.agent_id)
        result[key] = result.get(key, Resources.empty()) + a.resources
    allocator.validate()
    return result


def decline_all(
    allocator: DRFAllocator, allocations: list[Allocation], refuse: float | None, now: float
) -> None:
    for a in allocations:
        allocator.recover_resources(a.framework_id, a.agent_id, a.resources, refuse, now)


# ---------------------------------------------------------------------------- basics


def test_implements_the_protocol() -> None:
    assert isinstance(DRFAllocator(), Allocator)


def test_single_framework_gets_the_whole_agent_once() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024;ports:[31000-31009]"))
    a.add_framework("f1", ["*"], set())
    [allocation] = a.allocate(0.0)
    assert allocation == Allocation("f1", "s1", "*", R("cpus:4;mem:1024;ports:[31000-31009]"))
    assert a.allocate(1.0) == []  # still allocated: nothing left to offer
    assert a.used("s1", "f1") == allocation.resources
    assert not a.available("s1")
    a.validate()


def test_recovered_resources_are_offered_again() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    assert len(a.allocate(0.0)) == 1
    a.recover_resources("f1", "s1", R("cpus:3;mem:512"), None, 0.0)  # launched cpus:1;mem:512
    [again] = a.allocate(0.0)
    assert again.resources == R("cpus:3;mem:512")
    assert a.used("s1") == R("cpus:4;mem:1024")


def test_refuse_filter_lasts_until_now_plus_refuse_seconds() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    decline_all(a, a.allocate(10.0), refuse=5.0, now=10.0)
    assert a.allocate(10.0) == []
    assert a.allocate(14.999) == []
    assert [x.framework_id for x in a.allocate(15.0)] == ["f1"]
    assert a.offer_filters.next_expiry() is None  # the expired filter was dropped


@pytest.mark.parametrize("refuse", [None, 0.0])
def test_no_filter_without_positive_refuse_seconds(refuse: float | None) -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    decline_all(a, a.allocate(0.0), refuse=refuse, now=0.0)
    assert len(a.allocate(0.0)) == 1


def test_filtered_resources_go_to_the_next_framework() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    a.add_framework("f2", ["*"], set())
    [first] = a.allocate(0.0)
    assert first.framework_id == "f1"
    decline_all(a, [first], refuse=5.0, now=0.0)
    [second] = a.allocate(0.0)
    assert second.framework_id == "f2"


def test_filter_does_not_hide_a_larger_offer() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    a.add_framework("f2", ["*"], set())
    a.update_weights({"*": 1.0})
    assert [x.framework_id for x in a.allocate(0.0)] == ["f1"]
    # f1 keeps cpus:2;mem:512 (a task) and refuses the rest for 100 s.
    a.recover_resources("f1", "s1", R("cpus:2;mem:512"), 100.0, 0.0)
    a.suppress("f2")
    assert a.allocate(1.0) == []  # the refused cpus:2;mem:512 is filtered
    a.recover_resources("f1", "s1", R("cpus:1;mem:256"), None, 1.0)  # the task shrank
    [bigger] = a.allocate(2.0)  # cpus:3;mem:768 is more than was refused
    assert bigger.framework_id == "f1"
    assert bigger.resources == R("cpus:3;mem:768")


def test_suppress_and_revive() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    a.suppress("f1")
    assert a.allocate(0.0) == []
    a.revive("f1")
    assert len(a.allocate(0.0)) == 1


def test_revive_clears_filters() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    decline_all(a, a.allocate(0.0), refuse=1000.0, now=0.0)
    assert a.allocate(1.0) == []
    a.revive("f1")
    assert len(a.allocate(1.0)) == 1


def test_suppress_and_revive_per_role() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus(r1):2;mem(r1):512;cpus(r2):2;mem(r2):512"))
    a.add_framework("f1", ["r1", "r2"], {"MULTI_ROLE"}, suppressed_roles=["r2"])
    assert [(x.role, x.resources) for x in a.allocate(0.0)] == [("r1", R("cpus(r1):2;mem(r1):512"))]
    decline_all(a, a.allocate(0.0), refuse=None, now=0.0)
    a.suppress("f1", ["r1"])
    a.revive("f1", ["r2"])
    assert [x.role for x in a.allocate(0.0)] == ["r2"]


def test_subscribed_suppressed_roles_from_add_framework() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set(), suppressed_roles=["*"])
    assert a.allocate(0.0) == []


def test_deactivated_frameworks_and_agents_get_nothing() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    a.deactivate_framework("f1")
    assert a.allocate(0.0) == []
    a.activate_framework("f1")
    a.deactivate_agent("s1")
    assert a.allocate(0.0) == []
    a.activate_agent("s1")
    assert len(a.allocate(0.0)) == 1


def test_deactivation_keeps_allocations_and_drops_filters() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    first = a.allocate(0.0)
    decline_all(a, first[1:], refuse=100.0, now=0.0)
    a.deactivate_framework("f1")
    assert a.used("s1", "f1") == R("cpus:4;mem:1024")
    a.activate_framework("f1")
    assert [x.agent_id for x in a.allocate(0.0)] == ["s2"]


def test_min_allocatable_default_needs_cpus_or_mem() -> None:
    a = DRFAllocator()
    a.add_agent("tiny", R("cpus:0.005;mem:16;disk:100"))
    a.add_agent("memonly", R("mem:32"))
    a.add_agent("cpuonly", R("cpus:0.01"))
    a.add_framework("f1", ["*"], set())
    assert sorted(x.agent_id for x in a.allocate(0.0)) == ["cpuonly", "memonly"]


def test_min_allocatable_custom_alternatives() -> None:
    a = DRFAllocator(min_allocatable=[R("cpus:1;mem:128"), R("disk:1000")])
    a.add_agent("small", R("cpus:1;mem:64"))
    a.add_agent("big", R("cpus:1;mem:128"))
    a.add_agent("disk", R("disk:1000"))
    a.add_framework("f1", ["*"], set())
    assert sorted(x.agent_id for x in a.allocate(0.0)) == ["big", "disk"]
    b = DRFAllocator(min_allocatable=R("cpus:1;mem:128"))  # one Resources: each kind suffices
    b.add_agent("small", R("cpus:1;mem:64"))
    b.add_framework("f1", ["*"], set())
    assert len(b.allocate(0.0)) == 1


def test_gpu_agents_only_go_to_gpu_frameworks() -> None:
    a = DRFAllocator()
    a.add_agent("gpu", R("cpus:4;mem:1024;gpus:1"))
    a.add_agent("plain", R("cpus:4;mem:1024"))
    a.add_framework("cpu-only", ["*"], set())
    a.add_framework("zz-gpu", ["*"], {GPU_RESOURCES})
    got = offers(a)
    assert set(got) == {("cpu-only", "plain"), ("zz-gpu", "gpu")}


def test_revocable_resources_only_to_revocable_frameworks() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:2;mem:512") + revocable("cpus:8"))
    a.add_framework("a-plain", ["*"], set())
    a.add_framework("b-revocable", ["*"], {REVOCABLE_RESOURCES})
    got = offers(a)
    assert got[("a-plain", "s1")] == R("cpus:2;mem:512")
    assert got[("b-revocable", "s1")] == revocable("cpus:8")


def test_reserved_resources_only_to_their_role() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:2;mem:512;cpus(ads):6;mem(ads):2048"))
    a.add_framework("a-star", ["*"], set())
    a.add_framework("b-ads", ["ads"], set())
    got = offers(a)
    assert got[("a-star", "s1")] == R("cpus:2;mem:512")
    assert got[("b-ads", "s1")] == R("cpus(ads):6;mem(ads):2048")


def test_role_member_gets_unreserved_and_its_reservation_together() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:2;mem:512;cpus(ads):6;mem(ads):2048"))
    a.add_framework("f", ["ads"], set())
    [only] = a.allocate(0.0)
    assert only.role == "ads"
    assert only.resources == R("cpus:2;mem:512;cpus(ads):6;mem(ads):2048")


def test_weighted_roles_share_in_proportion() -> None:
    a = DRFAllocator()
    for i in range(30):
        a.add_agent(f"s{i:02}", R("cpus:1;mem:1024"))
    a.add_framework("f-heavy", ["heavy"], set())
    a.add_framework("f-light", ["light"], set())
    a.update_weights({"heavy": 2.0})
    counts = Counter(x.role for x in a.allocate(0.0))
    assert counts == {"heavy": 20, "light": 10}
    assert a.role_share("heavy") == pytest.approx(a.role_share("light"))
    assert a.weights() == {"heavy": 2.0}


def test_update_weights_rejects_non_positive() -> None:
    with pytest.raises(ValueError):
        DRFAllocator().update_weights({"r": 0.0})


def test_frameworks_within_a_role_by_dominant_share() -> None:
    a = DRFAllocator()
    a.add_agent("big", R("cpus:8;mem:8192"))
    a.add_framework("a", ["r"], set())
    a.add_framework("b", ["r"], set())
    [first] = a.allocate(0.0)
    assert first.framework_id == "a"  # tie at zero: by name
    a.add_agent("s2", R("cpus:1;mem:1024"))
    [second] = a.allocate(0.0)
    assert second.framework_id == "b"  # a holds a larger share now
    assert a.framework_share("a", "r") > a.framework_share("b", "r")


def test_multi_role_framework_is_offered_per_role() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus(r1):1;mem(r1):128;cpus(r2):2;mem(r2):256"))
    a.add_framework("f", ["r1", "r2"], {"MULTI_ROLE"})
    got = {x.role: x.resources for x in a.allocate(0.0)}
    assert got == {"r1": R("cpus(r1):1;mem(r1):128"), "r2": R("cpus(r2):2;mem(r2):256")}


def test_recover_uses_allocation_info_for_multi_role_frameworks() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.add_framework("f", ["r1", "r2"], {"MULTI_ROLE"})
    got = {x.agent_id: x.role for x in a.allocate(0.0)}
    assert sorted(got.values()) == ["r1", "r2"]
    role_on_s1 = got["s1"]
    a.recover_resources("f", "s1", R("cpus:4;mem:1024").allocate(role_on_s1), None, 0.0)
    assert a.used("s1") == Resources.empty()
    assert a.role_share(role_on_s1) == 0.0
    # Without allocation_info (and without role=) it is found by what is held.
    a.recover_resources("f", "s2", R("cpus:1"), None, 0.0)
    assert a.used("s2") == R("cpus:3;mem:1024")
    a.recover_resources("f", "s2", R("cpus:3;mem:1024"), None, 0.0, role=got["s2"])
    assert a.used("s2") == Resources.empty()
    a.validate()


def test_recovering_twice_or_for_strangers_is_harmless() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    [x] = a.allocate(0.0)
    a.recover_resources("f1", "s1", x.resources, None, 0.0)
    a.recover_resources("f1", "s1", x.resources, None, 0.0)
    a.recover_resources("nobody", "s1", x.resources, None, 0.0)
    a.recover_resources("f1", "gone", x.resources, None, 0.0)
    assert a.available("s1") == R("cpus:4;mem:1024")
    a.validate()


def test_remove_framework_releases_its_resources() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"], set())
    a.add_framework("f2", ["r"], set())
    [x] = a.allocate(0.0)
    a.remove_framework(x.framework_id)
    a.recover_resources(x.framework_id, "s1", x.resources, 5.0, 0.0)  # the master, late
    [y] = a.allocate(0.0)
    assert y.framework_id != x.framework_id
    assert y.resources == R("cpus:4;mem:1024")
    a.remove_framework("f1")
    a.remove_framework("f2")
    assert a.roles() == []
    assert a.framework_ids() == []


def test_remove_agent_releases_shares() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["r"], set())
    a.allocate(0.0)
    assert a.role_share("r") == pytest.approx(1.0)
    a.remove_agent("s1")
    assert a.role_share("r") == pytest.approx(1.0)
    assert a.allocation("f1") == {"s2": {"r": R("cpus:4;mem:1024")}}
    a.remove_agent("s2")
    assert a.allocation("f1") == {}
    assert a.role_share("r") == 0.0
    a.validate()


def test_re_adding_an_agent_replaces_it() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"], set())
    a.allocate(0.0)
    a.add_agent("s1", R("cpus:8;mem:2048"), used={"f1": R("cpus:1;mem:128")})
    assert a.available("s1") == R("cpus:7;mem:1920")
    a.validate()


def test_used_on_add_agent_counts_before_the_framework_is_added() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"), used={"old": R("cpus:3;mem:768").allocate("r")})
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.add_framework("new", ["r"], set())
    assert [x.framework_id for x in a.allocate(0.0)] == ["new", "new"]
    a.add_framework("old", ["r"], set())  # it comes back, holding what it held
    assert a.allocation("old") == {"s1": {"r": R("cpus:3;mem:768")}}
    assert a.framework_share("old", "r") == pytest.approx(3 / 8)
    a.validate()


def test_used_on_add_framework() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f", ["r"], set(), used={"s1": R("cpus:4;mem:1024"), "unknown": R("cpus:1")})
    assert a.allocate(0.0) == []
    assert a.used("s1", "f") == R("cpus:4;mem:1024")


def test_update_framework_leaving_a_role_keeps_it_until_recovered() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f", ["old"], set())
    [x] = a.allocate(0.0)
    a.update_framework("f", ["new"], set())
    assert set(a.roles()) == {"old", "new"}
    assert a.role_share("old") == pytest.approx(1.0)
    a.recover_resources("f", "s1", x.resources, None, 0.0)
    assert a.roles() == ["new"]
    [y] = a.allocate(0.0)
    assert y.role == "new"


def test_update_framework_changes_capabilities() -> None:
    a = DRFAllocator()
    a.add_agent("gpu", R("cpus:4;mem:1024;gpus:1"))
    a.add_framework("f", ["*"], set())
    assert a.allocate(0.0) == []
    a.update_framework("f", ["*"], {GPU_RESOURCES})
    assert len(a.allocate(0.0)) == 1


def test_update_agent_total() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f", ["*"], set())
    a.recover_resources("f", "s1", R("cpus:2;mem:512"), None, 0.0)  # nothing held: no-op
    assert len(a.allocate(0.0)) == 1
    a.recover_resources("f", "s1", R("cpus:2;mem:512"), None, 0.0)
    a.update_agent("s1", R("cpus:8;mem:1024"))
    assert a.available("s1") == R("cpus:6;mem:512")
    assert a.total("s1") == R("cpus:8;mem:1024")
    a.validate()


def test_unknown_ids() -> None:
    a = DRFAllocator()
    a.remove_agent("nope")
    a.remove_framework("nope")
    with pytest.raises(KeyError):
        a.activate_framework("nope")
    with pytest.raises(KeyError):
        a.deactivate_agent("nope")
    a.add_framework("f", ["*"], set())
    with pytest.raises(ValueError):
        a.add_framework("f", ["*"], set())


# ---------------------------------------------------------------------------- DRF paper


def drf_paper_run(agents: list[str], roles: dict[str, str]) -> dict[str, int]:
    """Ghodsi et al. §4: 9 CPUs, 18 GB; A's tasks <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>.

    Each framework launches exactly one task per offer (when it fits) and declines
    the rest with refuse_seconds 0, until a round launches nothing."""
    allocator = DRFAllocator()
    for i, text in enumerate(agents):
        allocator.add_agent(f"s{i}", R(text))
    for name, role in roles.items():
        allocator.add_framework(name, [role], set())
    task = {"A": R("cpus:1;mem:4096"), "B": R("cpus:3;mem:1024")}
    tasks = {"A": 0, "B": 0}
    now = 0.0
    for _ in range(50):
        launched = False
        for offer in allocator.allocate(now):
            need = task[offer.framework_id]
            rest = offer.resources
            if offer.resources.contains(need):
                tasks[offer.framework_id] += 1
                launched = True
                rest = offer.resources - need
            allocator.recover_resources(offer.framework_id, offer.agent_id, rest, 0.0, now)
        allocator.validate()
        if not launched:
            break
        now += 1.0
    return tasks


@pytest.mark.parametrize(
    "agents",
    [["cpus:9;mem:18432"], ["cpus:3;mem:12288", "cpus:6;mem:6144"]],
    ids=["one-agent", "two-agents"],
)
@pytest.mark.parametrize(
    "roles", [{"A": "*", "B": "*"}, {"A": "ra", "B": "rb"}], ids=["same-role", "two-roles"]
)
def test_drf_paper_example(agents: list[str], roles: dict[str, str]) -> None:
    assert drf_paper_run(agents, roles) == {"A": 3, "B": 2}


# ---------------------------------------------------------------------------- properties

AGENTS = ["a0", "a1", "a2", "a3"]
FRAMEWORKS = ["f0", "f1", "f2", "f3"]
ROLES = ["r0", "r1", "r2"]


@dataclass
class FrameworkMirror:
    """What the test believes about a framework."""

    roles: set[str]
    caps: set[str]
    active: bool = True
    suppressed: set[str] = field(default_factory=set)


class AllocatorMachine(RuleBasedStateMachine):
    """Random calls; the allocator's books must always match what frameworks hold."""

    def __init__(self) -> None:
        super().__init__()
        self.allocator = DRFAllocator()
        self.now = 0.0
        # What frameworks hold, as they would know it: (fw, agent, role) -> Resources.
        self.held: dict[tuple[str, str, str], Resources] = {}
        self.frameworks: dict[str, FrameworkMirror] = {}
        self.inactive_agents: set[str] = set()

    @initialize(cpus=st.integers(1, 8), reserved=st.sampled_from(ROLES))
    def start(self, cpus: int, reserved: str) -> None:
        self.add_agent("a0", cpus, 2, None, False, False)
        self.add_agent("a1", cpus, 4, reserved, False, True)
        self.add_framework("f0", {"r0"}, set())
        self.add_framework("f1", {"r0", "r1"}, {REVOCABLE_RESOURCES})

    # --- agents ---

    @rule(
        agent=st.sampled_from(AGENTS),
        cpus=st.integers(1, 8),
        mem=st.integers(0, 4),
        reserved=st.none() | st.sampled_from(ROLES),
        gpus=st.booleans(),
        rev=st.booleans(),
    )
    def add_agent(
        self, agent: str, cpus: int, mem: int, reserved: str | None, gpus: bool, rev: bool
    ) -> None:
        if agent in self.allocator.agent_ids():
            return
        total = R(f"cpus:{cpus};mem:{mem * 256};ports:[31000-31004]")
        if reserved:
            total = total + R(f"cpus({reserved}):{cpus / 2};mem({reserved}):512")
        if gpus:
            total = total + R("gpus:1")
        if rev:
            total = total + revocable("cpus:2")
        self.allocator.add_agent(agent, total)
        self.inactive_agents.discard(agent)

    @rule(agent=st.sampled_from(AGENTS))
    def remove_agent(self, agent: str) -> None:
        self.allocator.remove_agent(agent)
        self.held = {k: v for k, v in self.held.items() if k[1] != agent}

    @rule(agent=st.sampled_from(AGENTS), active=st.booleans())
    def toggle_agent(self, agent: str, active: bool) -> None:
        if agent not in self.allocator.agent_ids():
            return
        if active:
            self.allocator.activate_agent(agent)
            self.inactive_agents.discard(agent)
        else:
            self.allocator.deactivate_agent(agent)
            self.inactive_agents.add(agent)

    # --- frameworks ---

    @rule(
        fw=st.sampled_from(FRAMEWORKS),
        roles=st.sets(st.sampled_from(ROLES), min_size=1),
        caps=st.sets(st.sampled_from([GPU_RESOURCES, REVOCABLE_RESOURCES])),
    )
    def add_framework(self, fw: str, roles: set[str], caps: set[str]) -> None:
        if fw in self.frameworks:
            self.allocator.update_framework(fw, sorted(roles), caps)
        else:
            self.allocator.add_framework(fw, sorted(roles), caps)
        self.frameworks[fw] = FrameworkMirror(roles, caps)

    @rule(fw=st.sampled_from(FRAMEWORKS))
    def remove_framework(self, fw: str) -> None:
        self.allocator.remove_framework(fw)
        self.frameworks.pop(fw, None)
        self.held = {k: v for k, v in self.held.items() if k[0] != fw}

    @rule(fw=st.sampled_from(FRAMEWORKS), active=st.booleans())
    def toggle_framework(self, fw: str, active: bool) -> None:
        if fw not in self.frameworks:
            return
        if active:
            self.allocator.activate_framework(fw)
        else:
            self.allocator.deactivate_framework(fw)
        self.frameworks[fw].active = active

    @rule(
        fw=st.sampled_from(FRAMEWORKS),
        role=st.none() | st.sampled_from(ROLES),
        revive=st.booleans(),
    )
    def suppress_or_revive(self, fw: str, role: str | None, revive: bool) -> None:
        if fw not in self.frameworks:
            return
        roles = None if role is None else [role]
        mirror = self.frameworks[fw]
        if revive:
            self.allocator.revive(fw, roles)
            mirror.suppressed.difference_update(roles or ROLES)
        else:
            self.allocator.suppress(fw, roles)
            mirror.suppressed.update(roles or mirror.roles)

    @rule(role=st.sampled_from(ROLES), weight=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    def weights(self, role: str, weight: float) -> None:
        self.allocator.update_weights({role: weight})

    # --- offers ---

    @rule(step=st.sampled_from([0.0, 1.0, 10.0]))
    def allocate(self, step: float) -> None:
        self.now += step
        before = {agent: self.allocator.available(agent) for agent in self.allocator.agent_ids()}
        given: dict[str, Resources] = {}
        for x in self.allocator.allocate(self.now):
            info = self.frameworks[x.framework_id]
            assert info.active and x.role in info.roles
            assert x.role not in info.suppressed
            assert x.agent_id not in self.inactive_agents
            # Reserved resources only to their role.
            assert x.resources.reserved() == x.resources.reserved(x.role)
            if x.resources.revocable():
                assert REVOCABLE_RESOURCES in info.caps
            if self.allocator.total(x.agent_id).scalar("gpus"):
                assert GPU_RESOURCES in info.caps
            assert x.resources.unallocated() == x.resources
            given[x.agent_id] = given.get(x.agent_id, Resources.empty()) + x.resources
            key = (x.framework_id, x.agent_id, x.role)
            self.held[key] = self.held.get(key, Resources.empty()) + x.resources
        for agent, resources in given.items():
            assert before[agent].contains(resources)  # never more than was available

    @rule(
        data=st.data(),
        refuse=st.sampled_from([None, 0.0, 5.0]),
        tagged=st.booleans(),
        part=st.sampled_from(["all", "unreserved", "cpus"]),
    )
    def recover(self, data: st.DataObject, refuse: float | None, tagged: bool, part: str) -> None:
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
        self.allocator.recover_resources(
            fw,
            agent,
            resources.allocate(role) if tagged else resources,
            refuse,
            self.now,
            role=None if tagged else role,
        )

    @invariant()
    def books_balance(self) -> None:
        self.allocator.validate()
        for agent in self.allocator.agent_ids():
            used = self.allocator.used(agent)
            assert self.allocator.total(agent).contains(used)  # never over-allocated
            mine = Resources.empty()
            for (_fw, held_agent, _role), resources in self.held.items():
                if held_agent == agent:
                    mine = mine + resources
            assert used == mine


TestAllocatorMachine = AllocatorMachine.TestCase
TestAllocatorMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@settings(max_examples=40, deadline=None)
@given(
    agents=st.integers(4, 24),
    roles=st.integers(2, 4),
    start=st.lists(st.integers(0, 3), min_size=24, max_size=24),
    frameworks_per_role=st.integers(1, 3),
)
def test_equal_weight_shares_converge(
    agents: int, roles: int, start: list[int], frameworks_per_role: int
) -> None:
    """From any starting imbalance, frameworks that each finish one task per round and
    take everything offered end within one agent's share of each other."""
    a = DRFAllocator()
    role_names = [f"r{i}" for i in range(roles)]
    for j in range(agents):
        role = f"r{start[j] % roles}"
        used = {f"{role}-f0": R("cpus:4;mem:4096").allocate(role)}
        a.add_agent(f"s{j:02}", R("cpus:4;mem:4096"), used=used)
    for role in role_names:
        for k in range(frameworks_per_role):
            a.add_framework(f"{role}-f{k}", [role], set())
    # Each framework holds its agents as one-agent "tasks".
    holding: dict[str, list[str]] = {}
    for role in role_names:
        for k in range(frameworks_per_role):
            fw = f"{role}-f{k}"
            holding[fw] = sorted(a.allocation(fw))
    for step in range(3 * agents):
        for fw, agent_ids in holding.items():
            if agent_ids:
                agent_id = agent_ids.pop(0)
                a.recover_resources(fw, agent_id, a.used(agent_id, fw), None, float(step))
        for x in a.allocate(float(step)):
            holding[x.framework_id].append(x.agent_id)
        a.validate()
    shares = [a.role_share(role) for role in role_names]
    assert max(shares) - min(shares) <= 1 / agents + 1e-9


def test_untagged_used_of_an_unknown_framework_moves_to_its_role() -> None:
    a = DRFAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"), used={"f": R("cpus:1;mem:256")})
    assert a.role_share("*") == pytest.approx(0.25)
    a.add_framework("f", ["r"], set())
    assert a.roles() == ["r"]
    assert a.role_share("r") == pytest.approx(0.25)
    assert a.allocation("f") == {"s1": {"r": R("cpus:1;mem:256")}}
    a.validate()


def test_weighted_convergence_from_imbalance() -> None:
    """Weight 3 vs 1: the heavy role ends with three times the light role's agents."""
    a = DRFAllocator()
    a.update_weights({"heavy": 3.0})
    for j in range(40):
        a.add_agent(f"s{j:02}", R("cpus:1;mem:1024"), used={"light-f": R("cpus:1;mem:1024")})
    a.add_framework("light-f", ["light"], set())
    a.add_framework("heavy-f", ["heavy"], set())
    for step in range(40):
        for fw in ("light-f", "heavy-f"):
            held = sorted(a.allocation(fw))
            if held:
                a.recover_resources(fw, held[0], a.used(held[0], fw), None, float(step))
        a.allocate(float(step))
    assert len(a.allocation("heavy-f")) == 30
    assert len(a.allocation("light-f")) == 10
