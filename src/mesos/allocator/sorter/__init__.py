"""Sorters: the order in which roles, and frameworks within a role, are offered."""

from mesos.allocator.sorter.base import Quantities, Sorter
from mesos.allocator.sorter.drf import DRFSorter

__all__ = ["DRFSorter", "Quantities", "Sorter"]
