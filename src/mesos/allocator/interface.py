"""The allocator contract (docs/dev/contracts.md §4): what the master drives.

An allocator is pure and synchronous: it owns no timers, does no I/O and reads no
clock; the caller passes `now` (seconds, any monotonic origin) where time matters.
The master's asyncio shell batches calls and runs `allocate(now)` on its interval,
turning every `Allocation` into an offer.

Resources handed out by `allocate` count as allocated until `recover_resources`
returns them (declined or rescinded offer, finished task). Resources a framework
uses when it is added, or that agents report as used when they are added, are
passed in as `used`.

Maintenance: `update_unavailability` marks an agent as draining; `inverse_offers(now)`
(called after `allocate`) returns the inverse offers due, and the framework's answer
comes back through `update_inverse_offer`. Quota and weights: `update_quota`,
`update_weights`. `--allocator=NAME` loads an implementation by entry point
(`mesos.allocator.loader.load_allocator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from mesos.allocator.maintenance import InverseOffer, Unavailability
from mesos.resources import Resources

# Framework capabilities (`FrameworkInfo.capabilities[].type`) the allocator reads.
GPU_RESOURCES = "GPU_RESOURCES"
REVOCABLE_RESOURCES = "REVOCABLE_RESOURCES"
MULTI_ROLE = "MULTI_ROLE"
REGION_AWARE = "REGION_AWARE"

__all__ = [
    "GPU_RESOURCES",
    "MULTI_ROLE",
    "REGION_AWARE",
    "REVOCABLE_RESOURCES",
    "Allocation",
    "Allocator",
    "InverseOffer",
    "Unavailability",
]


@dataclass(frozen=True, slots=True)
class Allocation:
    """Resources of one agent handed to one framework under one of its roles."""

    framework_id: str
    agent_id: str
    role: str
    resources: Resources


@runtime_checkable
class Allocator(Protocol):
    """The calls the master makes; every one returns at once and never blocks."""

    # --- agents ----------------------------------------------------------------

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Resources] | None = None,
        attributes: Sequence[Mapping[str, Any]] = (),
        capabilities: Iterable[str] = (),
        domain: Any = None,
    ) -> None:
        """Add an active agent; `used` maps framework ids to what they already hold on it;
        `domain` is its `DomainInfo` (struct or JSON) or region name, if it has one."""
        ...

    def remove_agent(self, agent_id: str) -> None: ...

    def update_agent(self, agent_id: str, total: Resources) -> None:
        """Change the agent's total (e.g. an operator reserved or unreserved resources)."""
        ...

    def activate_agent(self, agent_id: str) -> None: ...

    def deactivate_agent(self, agent_id: str) -> None: ...

    # --- frameworks ------------------------------------------------------------

    def add_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        capabilities: Iterable[str] = (),
        suppressed_roles: Iterable[str] = (),
        used: Mapping[str, Resources] | None = None,
    ) -> None:
        """Add an active framework; `used` maps agent ids to what it already holds there."""
        ...

    def remove_framework(self, framework_id: str) -> None: ...

    def activate_framework(self, framework_id: str) -> None: ...

    def deactivate_framework(self, framework_id: str) -> None: ...

    def update_framework(
        self,
        framework_id: str,
        roles: Iterable[str],
        capabilities: Iterable[str],
        suppressed_roles: Iterable[str] = (),
    ) -> None: ...

    # --- offers ----------------------------------------------------------------

    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None,
        now: float,
        role: str | None = None,
    ) -> None:
        """Give back resources; with `refuse_seconds` > 0, filter them until `now + refuse_seconds`."""
        ...

    def suppress(self, framework_id: str, roles: Iterable[str] | None = None) -> None: ...

    def revive(self, framework_id: str, roles: Iterable[str] | None = None) -> None: ...

    def update_weights(self, weights: Mapping[str, float]) -> None: ...

    def update_quota(
        self, role: str, guarantees: Any = None, limits: Any = None
    ) -> None:
        """Set the role's quota (`Resources` or `{name: amount}`; None for none)."""
        ...

    def update_allocation(
        self, framework_id: str, agent_id: str, role: str, old: Resources, new: Resources
    ) -> None:
        """RESERVE/UNRESERVE in an ACCEPT: held `old` becomes `new`, still held."""
        ...

    def update_quotas(self, quotas: Mapping[str, Any]) -> None:
        """Several roles' quotas (`Quota` values) at once, all or nothing: one UPDATE_QUOTA."""
        ...

    def allocate(self, now: float) -> list[Allocation]: ...

    # --- maintenance -----------------------------------------------------------

    def update_unavailability(
        self, agent_id: str, start: float | None, duration: float | None = None
    ) -> None:
        """Schedule (or, with `start` None, cancel) maintenance of the agent."""
        ...

    def inverse_offers(self, now: float) -> list[InverseOffer]:
        """Inverse offers due now: one per draining agent and framework holding there."""
        ...

    def update_inverse_offer(
        self,
        agent_id: str,
        framework_id: str,
        accepted: bool | None,
        refuse_seconds: float | None,
        now: float,
    ) -> None:
        """The framework answered an inverse offer (None: the master rescinded it)."""
        ...

    # --- introspection ---------------------------------------------------------

    def used(self, agent_id: str, framework_id: str | None = None) -> Resources:
        """What is allocated on `agent_id` (to `framework_id`, or to everyone)."""
        ...

    def available(self, agent_id: str) -> Resources:
        """The agent's total minus what is allocated on it."""
        ...
