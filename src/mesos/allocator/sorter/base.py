"""The `Sorter` protocol: orders clients (roles, or frameworks within a role).

A sorter knows nothing about agents or `Resources`. It keeps, per client, a compact
quantity vector (resource name -> amount, scalars only, ranges counted by size) and
the pool total in the same form, and answers `sort()`: the active clients, the one
that should be offered resources next first. The allocator feeds it increments
(`allocated` / `unallocated`, `add_total` / `remove_total`) so nothing is ever
recomputed from `Resources` on the hot path.

Quantities may be in any unit as long as it is the same everywhere: tests use plain
floats, the allocator feeds `int` thousandths (Mesos' fixed point), which keeps every
sum exact without rounding. Sorters are flat; the role hierarchy lives in
`mesos.allocator.role_tree`, which keeps one sorter per role for its children.

Allocations of a client survive `deactivate()` (they still count toward shares);
`remove()` forgets the client and its allocation. Weights are kept apart from
clients so a weight set before a role exists applies when it appears.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

Quantities = Mapping[str, float]


@runtime_checkable
class Sorter(Protocol):
    """What the allocator needs from a sorter. Implementations must be cheap to query."""

    def add(self, client: str) -> None:
        """Track `client` (inactive, nothing allocated). Adding a known client is an error."""
        ...

    def remove(self, client: str) -> None:
        """Forget `client` and its allocation (the allocation no longer counts anywhere)."""
        ...

    def contains(self, client: str) -> bool: ...

    def activate(self, client: str) -> None:
        """Make `client` appear in `sort()`. Idempotent."""
        ...

    def deactivate(self, client: str) -> None:
        """Hide `client` from `sort()`; its allocation still counts. Idempotent."""
        ...

    def update_weight(self, client: str, weight: float) -> None:
        """Set the weight (> 0) of `client`, known yet or not; the default weight is 1."""
        ...

    def weight(self, client: str) -> float: ...

    def allocated(self, client: str, quantities: Quantities) -> None:
        """Add `quantities` to the allocation of `client`."""
        ...

    def unallocated(self, client: str, quantities: Quantities) -> None:
        """Take `quantities` away from the allocation of `client` (clamped at zero)."""
        ...

    def allocation(self, client: str) -> dict[str, float]:
        """A copy of the allocation vector of `client`."""
        ...

    def add_total(self, quantities: Quantities) -> None:
        """Grow the pool the shares are measured against (an agent joined)."""
        ...

    def remove_total(self, quantities: Quantities) -> None:
        """Shrink the pool (an agent left or shrank)."""
        ...

    def total(self) -> dict[str, float]:
        """A copy of the pool total."""
        ...

    def share(self, client: str) -> float:
        """The (weighted) share `sort()` orders `client` by."""
        ...

    def sort(self) -> list[str]:
        """Active clients in offer order (DRF: lowest share first, ties by name)."""
        ...

    def iterate(self) -> Iterator[str]:
        """`sort()` lazily, for callers that usually stop after the first few clients.

        The iterator is only valid until the sorter next changes (an allocation, an
        activation, a weight); callers that change it restart the iteration.
        """
        ...

    def active_count(self) -> int: ...

    def __len__(self) -> int: ...
