"""The allocation cycle: incremental candidates, convergence over a role tree, the DRF
paper's example through hierarchical roles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos.allocator import HierarchicalAllocator
from mesos.resources import Resources

R = Resources.parse


def test_a_cycle_after_one_recovery_looks_at_that_agent_only() -> None:
    a = HierarchicalAllocator()
    for i in range(50):
        a.add_agent(f"s{i:02}", R("cpus:2;mem:1024"))
    a.add_framework("f", ["r"])
    a.add_framework("g", ["r"])
    assert len(a.allocate(0.0)) == 50
    assert a._candidates() == []
    x = a.allocation("g")["s07"]["r"]
    a.recover_resources("g", "s07", x, None, 1.0)
    assert [agent.id for agent in a._candidates()] == ["s07"]
    a.recover_resources("g", "s07", Resources.empty(), None, 1.0)
    a._touch(a._agents["s07"])
    [again] = a.allocate(1.0)
    assert (again.agent_id, again.resources) == ("s07", x)


def test_unwanted_agents_are_not_looked_at_again_until_something_changes() -> None:
    a = HierarchicalAllocator()
    a.add_agent("gpu", R("cpus:2;mem:1024;gpus:1"))
    a.add_framework("plain", ["r"])
    assert a.allocate(0.0) == []
    assert a._candidates() == []  # nobody can take it: no cycle looks at it
    a.add_framework("gpu-fw", ["r"], {"GPU_RESOURCES"})
    assert [x.framework_id for x in a.allocate(1.0)] == ["gpu-fw"]


def test_full_cycle_finds_the_same() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:2;mem:1024"))
    a.add_framework("f", ["r"])
    a.suppress("f")
    assert a.allocate(0.0) == []
    a.revive("f")
    assert len(a.allocate(1.0, full=True)) == 1
    assert a.allocate(2.0, full=True) == []


def test_update_agent_moves_reservations() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.update_agent("s1", R("cpus:2;mem:512;cpus(ops):2;mem(ops):512"))
    assert a.consumed("ops") == {"cpus": 2.0, "mem": 512.0}
    a.add_framework("o", ["ops"])
    [x] = a.allocate(0.0)
    assert x.resources == R("cpus:2;mem:512;cpus(ops):2;mem(ops):512")
    assert a.consumed("ops") == {"cpus": 4.0, "mem": 1024.0}  # what it holds
    a.recover_resources("o", "s1", x.resources, None, 0.0)
    a.update_agent("s1", R("cpus:4;mem:1024"))
    assert a.consumed("ops") == {}
    a.validate()


def test_deactivated_agents_are_not_headroom() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.update_quota("later", {"cpus": 4})
    a.deactivate_agent("s2")
    assert a.headroom()[0]["cpus"] == 4.0
    a.add_framework("o", ["ops"])
    [x] = a.allocate(0.0)
    assert x.resources == R("mem:1024")  # the cpus stay back for "later"
    a.activate_agent("s2")
    # Now 8 cpus are free and 4 must stay: s1's cpus go, s2's stay (its memory goes).
    got = {y.agent_id: y.resources for y in a.allocate(1.0)}
    assert got == {"s1": R("cpus:4"), "s2": R("mem:1024")}
    a.validate()


# ---------------------------------------------------------------------------- convergence


@settings(max_examples=25, deadline=None)
@given(agents=st.integers(6, 24), start=st.lists(st.integers(0, 2), min_size=24, max_size=24))
def test_equal_weight_subtrees_converge(agents: int, start: list[int]) -> None:
    """`a/x`, `a/y` and `b`: from any starting imbalance the top-level roles `a` and `b`
    end within one agent of each other, and so do `a/x` and `a/y` inside `a`."""
    roles = ["a/x", "a/y", "b"]
    alloc = HierarchicalAllocator()
    for j in range(agents):
        role = roles[start[j] % 3]
        alloc.add_agent(f"s{j:02}", R("cpus:4;mem:4096"), used={role: R("cpus:4;mem:4096").allocate(role)})
    for role in roles:
        alloc.add_framework(role, [role])
    holding = {role: sorted(alloc.allocation(role)) for role in roles}
    for step in range(3 * agents):
        for fw, agent_ids in holding.items():
            if agent_ids:
                agent_id = agent_ids.pop(0)
                alloc.recover_resources(fw, agent_id, alloc.used(agent_id, fw), None, float(step))
        for x in alloc.allocate(float(step)):
            holding[x.framework_id].append(x.agent_id)
    alloc.validate()
    share = 1 / agents
    assert abs(alloc.role_share("a") - alloc.role_share("b")) <= share + 1e-9
    assert abs(alloc.role_share("a/x") - alloc.role_share("a/y")) <= share + 1e-9


@pytest.mark.parametrize("roles", [("org/a", "org/b"), ("a/x", "b/y")])
def test_drf_paper_example_with_hierarchical_roles(roles: tuple[str, str]) -> None:
    """Ghodsi et al. §4 through nested roles: A <1 CPU, 4 GB> ends with 3 tasks,
    B <3 CPUs, 1 GB> with 2, on 9 CPUs and 18 GB."""
    a = HierarchicalAllocator()
    a.add_agent("s0", R("cpus:9;mem:18432"))
    a.add_framework("A", [roles[0]])
    a.add_framework("B", [roles[1]])
    task = {"A": R("cpus:1;mem:4096"), "B": R("cpus:3;mem:1024")}
    tasks = {"A": 0, "B": 0}
    for step in range(50):
        launched = False
        for offer in a.allocate(float(step)):
            rest = offer.resources
            if rest.contains(task[offer.framework_id]):
                tasks[offer.framework_id] += 1
                rest = rest - task[offer.framework_id]
                launched = True
            a.recover_resources(offer.framework_id, offer.agent_id, rest, 0.0, float(step))
        if not launched:
            break
    a.validate()
    assert tasks == {"A": 3, "B": 2}
