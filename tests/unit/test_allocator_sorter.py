"""The weighted DRF sorter on its own: shares, weights, ties, activation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos.allocator.sorter import DRFSorter, Sorter


def make(total: dict[str, float], *clients: str) -> DRFSorter:
    sorter = DRFSorter()
    sorter.add_total(total)
    for client in clients:
        sorter.add(client)
        sorter.activate(client)
    return sorter


def test_is_a_sorter() -> None:
    assert isinstance(DRFSorter(), Sorter)


def test_dominant_share_is_the_largest_fraction() -> None:
    sorter = make({"cpus": 10, "mem": 100}, "a", "b")
    sorter.allocated("a", {"cpus": 1, "mem": 50})  # mem-dominant: 0.5
    sorter.allocated("b", {"cpus": 4, "mem": 10})  # cpu-dominant: 0.4
    assert sorter.share("a") == pytest.approx(0.5)
    assert sorter.share("b") == pytest.approx(0.4)
    assert sorter.sort() == ["b", "a"]


def test_ties_are_broken_by_name() -> None:
    sorter = make({"cpus": 10}, "c", "a", "b")
    assert sorter.sort() == ["a", "b", "c"]
    sorter.allocated("a", {"cpus": 1})
    sorter.allocated("b", {"cpus": 1})
    assert sorter.sort() == ["c", "a", "b"]


def test_weights_divide_the_share() -> None:
    sorter = make({"cpus": 10}, "heavy", "light")
    sorter.update_weight("heavy", 2.0)
    sorter.allocated("heavy", {"cpus": 4})  # 0.4 / 2 = 0.2
    sorter.allocated("light", {"cpus": 3})  # 0.3
    assert sorter.sort() == ["heavy", "light"]
    assert sorter.share("heavy") == pytest.approx(0.2)


def test_weight_set_before_client_exists_applies_later() -> None:
    sorter = make({"cpus": 10})
    sorter.update_weight("later", 4.0)
    sorter.add("later")
    sorter.allocated("later", {"cpus": 4})
    assert sorter.share("later") == pytest.approx(0.1)
    assert sorter.weight("later") == 4.0
    with pytest.raises(ValueError):
        sorter.update_weight("later", 0)


def test_inactive_clients_keep_their_allocation_but_are_not_sorted() -> None:
    sorter = make({"cpus": 10}, "a", "b")
    sorter.allocated("a", {"cpus": 5})
    sorter.deactivate("a")
    assert sorter.sort() == ["b"]
    assert sorter.allocation("a") == {"cpus": 5}
    assert sorter.active_count() == 1
    sorter.activate("a")
    assert sorter.sort() == ["b", "a"]


def test_unallocated_returns_to_zero_exactly() -> None:
    sorter = make({"cpus": 1}, "a")
    for _ in range(10):
        sorter.allocated("a", {"cpus": 0.1})
    for _ in range(10):
        sorter.unallocated("a", {"cpus": 0.1})
    assert sorter.allocation("a") == {}
    assert sorter.share("a") == 0.0


def test_total_changes_reorder() -> None:
    sorter = make({"cpus": 10, "mem": 100}, "a", "b")
    sorter.allocated("a", {"cpus": 5})
    sorter.allocated("b", {"mem": 40})
    assert sorter.sort() == ["b", "a"]
    sorter.add_total({"cpus": 90})  # cpus now plentiful: a's share drops to 0.05
    assert sorter.sort() == ["a", "b"]
    sorter.remove_total({"cpus": 90})
    assert sorter.sort() == ["b", "a"]


def test_excluded_resource_names_do_not_count() -> None:
    sorter = DRFSorter(excluded_resource_names=["gpus"])
    sorter.add_total({"cpus": 10, "gpus": 1})
    sorter.add("a")
    sorter.allocated("a", {"cpus": 1, "gpus": 1})
    assert sorter.share("a") == pytest.approx(0.1)


def test_remove_and_duplicates() -> None:
    sorter = make({"cpus": 1}, "a")
    with pytest.raises(ValueError):
        sorter.add("a")
    sorter.remove("a")
    assert not sorter.contains("a")
    assert sorter.sort() == []
    assert len(sorter) == 0


@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcde"),
            st.sampled_from(["alloc", "unalloc", "weight", "toggle", "total"]),
            st.integers(min_value=1, max_value=50),
        ),
        max_size=60,
    )
)
def test_incremental_order_matches_a_fresh_sort(ops: list[tuple[str, str, int]]) -> None:
    """However it got there, `sort()` equals sorting by (share, name) from scratch."""
    sorter = make({"cpus": 100, "mem": 1000}, *"abcde")
    for client, op, amount in ops:
        if op == "alloc":
            sorter.allocated(client, {"cpus": amount / 10, "mem": amount * 3})
        elif op == "unalloc":
            sorter.unallocated(client, {"cpus": amount / 10})
        elif op == "weight":
            sorter.update_weight(client, amount / 7)
        elif op == "toggle":
            (sorter.deactivate if sorter.is_active(client) else sorter.activate)(client)
        else:
            sorter.add_total({"mem": amount})
        active = [c for c in "abcde" if sorter.is_active(c)]
        assert sorter.sort() == sorted(active, key=lambda c: (sorter.share(c), c))
