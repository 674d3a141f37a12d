"""`--allocator=NAME`: load an allocator by Python entry point (Mesos' allocator modules).

Allocators register under the entry-point group `mesos.allocator`; this package
registers its own as `hierarchical` (the default) and `drf` (the same class). A name
may also be a `package.module:Class` path, for allocators that are not installed as
a distribution. The built-in names work even when the package metadata is missing
(a source checkout that was never installed).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from mesos.allocator.interface import Allocator

GROUP = "mesos.allocator"
DEFAULT = "hierarchical"
_BUILTIN = {
    "hierarchical": "mesos.allocator.hierarchical:HierarchicalAllocator",
    "drf": "mesos.allocator.hierarchical:HierarchicalAllocator",
}


class AllocatorNotFound(LookupError):
    """No allocator by that name; the message lists the ones there are."""


def available_allocators() -> list[str]:
    """Names `load_allocator` accepts (entry points and built-ins), sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)} | set(_BUILTIN))


def _resolve(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj


def load_allocator(name: str = DEFAULT, **options: Any) -> Allocator:
    """Instantiate the allocator `name` with `options` (its constructor's keywords).

    Raises `AllocatorNotFound` for an unknown name and `TypeError` when what the name
    points at does not make an `Allocator`.
    """
    matches = [ep for ep in entry_points(group=GROUP) if ep.name == name]
    if matches:
        factory = matches[0].load()
    elif name in _BUILTIN:
        factory = _resolve(_BUILTIN[name])
    elif ":" in name:
        try:
            factory = _resolve(name)
        except (ImportError, AttributeError) as exc:
            raise AllocatorNotFound(f"Cannot load allocator '{name}': {exc}") from None
    else:
        known = ", ".join(available_allocators())
        raise AllocatorNotFound(f"Unknown allocator '{name}' (available: {known})")
    allocator = factory(**options)
    if not isinstance(allocator, Allocator):
        raise TypeError(f"Allocator '{name}' made a {type(allocator).__name__}, not an Allocator")
    return allocator
