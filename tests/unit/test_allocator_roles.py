"""Hierarchical roles, reservation refinement, `--roles`, sorters and regions."""

from __future__ import annotations

from collections import Counter

import pytest

from mesos.allocator import HierarchicalAllocator, Quota
from mesos.allocator.interface import REGION_AWARE
from mesos.allocator.role_tree import RoleTree, check_roles, parse_roles_flag
from mesos.allocator.sorter import DRFSorter
from mesos.resources import Resources

R = Resources.parse


def agents(a: HierarchicalAllocator, n: int, text: str = "cpus:1;mem:1024") -> None:
    for i in range(n):
        a.add_agent(f"s{i:03}", R(text))


def roles_given(a: HierarchicalAllocator, now: float = 0.0) -> Counter[str]:
    result = Counter(x.role for x in a.allocate(now))
    a.validate()
    return result


# ---------------------------------------------------------------------------- the tree


def test_subtrees_share_as_one() -> None:
    """`eng/web` and `eng/api` share what `eng` gets; `eng` and `ops` split evenly."""
    a = HierarchicalAllocator()
    agents(a, 40)
    a.add_framework("web", ["eng/web"])
    a.add_framework("api", ["eng/api"])
    a.add_framework("ops", ["ops"])
    counts = roles_given(a)
    assert counts == {"ops": 20, "eng/web": 10, "eng/api": 10}
    assert a.role_share("eng") == pytest.approx(a.role_share("ops"))
    assert a.role_share("eng/web") == pytest.approx(0.25)  # of the pool, among its siblings


def test_flat_roles_would_split_three_ways() -> None:
    a = HierarchicalAllocator()
    agents(a, 30)
    for name in ("web", "api", "ops"):
        a.add_framework(name, [name])
    assert roles_given(a) == {"web": 10, "api": 10, "ops": 10}


def test_frameworks_in_a_parent_role_compete_with_its_children() -> None:
    """The virtual leaf: frameworks in `eng` itself are one more child of `eng`."""
    a = HierarchicalAllocator()
    agents(a, 40)
    a.add_framework("eng-self", ["eng"])
    a.add_framework("web", ["eng/web"])
    a.add_framework("ops", ["ops"])
    assert roles_given(a) == {"ops": 20, "eng": 10, "eng/web": 10}


def test_child_added_after_parent_holds_resources() -> None:
    a = HierarchicalAllocator()
    agents(a, 4)
    a.add_framework("eng-self", ["eng"])
    assert roles_given(a) == {"eng": 4}
    a.add_framework("web", ["eng/web"])  # eng gets a sorter with its virtual leaf
    a.add_agent("extra", R("cpus:1;mem:1024"))
    assert roles_given(a) == {"eng/web": 1}
    assert a.role_share("eng") == pytest.approx(1.0)


def test_subrole_weights_apply_among_siblings() -> None:
    a = HierarchicalAllocator()
    agents(a, 40)
    a.update_weights({"eng/web": 3.0})
    a.add_framework("web", ["eng/web"])
    a.add_framework("api", ["eng/api"])
    a.add_framework("ops", ["ops"])
    assert roles_given(a) == {"ops": 20, "eng/web": 15, "eng/api": 5}


def test_top_level_weights() -> None:
    a = HierarchicalAllocator()
    agents(a, 40)
    a.add_framework("web", ["eng/web"])
    a.add_framework("ops", ["ops"])
    a.update_weights({"eng": 3.0})
    assert roles_given(a) == {"eng/web": 30, "ops": 10}
    assert a.weights() == {"eng": 3.0}


def test_roles_are_pruned_when_nothing_refers_to_them() -> None:
    a = HierarchicalAllocator()
    agents(a, 2)
    a.add_framework("web", ["eng/web/prod"])
    [x, _] = a.allocate(0.0)
    a.remove_framework("web")
    assert a.roles() == []
    assert a.role_share("eng") == 0.0
    assert len(a._tree) == 0
    a.add_framework("again", ["eng"])
    assert roles_given(a, 1.0) == {"eng": 2}
    del x


def test_role_tree_activity_follows_frameworks() -> None:
    tree = RoleTree(DRFSorter)
    web = tree.ensure("eng/web")
    web.frameworks.add("f")
    assert list(tree.iterate()) == []
    web.frameworks.activate("f")
    tree.sync_activity(web)
    assert [r.path for r in tree.iterate()] == ["eng/web"]
    eng = tree["eng"]
    eng.frameworks.add("g")
    eng.frameworks.activate("g")
    tree.sync_activity(eng)
    assert sorted(r.path for r in tree.iterate()) == ["eng", "eng/web"]
    assert eng.active_roles == 2 and tree.root.active_roles == 2
    web.frameworks.remove("f")
    tree.sync_activity(web)
    tree.prune(web)
    assert "eng/web" not in tree and eng.sorter is None
    assert [r.path for r in tree.iterate()] == ["eng"]


# ---------------------------------------------------------------------------- reservations


def test_reservations_go_to_the_role_and_its_descendants_only() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus(eng):2;mem(eng):512"))
    a.add_framework("star", ["*"])
    a.add_framework("ops", ["ops"])
    assert a.allocate(0.0) == []
    a.add_framework("web", ["eng/web"])
    [x] = a.allocate(0.0)
    assert (x.framework_id, x.role) == ("web", "eng/web")
    assert x.resources == R("cpus(eng):2;mem(eng):512")
    a.validate()


def test_refined_reservations_do_not_go_up() -> None:
    a = HierarchicalAllocator()
    refined = R("cpus(eng):2;mem(eng):512").push_reservation({"type": "DYNAMIC", "role": "eng/web"})
    a.add_agent("s1", refined)
    a.add_framework("eng", ["eng"])
    a.add_framework("api", ["eng/api"])
    assert a.allocate(0.0) == []
    a.add_framework("web", ["eng/web"])
    [x] = a.allocate(0.0)
    assert x.role == "eng/web" and x.resources == refined


def test_reservations_count_toward_consumption_until_used() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus(eng/web):2;mem(eng/web):512;cpus:4;mem:1024"))
    assert a.consumed("eng") == {"cpus": 2.0, "mem": 512.0}
    assert a.consumed("eng/web") == {"cpus": 2.0, "mem": 512.0}
    a.add_framework("web", ["eng/web"])
    [x] = a.allocate(0.0)
    assert a.consumed("eng") == {"cpus": 6.0, "mem": 1536.0}
    a.recover_resources("web", "s1", x.resources, None, 0.0)
    assert a.consumed("eng") == {"cpus": 2.0, "mem": 512.0}
    a.validate()


def test_dynamic_reservation_of_offered_resources() -> None:
    """RESERVE inside ACCEPT: the framework keeps holding, now reserved."""
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_framework("f", ["eng"])
    [x] = a.allocate(0.0)
    old = R("cpus:2;mem:512")
    new = old.push_reservation({"type": "DYNAMIC", "role": "eng", "principal": "p"})
    a.update_allocation("f", "s1", "eng", old, new)
    assert a.used("s1", "f") == R("cpus:2;mem:512") + new
    assert a.total("s1") == R("cpus:2;mem:512") + new
    a.recover_resources("f", "s1", a.used("s1", "f"), None, 0.0)
    assert a.consumed("eng") == {"cpus": 2.0, "mem": 512.0}  # the reservation
    a.suppress("f")
    a.add_framework("other", ["ops"])
    [y] = a.allocate(0.0)
    assert (y.framework_id, y.resources) == ("other", R("cpus:2;mem:512"))
    with pytest.raises(ValueError):
        a.update_allocation("f", "s1", "eng", R("cpus:100"), R("cpus:100"))
    a.validate()
    assert x.resources == R("cpus:4;mem:1024")


def test_operator_reserve_of_available_resources() -> None:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    old = R("cpus:1;mem:256")
    new = old.push_reservation({"type": "DYNAMIC", "role": "ops"})
    a.update_available("s1", old, new)
    assert a.available("s1") == R("cpus:3;mem:768") + new
    assert a.consumed("ops") == {"cpus": 1.0, "mem": 256.0}
    a.add_framework("star", ["*"])
    [x] = a.allocate(0.0)
    assert x.resources == R("cpus:3;mem:768")
    with pytest.raises(ValueError):
        a.update_available("s1", R("cpus:4"), R("cpus:4"))
    a.update_available("s1", new, old)  # UNRESERVE
    assert a.consumed("ops") == {}
    a.validate()


# ---------------------------------------------------------------------------- --roles


def test_roles_whitelist() -> None:
    assert parse_roles_flag(None) is None
    whitelist = parse_roles_flag("eng, ops")
    assert whitelist == frozenset({"eng", "ops", "*"})
    check_roles(["eng", "*"], whitelist)
    with pytest.raises(ValueError, match="'dev' is not present"):
        check_roles(["eng", "dev"], whitelist)
    a = HierarchicalAllocator(roles="eng,ops")
    a.add_framework("f", ["eng"])
    with pytest.raises(ValueError):
        a.add_framework("g", ["dev"])
    with pytest.raises(ValueError):
        a.update_framework("f", ["dev"], ())
    assert a.framework_ids() == ["f"]
    assert a.roles() == ["eng"]


# ---------------------------------------------------------------------------- sorters


def test_random_sorters_still_give_each_agent_once() -> None:
    a = HierarchicalAllocator(role_sorter="random", framework_sorter="random", seed=11)
    agents(a, 60)
    for i in range(6):
        a.add_framework(f"f{i}", [f"r{i % 3}"])
    offers = a.allocate(0.0)
    assert sorted(x.agent_id for x in offers) == [f"s{i:03}" for i in range(60)]
    counts = Counter(x.role for x in offers)
    assert set(counts) == {"r0", "r1", "r2"}
    a.validate()


def test_random_sorter_is_reproducible_with_a_seed() -> None:
    def run() -> list[tuple[str, str]]:
        a = HierarchicalAllocator(role_sorter="random", seed=3)
        agents(a, 20)
        for i in range(4):
            a.add_framework(f"f{i}", [f"r{i}"])
        return [(x.framework_id, x.agent_id) for x in a.allocate(0.0)]

    assert run() == run()


def test_unknown_sorter_name() -> None:
    with pytest.raises(ValueError):
        HierarchicalAllocator(role_sorter="fifo")


# ---------------------------------------------------------------------------- regions


def test_remote_regions_only_to_region_aware_frameworks() -> None:
    a = HierarchicalAllocator(local_region="eu")
    a.add_agent("local", R("cpus:1;mem:1024"), domain={"fault_domain": {"region": {"name": "eu"}}})
    a.add_agent("remote", R("cpus:1;mem:1024"), domain="us")
    a.add_agent("nowhere", R("cpus:1;mem:1024"))
    a.add_framework("a-plain", ["*"])
    a.add_framework("b-aware", ["*"], {REGION_AWARE})
    a.add_framework("c-plain", ["*"])
    got = {x.agent_id: x.framework_id for x in a.allocate(0.0)}
    assert got["remote"] == "b-aware"
    assert got["local"] != "b-aware" and got["nowhere"] != "b-aware"


def test_without_a_local_region_every_agent_is_local() -> None:
    a = HierarchicalAllocator()
    a.add_agent("remote", R("cpus:1;mem:1024"), domain="us")
    a.add_framework("plain", ["*"])
    assert len(a.allocate(0.0)) == 1


def test_removing_nested_quotas_prunes_the_whole_branch() -> None:
    a = HierarchicalAllocator()
    a.update_quota("eng", {"cpus": 2})
    a.update_quota("eng/web", {"cpus": 1})
    assert "eng/web" in a._tree
    a.update_quotas({"eng/web": Quota(), "eng": Quota()})
    assert len(a._tree) == 0
    a.validate()
