"""The weighted random sorter, and the sorter factory behind `--role_sorter`."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos.allocator.sorter import DRFSorter, RandomSorter, Sorter, sorter_factory


def make(*clients: str, seed: int = 7) -> RandomSorter:
    sorter = RandomSorter(seed)
    sorter.add_total({"cpus": 100})
    for client in clients:
        sorter.add(client)
        sorter.activate(client)
    return sorter


def test_is_a_sorter() -> None:
    assert isinstance(RandomSorter(), Sorter)


def test_sort_is_a_permutation_of_the_active_clients() -> None:
    sorter = make("a", "b", "c", "d")
    sorter.deactivate("c")
    for _ in range(20):
        assert sorted(sorter.sort()) == ["a", "b", "d"]
    assert sorter.active_count() == 3


def test_same_seed_same_orders() -> None:
    one, two = make("a", "b", "c", seed=3), make("a", "b", "c", seed=3)
    assert [one.sort() for _ in range(10)] == [two.sort() for _ in range(10)]


def test_equal_weights_are_uniform() -> None:
    sorter = make("a", "b", "c")
    firsts = Counter(sorter.sort()[0] for _ in range(3000))
    assert all(900 < count < 1100 for count in firsts.values()), firsts


def test_weights_bias_who_comes_first() -> None:
    sorter = make("heavy", "light")
    sorter.update_weight("heavy", 3.0)
    firsts = Counter(next(sorter.iterate()) for _ in range(4000))
    assert 2800 < firsts["heavy"] < 3200, firsts  # 3/4 of the time


def test_allocations_are_tracked_but_do_not_order() -> None:
    sorter = make("a", "b")
    sorter.allocated("a", {"cpus": 50})
    assert sorter.allocation("a") == {"cpus": 50}
    assert sorter.share("a") == pytest.approx(0.5)
    assert Counter(sorter.sort()[0] for _ in range(400))["a"] > 100
    sorter.unallocated("a", {"cpus": 50})
    assert sorter.allocation("a") == {}


def test_remove_and_duplicates() -> None:
    sorter = make("a", "b")
    with pytest.raises(ValueError):
        sorter.add("a")
    sorter.remove("a")
    assert sorter.sort() == ["b"]
    assert len(sorter) == 1 and not sorter.contains("a")
    with pytest.raises(ValueError):
        sorter.update_weight("b", -1)


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.booleans()), max_size=40))
def test_activation_bookkeeping(ops: list[tuple[str, bool]]) -> None:
    sorter = make(*"abcdef")
    active = set("abcdef")
    for client, on in ops:
        (sorter.activate if on else sorter.deactivate)(client)
        (active.add if on else active.discard)(client)
        assert sorted(sorter.sort()) == sorted(active)
        assert all(sorter.is_active(c) == (c in active) for c in "abcdef")


def test_factory_names() -> None:
    assert isinstance(sorter_factory("drf")(), DRFSorter)
    assert isinstance(sorter_factory("random", seed=1)(), RandomSorter)
    with pytest.raises(ValueError, match="Unknown sorter 'fair'"):
        sorter_factory("fair")


def test_seeded_factory_is_reproducible() -> None:
    def orders(seed: int) -> list[list[str]]:
        make_sorter = sorter_factory("random", seed=seed)
        sorters = [make_sorter() for _ in range(3)]
        result = []
        for sorter in sorters:
            for client in "abcd":
                sorter.add(client)
                sorter.activate(client)
            result.append(sorter.sort())
        return result

    assert orders(5) == orders(5)


def test_drf_iterate_matches_sort_and_is_lazy() -> None:
    sorter = DRFSorter()
    sorter.add_total({"cpus": 10})
    for client, amount in (("a", 3), ("b", 1), ("c", 2)):
        sorter.add(client)
        sorter.activate(client)
        sorter.allocated(client, {"cpus": amount})
    assert list(sorter.iterate()) == sorter.sort() == ["b", "c", "a"]
    it = sorter.iterate()
    assert next(it) == "b"


def test_drf_integer_thousandths_are_exact() -> None:
    sorter = DRFSorter()
    sorter.add_total({"cpus": 10_000})
    sorter.add("a")
    for _ in range(10):
        sorter.allocated("a", {"cpus": 100})
    for _ in range(10):
        sorter.unallocated("a", {"cpus": 100})
    assert sorter.allocation("a") == {}
