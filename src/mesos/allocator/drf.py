"""`DRFAllocator`: the name the first, flat allocator had; now the hierarchical one.

Kept so that `from mesos.allocator.drf import DRFAllocator` (the master, older tests)
goes on working with the same meaning: `DRFAllocator(min_allocatable=...)` is a
`HierarchicalAllocator` with DRF sorters at both levels.
"""

from __future__ import annotations

from mesos.allocator.hierarchical import HierarchicalAllocator
from mesos.allocator.state import (
    DEFAULT_MIN_ALLOCATABLE,
    MinAllocatable,
    min_allocatable_alternatives,
)

DRFAllocator = HierarchicalAllocator

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "DRFAllocator",
    "MinAllocatable",
    "min_allocatable_alternatives",
]
