"""The allocator: pure, synchronous offer decisions (see `interface` and `hierarchical`)."""

from mesos.allocator.hierarchical import HierarchicalAllocator
from mesos.allocator.interface import Allocation, Allocator, InverseOffer, Unavailability
from mesos.allocator.loader import load_allocator
from mesos.allocator.quota import Quota, QuotaError

DRFAllocator = HierarchicalAllocator

__all__ = [
    "Allocation",
    "Allocator",
    "DRFAllocator",
    "HierarchicalAllocator",
    "InverseOffer",
    "Quota",
    "QuotaError",
    "Unavailability",
    "load_allocator",
]
