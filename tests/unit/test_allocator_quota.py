"""Quota: guarantees first, headroom held back, limits never exceeded, validation."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos.allocator import HierarchicalAllocator, Quota, QuotaError
from mesos.allocator.quota import validate
from mesos.resources import Resources

R = Resources.parse


def cluster(n: int, text: str = "cpus:1;mem:1024") -> HierarchicalAllocator:
    a = HierarchicalAllocator()
    for i in range(n):
        a.add_agent(f"s{i:03}", R(text))
    return a


def held(a: HierarchicalAllocator, now: float = 0.0) -> Counter[str]:
    counts = Counter(x.role for x in a.allocate(now))
    a.validate()
    return counts


# ---------------------------------------------------------------------------- guarantees


def test_guarantee_is_met_before_fair_share() -> None:
    """Without quota `ops` (lowest share, name first) would get half; with a guarantee of
    8 cpus `batch` gets its 8 first, the rest is shared."""
    a = cluster(10)
    a.add_framework("b", ["batch"])
    a.add_framework("o", ["ops"])
    a.update_quota("batch", {"cpus": 8, "mem": 8192})
    assert held(a) == {"batch": 8, "ops": 2}
    assert a.consumed("batch") == {"cpus": 8.0, "mem": 8192.0}


def test_guaranteed_role_still_gets_its_fair_share_beyond() -> None:
    a = cluster(10)
    a.add_framework("b", ["batch"])
    a.add_framework("o", ["ops"])
    a.update_quota("batch", {"cpus": 2})
    assert held(a) == {"batch": 5, "ops": 5}


def test_agents_are_chopped_to_the_guarantee() -> None:
    a = cluster(1, "cpus:8;mem:8192;disk:100")
    a.add_framework("b", ["batch"])
    a.add_framework("o", ["ops"])
    a.update_quota("batch", {"cpus": 3})
    got = {x.role: x.resources for x in a.allocate(0.0)}
    # Guaranteed kinds are cut to what is missing; others come along from the surplus.
    assert got["batch"] == R("cpus:3;mem:8192;disk:100")
    assert got["ops"] == R("cpus:5")
    a.validate()


def test_headroom_is_kept_for_a_guarantee_without_frameworks() -> None:
    a = cluster(10)
    a.add_framework("o", ["ops"])
    a.update_quota("later", {"cpus": 4, "mem": 4096})
    assert held(a) == {"ops": 6}
    available, required = a.headroom()
    assert required == {"cpus": 4.0, "mem": 4096.0}
    assert available == {"cpus": 4.0, "mem": 4096.0}
    a.add_framework("l", ["later"])
    assert held(a, 1.0) == {"later": 4}
    assert a.headroom()[1] == {}


def test_headroom_counts_reservations_as_consumption() -> None:
    a = HierarchicalAllocator()
    a.add_agent("r", R("cpus(later):2;mem(later):2048"))
    for i in range(4):
        a.add_agent(f"s{i}", R("cpus:1;mem:1024"))
    a.add_framework("o", ["ops"])
    a.update_quota("later", {"cpus": 3, "mem": 3072})
    assert held(a) == {"ops": 3}  # one more cpu of headroom is needed, not three


def test_parent_guarantee_serves_its_descendants() -> None:
    a = cluster(10)
    a.add_framework("web", ["eng/web"])
    a.add_framework("o", ["ops"])
    a.update_quota("eng", {"cpus": 7})
    assert held(a) == {"eng/web": 7, "ops": 3}


def test_child_guarantee_within_parent() -> None:
    a = cluster(10)
    a.add_framework("web", ["eng/web"])
    a.add_framework("api", ["eng/api"])
    a.add_framework("o", ["ops"])
    a.update_quotas({"eng": Quota.of({"cpus": 8}), "eng/web": Quota.of({"cpus": 6})})
    counts = held(a)
    assert counts["eng/web"] >= 6
    assert counts["eng/web"] + counts["eng/api"] >= 8


def test_stage_one_skips_roles_whose_frameworks_refuse() -> None:
    a = cluster(4)
    a.add_framework("b", ["batch"])
    a.add_framework("o", ["ops"])
    a.update_quota("batch", {"cpus": 2})
    offers = a.allocate(0.0)
    assert Counter(x.role for x in offers) == {"batch": 2, "ops": 2}
    for x in offers:
        if x.role == "batch":
            a.recover_resources(x.framework_id, x.agent_id, x.resources, 100.0, 0.0)
    # batch refused its agents: its guarantee is unmet again and the cpus it needs
    # stay back from ops, which only gets the (unguaranteed) memory.
    again = a.allocate(1.0)
    assert [x.role for x in again] == ["ops", "ops"]
    assert all(x.resources == R("mem:1024") for x in again)
    a.validate()


# ---------------------------------------------------------------------------- limits


def test_limits_are_never_exceeded() -> None:
    a = cluster(10)
    a.add_framework("b", ["batch"])
    a.update_quota("batch", limits={"cpus": 3.5})
    offers = a.allocate(0.0)
    assert sum(x.resources.scalar("cpus") for x in offers) == 3.5
    assert a.consumed("batch")["cpus"] == 3.5
    assert a.allocate(1.0) == []
    a.recover_resources(offers[0].framework_id, offers[0].agent_id, offers[0].resources, None, 1.0)
    again = a.allocate(2.0)
    assert sum(x.resources.scalar("cpus") for x in again) == offers[0].resources.scalar("cpus")
    a.validate()


def test_parent_limits_bind_children() -> None:
    a = cluster(10)
    a.add_framework("web", ["eng/web"])
    a.add_framework("api", ["eng/api"])
    a.update_quota("eng", limits={"cpus": 4})
    a.allocate(0.0)
    assert a.consumed("eng")["cpus"] == 4.0


def test_zero_limit_blocks_unreserved_but_not_reservations() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s", R("cpus:4;mem:1024;cpus(batch):1;mem(batch):128"))
    a.add_framework("b", ["batch"])
    a.update_quota("batch", limits={"cpus": 0, "mem": 0})
    [x] = a.allocate(0.0)
    assert x.resources == R("cpus(batch):1;mem(batch):128")


def test_removing_quota_releases_headroom() -> None:
    a = cluster(4)
    a.add_framework("o", ["ops"])
    a.update_quota("later", {"cpus": 4, "mem": 4096})
    assert a.allocate(0.0) == []
    a.update_quota("later")
    assert a.quotas() == {}
    assert held(a, 1.0) == {"ops": 4}


# ---------------------------------------------------------------------------- validation


def test_quota_parsing() -> None:
    q = Quota.of({"cpus": 1.5, "mem": {"value": 256}}, R("cpus:2;mem:512"))
    assert q.guarantees == {"cpus": 1500, "mem": 256000}
    assert q.limits == {"cpus": 2000, "mem": 512000}
    assert q.to_json() == {
        "guarantees": {"cpus": 1.5, "mem": 256.0},
        "limits": {"cpus": 2.0, "mem": 512.0},
    }
    for bad in ({"cpus": -1}, {"cpus": "x"}, {"cpus": float("inf")}, {"cpus": True}):
        with pytest.raises(QuotaError):
            Quota.of(bad)


def test_validation_rules() -> None:
    validate({"eng": Quota.of({"cpus": 4}, {"cpus": 8}), "eng/web": Quota.of({"cpus": 4})})
    with pytest.raises(QuotaError, match="exceeds its limit"):
        validate({"eng": Quota.of({"cpus": 4}, {"cpus": 2})})
    with pytest.raises(QuotaError, match="children's guarantees"):
        validate({"eng": Quota.of({"cpus": 4}), "eng/web": Quota.of({"cpus": 3}),
                  "eng/api": Quota.of({"cpus": 2})})
    with pytest.raises(QuotaError, match="children's guarantees"):
        validate({"eng/web": Quota.of({"cpus": 1})})


def test_invalid_update_changes_nothing() -> None:
    a = cluster(2)
    a.update_quota("eng", {"cpus": 2})
    with pytest.raises(QuotaError):
        a.update_quota("eng/web", {"cpus": 3})
    assert a.quotas() == {"eng": Quota.of({"cpus": 2})}
    a.validate()


# ---------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=12),
    guarantees=st.lists(st.integers(0, 8), min_size=3, max_size=3),
    limits=st.lists(st.none() | st.integers(0, 12), min_size=3, max_size=3),
    greedy=st.integers(1, 4),
)
def test_guarantees_first_and_limits_never_exceeded(
    sizes: list[int], guarantees: list[int], limits: list[int | None], greedy: int
) -> None:
    """Greedy roles without quota never keep a satisfiable guarantee unmet, and no
    role ever ends above its limit."""
    a = HierarchicalAllocator(min_allocatable=[])
    for i, cpus in enumerate(sizes):
        a.add_agent(f"s{i:02}", R(f"cpus:{cpus};mem:{cpus * 1024}"))
    cluster_cpus = sum(sizes)
    quota_roles = ["q0", "q1", "q2"]
    budget = cluster_cpus
    for role, guarantee, limit in zip(quota_roles, guarantees, limits, strict=True):
        guarantee = min(guarantee, budget)
        budget -= guarantee
        if limit is not None:
            guarantee = min(guarantee, limit)
        a.update_quota(
            role,
            {"cpus": guarantee} if guarantee else None,
            {"cpus": limit} if limit is not None else None,
        )
        a.add_framework(f"{role}-f", [role])
    for k in range(greedy):
        a.add_framework(f"greedy-{k}", [f"g{k}"])
    a.allocate(0.0)
    a.validate()
    for role in quota_roles:
        q = a.quota(role)
        consumed = a.consumed(role).get("cpus", 0.0)
        if "cpus" in q.limits:
            assert consumed <= q.limits["cpus"] / 1000
        if "cpus" in q.guarantees:
            assert consumed >= q.guarantees["cpus"] / 1000, (role, consumed, q)
