"""Weighted dominant-resource-fairness sorter.

The share of a client is its dominant share, max over resource kinds of
`allocated[kind] / total[kind]`, divided by its weight (Ghodsi et al., "Dominant
Resource Fairness", NSDI 2011; Mesos' `DRFSorter`). Kinds named in
`excluded_resource_names` (Mesos' `--fair_sharing_excluded_resource_names`, e.g.
`gpus`) do not count.

The active clients are kept in a list sorted by `(share, name)`. Changing one
client's allocation moves only that client (bisect out, insort back); changing the
pool total or many weights marks the list stale and it is rebuilt on the next
`sort()`. Amounts are rounded to Mesos' fixed point (3 decimals) on every update so
that equal allocations give bit-identical shares and ties fall to the name.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable

from mesos.allocator.sorter.base import Quantities

_DECIMALS = 3


def _accumulate(vector: dict[str, float], quantities: Quantities, sign: float) -> None:
    """`vector += sign * quantities`, rounded to fixed point; zero entries are dropped."""
    for name, amount in quantities.items():
        if not amount:
            continue
        value = round(vector.get(name, 0.0) + sign * amount, _DECIMALS)
        if value > 0.0:
            vector[name] = value
        else:
            vector.pop(name, None)


class DRFSorter:
    """A `Sorter` ordering clients by weighted dominant share, then by name."""

    __slots__ = (
        "_active",
        "_allocations",
        "_excluded",
        "_names",
        "_order",
        "_shares",
        "_total",
        "_weights",
    )

    def __init__(self, excluded_resource_names: Iterable[str] = ()) -> None:
        self._excluded = frozenset(excluded_resource_names)
        self._total: dict[str, float] = {}
        self._allocations: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        self._active: set[str] = set()
        # `(share, client)` of every active client, sorted; None when stale.
        self._order: list[tuple[float, str]] | None = []
        # The share each active client is filed under in `_order`.
        self._shares: dict[str, float] = {}
        # Cached `sort()` answer; None when `_order` moved since.
        self._names: list[str] | None = []

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
        if client in self._active:
            return
        self._active.add(client)
        if self._order is not None:
            share = self._compute_share(client)
            self._shares[client] = share
            insort(self._order, (share, client))
            self._names = None

    def deactivate(self, client: str) -> None:
        if client not in self._active:
            return
        self._active.discard(client)
        share = self._shares.pop(client, None)
        if self._order is not None and share is not None:
            del self._order[bisect_left(self._order, (share, client))]
            self._names = None

    def is_active(self, client: str) -> bool:
        return client in self._active

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
        if client in self._active:
            self._reposition(client)

    def weight(self, client: str) -> float:
        return self._weights.get(client, 1.0)

    # --- allocations -----------------------------------------------------------

    def allocated(self, client: str, quantities: Quantities) -> None:
        _accumulate(self._allocations[client], quantities, 1.0)
        if client in self._active:
            self._reposition(client)

    def unallocated(self, client: str, quantities: Quantities) -> None:
        _accumulate(self._allocations[client], quantities, -1.0)
        if client in self._active:
            self._reposition(client)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._allocations[client])

    # --- pool ------------------------------------------------------------------

    def add_total(self, quantities: Quantities) -> None:
        _accumulate(self._total, quantities, 1.0)
        self._invalidate()

    def remove_total(self, quantities: Quantities) -> None:
        _accumulate(self._total, quantities, -1.0)
        self._invalidate()

    def total(self) -> dict[str, float]:
        return dict(self._total)

    # --- ordering --------------------------------------------------------------

    def share(self, client: str) -> float:
        if client not in self._allocations:
            raise KeyError(client)
        return self._compute_share(client)

    def sort(self) -> list[str]:
        names = self._names
        if names is None:
            if self._order is None:
                self._rebuild()
            assert self._order is not None
            names = self._names = [client for _, client in self._order]
        return list(names)

    # --- internals -------------------------------------------------------------

    def _compute_share(self, client: str) -> float:
        total = self._total
        excluded = self._excluded
        dominant = 0.0
        for name, amount in self._allocations[client].items():
            pool = total.get(name, 0.0)
            if pool > 0.0 and name not in excluded:
                share = amount / pool
                if share > dominant:
                    dominant = share
        return dominant / self._weights.get(client, 1.0)

    def _reposition(self, client: str) -> None:
        order = self._order
        if order is None:
            return
        old = self._shares[client]
        new = self._compute_share(client)
        if new == old:
            return
        del order[bisect_left(order, (old, client))]
        self._shares[client] = new
        insort(order, (new, client))
        self._names = None

    def _invalidate(self) -> None:
        self._order = None
        self._names = None

    def _rebuild(self) -> None:
        self._shares = {client: self._compute_share(client) for client in self._active}
        self._order = sorted((share, client) for client, share in self._shares.items())
