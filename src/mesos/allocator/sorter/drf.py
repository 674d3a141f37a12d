"""Weighted dominant-resource-fairness sorter.

The share of a client is its dominant share, max over resource kinds of
`allocated[kind] / total[kind]`, divided by its weight (Ghodsi et al., "Dominant
Resource Fairness", NSDI 2011; Mesos' `DRFSorter`). Kinds named in
`excluded_resource_names` (Mesos' `--fair_sharing_excluded_resource_names`, e.g.
`gpus`) do not count.

The active clients are kept in a list sorted by `(share, name)`. Changing one
client's allocation moves only that client (bisect out, insort back); changing the
pool total marks the list stale and it is rebuilt on the next `sort()`. Float
amounts are rounded to Mesos' fixed point (3 decimals) on every update so that equal
allocations give bit-identical shares and ties fall to the name; `int` amounts (the
allocator's thousandths) are exact and skip the rounding.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from operator import itemgetter

from mesos.allocator.sorter.base import Quantities

_DECIMALS = 3
_name_of = itemgetter(1)


def add_quantities(vector: dict[str, float], quantities: Quantities) -> None:
    """`vector += quantities`; float sums are rounded to fixed point."""
    get = vector.get
    for name, amount in quantities.items():
        if not amount:
            continue
        value = get(name, 0) + amount
        if type(value) is float:
            value = round(value, _DECIMALS)
        if value > 0:
            vector[name] = value
        else:
            vector.pop(name, None)


def subtract_quantities(vector: dict[str, float], quantities: Quantities) -> None:
    """`vector -= quantities`, clamped at zero (zero entries are dropped)."""
    get = vector.get
    for name, amount in quantities.items():
        if not amount:
            continue
        value = get(name, 0) - amount
        if type(value) is float:
            value = round(value, _DECIMALS)
        if value > 0:
            vector[name] = value
        else:
            vector.pop(name, None)


class DRFSorter:
    """A `Sorter` ordering clients by weighted dominant share, then by name."""

    __slots__ = (
        "_active",
        "_allocations",
        "_excluded",
        "_order",
        "_share_total",
        "_shares",
        "_total",
        "_weights",
    )

    def __init__(self, excluded_resource_names: Iterable[str] = ()) -> None:
        self._excluded = frozenset(excluded_resource_names)
        self._total: dict[str, float] = {}
        # The total without the excluded kinds: what shares are measured against.
        self._share_total: dict[str, float] = {}
        self._allocations: dict[str, dict[str, float]] = {}
        self._weights: dict[str, float] = {}
        self._active: set[str] = set()
        # `(share, client)` of every active client, sorted; None when stale.
        self._order: list[tuple[float, str]] | None = []
        # The share each active client is filed under in `_order` (valid with it).
        self._shares: dict[str, float] = {}

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

    def deactivate(self, client: str) -> None:
        if client not in self._active:
            return
        self._active.discard(client)
        share = self._shares.pop(client, None)
        if self._order is not None and share is not None:
            del self._order[bisect_left(self._order, (share, client))]

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
        add_quantities(self._allocations[client], quantities)
        if client in self._shares and self._order is not None:
            self._reposition(client)

    def unallocated(self, client: str, quantities: Quantities) -> None:
        subtract_quantities(self._allocations[client], quantities)
        if client in self._shares and self._order is not None:
            self._reposition(client)

    def allocation(self, client: str) -> dict[str, float]:
        return dict(self._allocations[client])

    # --- pool ------------------------------------------------------------------

    def add_total(self, quantities: Quantities) -> None:
        add_quantities(self._total, quantities)
        self._total_changed()

    def remove_total(self, quantities: Quantities) -> None:
        subtract_quantities(self._total, quantities)
        self._total_changed()

    def total(self) -> dict[str, float]:
        return dict(self._total)

    # --- ordering --------------------------------------------------------------

    def share(self, client: str) -> float:
        if client not in self._allocations:
            raise KeyError(client)
        return self._compute_share(client)

    def sort(self) -> list[str]:
        return list(self.iterate())

    def iterate(self) -> Iterator[str]:
        order = self._order
        if order is None:
            order = self._rebuild()
        return map(_name_of, order)

    # --- internals -------------------------------------------------------------

    def _compute_share(self, client: str) -> float:
        total = self._share_total
        dominant = 0.0
        for name, amount in self._allocations[client].items():
            pool = total.get(name)
            if pool:
                share = amount / pool
                if share > dominant:
                    dominant = share
        if self._weights:
            return dominant / self._weights.get(client, 1.0)
        return dominant

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

    def _total_changed(self) -> None:
        excluded = self._excluded
        if excluded:
            self._share_total = {n: v for n, v in self._total.items() if n not in excluded}
        else:
            self._share_total = self._total
        self._order = None

    def _rebuild(self) -> list[tuple[float, str]]:
        self._shares = {client: self._compute_share(client) for client in self._active}
        order = self._order = sorted((share, client) for client, share in self._shares.items())
        return order
