"""Offer filters: what a framework refused, on which agent, for which role, until when.

A framework that declines resources with `Filters.refuse_seconds` > 0 is not offered
them again on that agent (under that role) until the filter expires. As in Mesos'
`RefusedOfferFilter`, a filter hides a candidate offer only when the refused
resources *contain* it: once more becomes free on the agent, the framework sees the
larger offer at once. Times are whatever clock the caller uses; expired filters are
dropped lazily when they are next looked at.

Every filter's expiry also goes on a heap, so that the allocator can ask which
agents a filter stopped hiding since its last cycle (`expired_agents(now)`) instead
of looking at every agent again.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection
from dataclasses import dataclass

from mesos.resources import Resources


@dataclass(frozen=True, slots=True)
class RefusedOfferFilter:
    """`resources` refused by a framework on one agent under `role`, until `expires_at`."""

    role: str
    resources: Resources
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    def hides(self, role: str, resources: Resources) -> bool:
        return role == self.role and self.resources.contains(resources)


class OfferFilters:
    """Every framework's refuse filters, indexed framework -> agent -> filters."""

    __slots__ = ("_expiries", "_filters")

    def __init__(self) -> None:
        self._filters: dict[str, dict[str, list[RefusedOfferFilter]]] = {}
        # (expires_at, agent id) of every filter ever added; stale entries are harmless.
        self._expiries: list[tuple[float, str]] = []

    def add(
        self, framework_id: str, agent_id: str, role: str, resources: Resources, expires_at: float
    ) -> None:
        if not resources:
            return
        by_agent = self._filters.setdefault(framework_id, {})
        by_agent.setdefault(agent_id, []).append(RefusedOfferFilter(role, resources, expires_at))
        heapq.heappush(self._expiries, (expires_at, agent_id))

    def filtered_frameworks(self) -> Collection[str]:
        """A live view of the frameworks that have filters (cheap membership tests)."""
        return self._filters.keys()

    def expired_agents(self, now: float) -> list[str]:
        """Agents on which some filter expired at or before `now` since the last call."""
        expiries = self._expiries
        agents: list[str] = []
        while expiries and expiries[0][0] <= now:
            agents.append(heapq.heappop(expiries)[1])
        return agents

    def is_filtered(
        self, framework_id: str, agent_id: str, role: str, resources: Resources, now: float
    ) -> bool:
        """Whether a live filter hides `resources` from the framework on that agent."""
        by_agent = self._filters.get(framework_id)
        if not by_agent:
            return False
        filters = by_agent.get(agent_id)
        if not filters:
            return False
        live = [f for f in filters if not f.expired(now)]
        if len(live) != len(filters):
            if live:
                by_agent[agent_id] = live
            else:
                del by_agent[agent_id]
                if not by_agent:
                    del self._filters[framework_id]
        return any(f.hides(role, resources) for f in live)

    def clear(self, framework_id: str, roles: Collection[str] | None = None) -> None:
        """Drop the framework's filters (only those for `roles` when given): REVIVE."""
        if roles is None:
            self._filters.pop(framework_id, None)
            return
        by_agent = self._filters.get(framework_id)
        if not by_agent:
            return
        for agent_id, filters in list(by_agent.items()):
            kept = [f for f in filters if f.role not in roles]
            if kept:
                by_agent[agent_id] = kept
            else:
                del by_agent[agent_id]
        if not by_agent:
            del self._filters[framework_id]

    def remove_agent(self, agent_id: str) -> None:
        for framework_id in list(self._filters):
            by_agent = self._filters[framework_id]
            if by_agent.pop(agent_id, None) is not None and not by_agent:
                del self._filters[framework_id]

    def filters(self, framework_id: str, agent_id: str | None = None) -> list[RefusedOfferFilter]:
        """The framework's filters (on one agent when given), expired ones included."""
        by_agent = self._filters.get(framework_id, {})
        if agent_id is not None:
            return list(by_agent.get(agent_id, ()))
        return [f for filters in by_agent.values() for f in filters]

    def next_expiry(self) -> float | None:
        """When the earliest filter expires: a shell may run `allocate` again then."""
        times = [
            f.expires_at
            for by_agent in self._filters.values()
            for filters in by_agent.values()
            for f in filters
        ]
        return min(times, default=None)
