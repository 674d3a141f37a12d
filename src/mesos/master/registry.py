"""The registry: what the master must not forget across a restart, and the
deterministic operations that change it.

The model is plain msgspec Structs (serialised as JSON by
:mod:`mesos.master.registrar`). Each operation is a frozen value whose
``apply(registry) -> bool`` changes the registry in place and says whether anything
changed; time and ids are fields of the operation, never read or minted inside, so
replaying the same operations on the same registry gives the same result.
"""

from __future__ import annotations

from typing import Any

import msgspec


class AgentRecord(msgspec.Struct, kw_only=True):
    id: str
    info: dict[str, Any]  # v1 AgentInfo JSON


class UnreachableRecord(msgspec.Struct, kw_only=True):
    id: str
    info: dict[str, Any]
    time: float


class FrameworkRecord(msgspec.Struct, kw_only=True):
    id: str
    info: dict[str, Any]  # v1 FrameworkInfo JSON


class QuotaRecord(msgspec.Struct, kw_only=True):
    role: str
    guarantees: dict[str, float] = msgspec.field(default_factory=dict)
    limits: dict[str, float] = msgspec.field(default_factory=dict)


class Registry(msgspec.Struct, kw_only=True):
    agents: dict[str, AgentRecord] = msgspec.field(default_factory=dict)
    unreachable: dict[str, UnreachableRecord] = msgspec.field(default_factory=dict)
    gone: dict[str, float] = msgspec.field(default_factory=dict)  # agent id -> time
    frameworks: dict[str, FrameworkRecord] = msgspec.field(default_factory=dict)
    weights: dict[str, float] = msgspec.field(default_factory=dict)
    quotas: dict[str, QuotaRecord] = msgspec.field(default_factory=dict)

    def copy(self) -> Registry:
        """A deep copy, so records read from storage are never changed in place."""
        return msgspec.json.decode(msgspec.json.encode(self), type=Registry)


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    def apply(self, registry: Registry) -> bool:
        raise NotImplementedError


class AdmitAgent(Operation, frozen=True, kw_only=True):
    """A new agent, or a known one re-registering with (possibly) new info."""

    id: str
    info: dict[str, Any]

    def apply(self, registry: Registry) -> bool:
        if self.id in registry.gone:
            return False
        record = AgentRecord(id=self.id, info=dict(self.info))
        changed = registry.unreachable.pop(self.id, None) is not None
        if registry.agents.get(self.id) != record:
            registry.agents[self.id] = record
            changed = True
        return changed


class MarkAgentUnreachable(Operation, frozen=True, kw_only=True):
    id: str
    time: float

    def apply(self, registry: Registry) -> bool:
        record = registry.agents.pop(self.id, None)
        if record is None:
            return False
        registry.unreachable[self.id] = UnreachableRecord(id=self.id, info=record.info,
                                                          time=self.time)
        return True


class MarkAgentReachable(Operation, frozen=True, kw_only=True):
    id: str

    def apply(self, registry: Registry) -> bool:
        record = registry.unreachable.pop(self.id, None)
        if record is None:
            return False
        registry.agents[self.id] = AgentRecord(id=self.id, info=record.info)
        return True


class MarkAgentGone(Operation, frozen=True, kw_only=True):
    id: str
    time: float

    def apply(self, registry: Registry) -> bool:
        if self.id in registry.gone:
            return False
        registry.agents.pop(self.id, None)
        registry.unreachable.pop(self.id, None)
        registry.gone[self.id] = self.time
        return True


class PruneUnreachable(Operation, frozen=True, kw_only=True):
    """Forget unreachable agents marked more than ``max_age`` seconds before ``now``,
    then the oldest beyond ``max_count`` (``--registry_max_agent_age`` /
    ``--registry_max_agent_count``). Gone agents are kept."""

    max_age: float
    max_count: int
    now: float

    def apply(self, registry: Registry) -> bool:
        doomed = {a for a, r in registry.unreachable.items() if self.now - r.time > self.max_age}
        left = sorted((r.time, a) for a, r in registry.unreachable.items() if a not in doomed)
        excess = len(left) - max(self.max_count, 0)
        if excess > 0:
            doomed.update(a for _, a in left[:excess])
        for agent_id in doomed:
            del registry.unreachable[agent_id]
        return bool(doomed)


class RemoveAgent(Operation, frozen=True, kw_only=True):
    id: str

    def apply(self, registry: Registry) -> bool:
        found = registry.agents.pop(self.id, None) is not None
        found = registry.unreachable.pop(self.id, None) is not None or found
        return found


class AddFramework(Operation, frozen=True, kw_only=True):
    id: str
    info: dict[str, Any]

    def apply(self, registry: Registry) -> bool:
        record = FrameworkRecord(id=self.id, info=dict(self.info))
        if registry.frameworks.get(self.id) == record:
            return False
        registry.frameworks[self.id] = record
        return True


class RemoveFramework(Operation, frozen=True, kw_only=True):
    id: str

    def apply(self, registry: Registry) -> bool:
        return registry.frameworks.pop(self.id, None) is not None


class UpdateWeights(Operation, frozen=True, kw_only=True):
    weights: dict[str, float]

    def apply(self, registry: Registry) -> bool:
        changed = False
        for role, weight in self.weights.items():
            if registry.weights.get(role) != weight:
                registry.weights[role] = weight
                changed = True
        return changed


class UpdateQuota(Operation, frozen=True, kw_only=True):
    """Set each role's quota; a config with neither guarantees nor limits removes it."""

    configs: list[QuotaRecord]

    def apply(self, registry: Registry) -> bool:
        changed = False
        for config in self.configs:
            if not config.guarantees and not config.limits:
                changed = registry.quotas.pop(config.role, None) is not None or changed
                continue
            record = QuotaRecord(role=config.role, guarantees=dict(config.guarantees),
                                 limits=dict(config.limits))
            if registry.quotas.get(config.role) != record:
                registry.quotas[config.role] = record
                changed = True
        return changed
