"""What the hierarchical allocator knows: agents, frameworks and the shared books.

`AllocatorState` only declares and initialises; `books.Books` changes the books,
`stages.Stages` runs an allocation cycle over them, and
`hierarchical.HierarchicalAllocator` is the public face. One object, three modules,
each a seam of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mesos.allocator.filters import OfferFilters
from mesos.allocator.interface import GPU_RESOURCES, REGION_AWARE, REVOCABLE_RESOURCES
from mesos.allocator.maintenance import Maintenance
from mesos.allocator.quota import Headroom, Quota
from mesos.allocator.role_tree import RoleTree, parse_roles_flag
from mesos.allocator.sorter import Sorter, sorter_factory
from mesos.allocator.vectors import Vector
from mesos.resources import Resources

EMPTY = Resources.empty()

# Restrictions an agent places on who may be offered it, as bits; a framework lifts
# one with the matching capability.
NEEDS_GPU = 1  # the agent has GPUs: GPU_RESOURCES frameworks only
NEEDS_REGION = 2  # the agent is in another region: REGION_AWARE frameworks only

# Mesos' MIN_CPUS / MIN_MEM: a chunk with at least one of these is worth offering.
DEFAULT_MIN_ALLOCATABLE: tuple[dict[str, float], ...] = ({"cpus": 0.01}, {"mem": 32.0})

MinAllocatable = Resources | Sequence[Resources] | None


def min_allocatable_alternatives(spec: MinAllocatable) -> tuple[dict[str, float], ...]:
    """Normalise `min_allocatable` to alternatives, each a set of minimum quantities.

    `None` is Mesos' default (`cpus:0.01|mem:32`). One `Resources` makes each kind in
    it an alternative (`cpus:0.01;mem:32` means cpus >= 0.01 *or* mem >= 32). A
    sequence of `Resources` is `--min_allocatable_resources` split on `|`: a chunk
    is allocatable if it holds *all* quantities of at least one of them. No
    alternatives at all means any non-empty chunk is allocatable.
    """
    if spec is None:
        return DEFAULT_MIN_ALLOCATABLE
    if isinstance(spec, Resources):
        return tuple({name: amount} for name, amount in spec.quantities().items())
    return tuple(r.quantities() for r in spec)


def region_of(domain: Any) -> str | None:
    """The fault-domain region of a `DomainInfo` (struct or JSON) or a region name."""
    if domain is None or isinstance(domain, str):
        return domain
    if isinstance(domain, Mapping):
        region = (domain.get("fault_domain") or {}).get("region") or {}
        name = region.get("name")
        return str(name) if name is not None else None
    fault_domain = getattr(domain, "fault_domain", None)
    region = getattr(fault_domain, "region", None)
    name = getattr(region, "name", None)
    return str(name) if name is not None else None


def capability_bits(capabilities: Iterable[str]) -> int:
    """The `NEEDS_*` restrictions a framework with `capabilities` may be offered past."""
    bits = 0
    for capability in capabilities:
        if capability == GPU_RESOURCES:
            bits |= NEEDS_GPU
        elif capability == REGION_AWARE:
            bits |= NEEDS_REGION
    return bits


@dataclass(slots=True, eq=False)
class AgentState:
    id: str
    seq: int
    total: Resources
    attributes: tuple[Mapping[str, Any], ...]
    capabilities: frozenset[str]
    region: str | None
    available: Resources = EMPTY
    needs: int = 0
    has_reservations: bool = False
    has_revocable: bool = False
    active: bool = True
    # Active with an allocatable remainder: the only agents a cycle may look at.
    free: bool = False
    # (framework id, role) -> what that framework holds here under that role.
    allocations: dict[tuple[str, str], Resources] = field(default_factory=dict)
    # Of `available`: unreserved non-revocable scalars (headroom), and reserved
    # scalars by reservation role (unallocated reservations count toward quota).
    avail_free: Vector = field(default_factory=dict)
    avail_reserved: dict[str, Vector] = field(default_factory=dict)
    # Of `total`: scalars by reservation role; and all scalars (the sorters' pool).
    total_reserved: dict[str, Vector] = field(default_factory=dict)
    total_q: Vector = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """No reservations and nothing revocable: the allocator's fast path."""
        return not (self.has_reservations or self.has_revocable)


@dataclass(slots=True, eq=False)
class FrameworkState:
    id: str
    roles: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    capbits: int = 0
    revocable: bool = False
    suppressed: frozenset[str] = frozenset()
    active: bool = False
    # False while the framework is known only from what agents report it uses.
    registered: bool = False
    # role -> ids of the agents where the framework holds resources under it.
    holdings: dict[str, dict[str, None]] = field(default_factory=dict)
    # Whether resources were reported used without `allocation_info` before the
    # framework was added, and so were counted under role "*" for the time being.
    guessed: bool = False

    def set_capabilities(self, capabilities: Iterable[str]) -> None:
        self.capabilities = frozenset(capabilities)
        self.capbits = capability_bits(self.capabilities)
        self.revocable = REVOCABLE_RESOURCES in self.capabilities


class AllocatorState:
    """The attributes; see the module docstring."""

    def __init__(
        self,
        min_allocatable: MinAllocatable = None,
        *,
        role_sorter: str = "drf",
        framework_sorter: str = "drf",
        sorter_factory: Callable[[], Sorter] | None = None,
        fair_sharing_excluded_resource_names: Iterable[str] = (),
        roles: Iterable[str] | str | None = None,
        local_region: str | None = None,
        filter_gpu_resources: bool = True,
        seed: int | None = None,
    ) -> None:
        excluded = tuple(fair_sharing_excluded_resource_names)
        new_roles = sorter_factory or _factory(role_sorter, excluded, seed)
        new_frameworks = sorter_factory or _factory(framework_sorter, excluded, seed)
        self._min_allocatable = min_allocatable_alternatives(min_allocatable)
        self._whitelist = _whitelist(roles)
        self._local_region = local_region
        self._filter_gpus = filter_gpu_resources
        self._agents: dict[str, AgentState] = {}
        self._agent_seq = 0
        self._frameworks: dict[str, FrameworkState] = {}
        self._tree = RoleTree(new_roles, new_frameworks)
        self._quotas: dict[str, Quota] = {}
        self._headroom = Headroom()
        self._filters = OfferFilters()
        self._maintenance = Maintenance()
        # Agents that may have something to offer, and those the next cycle must
        # look at (`_all_pending`: every free one).
        self._free: dict[str, AgentState] = {}
        self._pending: dict[str, AgentState] = {}
        self._all_pending = False
        # Set when an allocation may have loosened the headroom for agents the cycle
        # already passed (see `Books._track`): the cycle then runs again.
        self._rewalk = False
        # `_held_back`'s view of the headroom, valid while `_headroom.version` is.
        self._gate_version = -1
        self._gate_surplus: Vector = {}
        self._gate_closed = False


def _factory(name: str, excluded: tuple[str, ...], seed: int | None) -> Callable[[], Sorter]:
    return sorter_factory(name, excluded_resource_names=excluded, seed=seed)


def _whitelist(roles: Iterable[str] | str | None) -> frozenset[str] | None:
    if roles is None or isinstance(roles, str):
        return parse_roles_flag(roles)
    return parse_roles_flag(",".join(roles))
