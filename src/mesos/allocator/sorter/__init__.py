"""Sorters: the order in which roles, and frameworks within a role, are offered.

`--role_sorter` and `--framework_sorter` name one of `SORTERS`; `sorter_factory`
turns the name into a factory of fresh sorters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from random import Random

from mesos.allocator.sorter.base import Quantities, Sorter
from mesos.allocator.sorter.drf import DRFSorter
from mesos.allocator.sorter.random import RandomSorter

__all__ = ["SORTERS", "DRFSorter", "Quantities", "RandomSorter", "Sorter", "sorter_factory"]

SORTERS = ("drf", "random")


def sorter_factory(
    name: str, *, excluded_resource_names: Iterable[str] = (), seed: int | None = None
) -> Callable[[], Sorter]:
    """A factory of `name` sorters ("drf" or "random"); ValueError for other names.

    Random sorters made by one factory draw their seeds from one generator seeded with
    `seed`, so a seeded allocator is reproducible as a whole.
    """
    excluded = tuple(excluded_resource_names)
    if name == "drf":
        return lambda: DRFSorter(excluded)
    if name == "random":
        seeds = Random(seed)
        return lambda: RandomSorter(seeds.getrandbits(64), excluded)
    raise ValueError(f"Unknown sorter '{name}': expected one of {', '.join(SORTERS)}")
