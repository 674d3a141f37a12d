"""Maintenance (inverse offers) and `--allocator=NAME` loading."""

from __future__ import annotations

import pytest

from mesos.allocator import Allocator, HierarchicalAllocator, InverseOffer, load_allocator
from mesos.allocator.loader import AllocatorNotFound, available_allocators
from mesos.allocator.maintenance import Unavailability
from mesos.resources import Resources

R = Resources.parse


def draining() -> HierarchicalAllocator:
    a = HierarchicalAllocator()
    a.add_agent("s1", R("cpus:4;mem:1024"))
    a.add_agent("s2", R("cpus:4;mem:1024"))
    a.add_framework("f1", ["*"])
    a.add_framework("f2", ["*"])
    a.allocate(0.0)  # f1 gets s1, f2 gets s2
    a.update_unavailability("s1", start=100.0, duration=3600.0)
    return a


def test_inverse_offers_go_to_frameworks_holding_resources_there() -> None:
    a = draining()
    window = Unavailability(100.0, 3600.0)
    assert a.unavailability("s1") == window
    assert a.inverse_offers(1.0) == [InverseOffer("f1", "s1", window)]
    assert a.inverse_offers(2.0) == []  # outstanding: not sent twice
    assert a.maintenance.outstanding("s1") == {"f1"}


def test_answer_without_filter_is_asked_again() -> None:
    a = draining()
    a.inverse_offers(1.0)
    a.update_inverse_offer("s1", "f1", False, None, 2.0)
    assert a.maintenance.answers("s1") == {"f1": "DECLINE"}
    assert [x.framework_id for x in a.inverse_offers(3.0)] == ["f1"]


def test_refuse_seconds_hold_the_next_inverse_offer_back() -> None:
    a = draining()
    a.inverse_offers(1.0)
    a.update_inverse_offer("s1", "f1", True, 10.0, 2.0)
    assert a.maintenance.answers("s1") == {"f1": "ACCEPT"}
    assert a.inverse_offers(11.9) == []
    assert [x.framework_id for x in a.inverse_offers(12.0)] == ["f1"]


def test_rescinded_inverse_offer_is_no_longer_outstanding() -> None:
    a = draining()
    a.inverse_offers(1.0)
    a.update_inverse_offer("s1", "f1", None, None, 2.0)
    assert a.maintenance.answers("s1") == {}
    assert len(a.inverse_offers(3.0)) == 1


def test_new_window_asks_again_and_cancel_stops() -> None:
    a = draining()
    a.inverse_offers(1.0)
    a.update_inverse_offer("s1", "f1", True, 1000.0, 2.0)
    a.update_unavailability("s1", start=200.0)
    [x] = a.inverse_offers(3.0)
    assert x.unavailability == Unavailability(200.0) and x.unavailability.end is None
    a.update_unavailability("s1", None)
    assert a.unavailability("s1") is None
    assert a.inverse_offers(4.0) == []


def test_frameworks_that_released_everything_get_none() -> None:
    a = draining()
    a.recover_resources("f1", "s1", a.used("s1", "f1"), None, 1.0)
    a.update_unavailability("s1", start=100.0)
    assert a.inverse_offers(1.0) == []
    # Draining agents are still offered (the offer carries the window).
    assert [(x.framework_id, x.agent_id) for x in a.allocate(1.0)] == [("f1", "s1")]
    assert len(a.inverse_offers(2.0)) == 1


def test_removal_forgets_maintenance_state() -> None:
    a = draining()
    a.inverse_offers(1.0)
    a.remove_framework("f1")
    assert a.maintenance.outstanding("s1") == set()
    a.remove_agent("s1")
    assert a.unavailability("s1") is None
    with pytest.raises(KeyError):
        a.update_unavailability("s1", 5.0)


def test_unavailability_json() -> None:
    assert Unavailability(1.5, 2.0).to_json() == {
        "start": {"nanoseconds": 1_500_000_000},
        "duration": {"nanoseconds": 2_000_000_000},
    }
    assert Unavailability(3.0).started(3.0) and not Unavailability(3.0).started(2.9)


# ---------------------------------------------------------------------------- loading


def test_default_allocator_by_entry_point() -> None:
    assert {"drf", "hierarchical"} <= set(available_allocators())
    for name in ("hierarchical", "drf"):
        allocator = load_allocator(name, role_sorter="random", seed=1)
        assert isinstance(allocator, HierarchicalAllocator)
        assert isinstance(allocator, Allocator)


def test_allocator_by_module_path() -> None:
    allocator = load_allocator("mesos.allocator.hierarchical:HierarchicalAllocator")
    assert isinstance(allocator, HierarchicalAllocator)


def test_unknown_allocators() -> None:
    with pytest.raises(AllocatorNotFound, match=r"available: .*hierarchical"):
        load_allocator("fifo")
    with pytest.raises(AllocatorNotFound):
        load_allocator("mesos.allocator.nothing:Here")
    with pytest.raises(TypeError):
        load_allocator("mesos.allocator.quota:Quota")
