"""The allocator: pure, synchronous offer decisions (see `interface` and `drf`)."""

from mesos.allocator.drf import DRFAllocator
from mesos.allocator.interface import Allocation, Allocator

__all__ = ["Allocation", "Allocator", "DRFAllocator"]
