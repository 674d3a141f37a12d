"""Weighted random sorter (Mesos' `RandomSorter`, `--role_sorter=random`).

`sort()` is a fresh weighted random permutation of the active clients every time: a
client comes first with probability `weight / sum(weights)`, and so on down the
list (sampling without replacement). Allocations are still tracked, so `share()`
and `allocation()` answer as the DRF sorter's do (quota and the endpoints need them),
but they do not influence the order.

The permutation is drawn lazily by `iterate()`: with equal weights a partial
Fisher-Yates shuffle costs O(1) per client taken; with unequal weights every active
client gets an Efraimidis-Spirakis key `u ** (1 / weight)` and the largest keys come
first. Randomness comes from a `random.Random` seeded with `seed` (None: from the
operating system), so runs are reproducible when a seed is given.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from mesos.allocator.sorter.base import Quantities
from mesos.allocator.sorter.drf import add_quantities, subtract_quantities


class RandomSorter:
    """A `Sorter` handing out clients in weighted random order."""

    __slots__ = (
        "_active",
        "_allocations",
        "_excluded",
        "_index",
        "_rng",
        "_total",
        "_weights",
    )

    def __init__(self, seed: int | None = None, excluded_resource_names: Iterable[str] = ()) -> None:
        self._rng = random.Random(seed)
        self._excluded = frozenset(excluded_resource_names)
        self._total: dict[str, float] = {}
        self._allocations: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        # Active clients, in no particular order, with each one's position.
        self._active: list[str] = []
        self._index: dict[str, int] = {}

    # --- clients ---------------------------------------------------------------

    def add(self, client: str) -> None:
        if client in self._allocations:
            raise ValueError(f"Sorter client '{client}' already exists")
        self._allocations[client] = {}

    def remove(self, client: str) -> None:
        self.deactivate(client)
        del self._allocations[client]

    def contains(self, client: str) -> bool:
        return client in self._allocations

    def activate(self, client: str) -> None:
        if client not in self._allocations:
            raise KeyError(client)
        if client not in self._index:
            self._index[client] = len(self._active)
            self._active.append(client)

    def deactivate(self, client: str) -> None:
        position = self._index.pop(client, None)
        if position is None:
            return
        last = self._active.pop()
        if last != client:
            self._active[position] = last
            self._index[last] = position

    def is_active(self, client: str) -> bool:
        return client in self._index

    def active_count(self) -> int:
        return len(self._active)

    def clients(self) -> list[str]:
        return list(self._allocations)

    def __len__(self) -> int:
        return len(self._allocations)

    # --- weights ---------------------------------------------------------------

    def update_weight(self, client: str, weight: float) -> None:
        if not weight > 0.0:
            raise ValueError(f"Weight of '{client}' must be positive, got {weight}")
        if weight == 1.0:
            self._weights.pop(client, None)
        else:
            self._weights[client] = weight

    def weight(self, client: str) -> float:
        return self._weights.get(client, 1.0)

    # --- allocations and pool --------------------------------------------------

    def allocated(self, client: str, quantities: Quantities) -> None:
        add_quantities(self._allocations[client], quantities)

    def unallocated(self, client: str, quantities: Quantities) -> None:
        subtract_quantities(self._allocations[client], quantities)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._allocations[client])

    def add_total(self, quantities: Quantities) -> None:
        add_quantities(self._total, quantities)

    def remove_total(self, quantities: Quantities) -> None:
        subtract_quantities(self._total, quantities)

    def total(self) -> dict[str, float]:
        return dict(self._total)

    def share(self, client: str) -> float:
        """The weighted dominant share (reported only; it does not order anything)."""
        dominant = 0.0
        for name, amount in self._allocations[client].items():
            pool = self._total.get(name)
            if pool and name not in self._excluded:
                dominant = max(dominant, amount / pool)
        return dominant / self._weights.get(client, 1.0)

    # --- ordering --------------------------------------------------------------

    def sort(self) -> list[str]:
        return list(self.iterate())

    def iterate(self) -> Iterator[str]:
        weights = self._weights
        if weights and any(client in weights for client in self._active):
            return self._weighted()
        return self._uniform()

    def _uniform(self) -> Iterator[str]:
        pool = list(self._active)
        randbelow = self._rng.randrange
        for i in range(len(pool) - 1, -1, -1):
            j = randbelow(i + 1)
            pool[i], pool[j] = pool[j], pool[i]
            yield pool[i]

    def _weighted(self) -> Iterator[str]:
        weight = self._weights.get
        draw = self._rng.random
        keyed = sorted(
            ((draw() ** (1.0 / weight(client, 1.0)), client) for client in self._active),
            reverse=True,
        )
        for _, client in keyed:
            yield client
