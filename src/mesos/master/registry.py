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


class MachineRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A machine as maintenance names it: its hostname, its IP, or both."""

    hostname: str | None = None
    ip: str | None = None


class WindowRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A maintenance window: machines unavailable from ``start`` (epoch seconds)
    for ``duration`` seconds (None: open-ended)."""

    machine_ids: list[MachineRecord]
    start: float
    duration: float | None = None


class DrainRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """DRAIN_AGENT's config and how far the drain got (DRAINING, DRAINED)."""

    state: str = "DRAINING"
    max_grace_period: float | None = None
    mark_gone: bool = False


class Registry(msgspec.Struct, kw_only=True):
    agents: dict[str, AgentRecord] = msgspec.field(default_factory=dict)
    unreachable: dict[str, UnreachableRecord] = msgspec.field(default_factory=dict)
    gone: dict[str, float] = msgspec.field(default_factory=dict)  # agent id -> time
    frameworks: dict[str, FrameworkRecord] = msgspec.field(default_factory=dict)
    weights: dict[str, float] = msgspec.field(default_factory=dict)
    quotas: dict[str, QuotaRecord] = msgspec.field(default_factory=dict)
    # Maintenance: the schedule, the machines that are DOWN, and agents the operator
    # deactivated (DEACTIVATE_AGENT, DRAIN_AGENT) with their drain, if any.
    schedule: list[WindowRecord] = msgspec.field(default_factory=list)
    down_machines: list[MachineRecord] = msgspec.field(default_factory=list)
    deactivated: list[str] = msgspec.field(default_factory=list)
    drains: dict[str, DrainRecord] = msgspec.field(default_factory=dict)

    def copy(self) -> Registry:
        """A copy whose containers can be changed without touching this registry.

        Records themselves are shared: operations never change a record in place, they
        put a new one in its slot (tests/unit/test_registry.py holds them to that). A
        deep copy here made admitting N agents O(N^2): every admission re-encoded the
        whole registry (2,000 agents took 13 s, 10,000 would take half an hour).
        """
        return Registry(
            agents=dict(self.agents), unreachable=dict(self.unreachable), gone=dict(self.gone),
            frameworks=dict(self.frameworks), weights=dict(self.weights),
            quotas=dict(self.quotas), schedule=list(self.schedule),
            down_machines=list(self.down_machines), deactivated=list(self.deactivated),
            drains=dict(self.drains),
        )

    def deep_copy(self) -> Registry:
        """A copy sharing nothing, for a caller that may change records in place."""
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


class UpdateSchedule(Operation, frozen=True, kw_only=True):
    """Replace the maintenance schedule (already validated by the master)."""

    windows: list[WindowRecord]

    def apply(self, registry: Registry) -> bool:
        new = [WindowRecord(machine_ids=list(w.machine_ids), start=w.start, duration=w.duration)
               for w in self.windows]
        if registry.schedule == new:
            return False
        registry.schedule = new
        return True


class StartMaintenance(Operation, frozen=True, kw_only=True):
    """Machines go DOWN; the agents on them leave the registry."""

    machines: list[MachineRecord]
    agent_ids: list[str] = msgspec.field(default_factory=list)

    def apply(self, registry: Registry) -> bool:
        changed = False
        for machine in self.machines:
            if machine not in registry.down_machines:
                registry.down_machines.append(machine)
                changed = True
        for agent_id in self.agent_ids:
            changed = registry.agents.pop(agent_id, None) is not None or changed
        return changed


class StopMaintenance(Operation, frozen=True, kw_only=True):
    """Machines come back UP and leave the schedule (emptied windows go too)."""

    machines: list[MachineRecord]

    def apply(self, registry: Registry) -> bool:
        gone = set(self.machines)
        down = [m for m in registry.down_machines if m not in gone]
        windows = []
        for window in registry.schedule:
            kept = [m for m in window.machine_ids if m not in gone]
            if kept:
                windows.append(WindowRecord(machine_ids=kept, start=window.start,
                                            duration=window.duration))
        changed = down != registry.down_machines or windows != registry.schedule
        registry.down_machines, registry.schedule = down, windows
        return changed


class DeactivateAgent(Operation, frozen=True, kw_only=True):
    """DEACTIVATE_AGENT, or DRAIN_AGENT with its ``drain`` record (which also
    deactivates the agent)."""

    id: str
    drain: DrainRecord | None = None

    def apply(self, registry: Registry) -> bool:
        changed = False
        if self.id not in registry.deactivated:
            registry.deactivated.append(self.id)
            changed = True
        if self.drain is not None and registry.drains.get(self.id) != self.drain:
            registry.drains[self.id] = DrainRecord(state=self.drain.state,
                                                   max_grace_period=self.drain.max_grace_period,
                                                   mark_gone=self.drain.mark_gone)
            changed = True
        return changed


class ReactivateAgent(Operation, frozen=True, kw_only=True):
    """REACTIVATE_AGENT: offers again, and any drain is over."""

    id: str

    def apply(self, registry: Registry) -> bool:
        changed = registry.drains.pop(self.id, None) is not None
        if self.id in registry.deactivated:
            registry.deactivated.remove(self.id)
            changed = True
        return changed
