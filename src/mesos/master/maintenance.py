"""Maintenance on the master: the schedule, machines going DOWN and UP, and agents the
operator deactivates or drains.

Mesos' model (docs/maintenance.md): machines are named by hostname and/or IP. A
machine in the schedule is DRAINING: its agents keep being offered, with the
window's unavailability in their offers, and every framework holding resources
there gets an inverse offer asking it to leave. START_MAINTENANCE takes DRAINING
machines DOWN: their agents are told to shut down, removed, and refused until
STOP_MAINTENANCE brings the machines UP again (which also takes them off the
schedule). As in Mesos, an agent is on a machine when both the hostname (in any
case) and the IP it announces equal the machine's (an omitted part is "").

DRAIN_AGENT / DEACTIVATE_AGENT / REACTIVATE_AGENT act on one agent: a deactivated
agent is offered to nobody; a draining one also has its tasks killed (each with its
kill policy's grace period, at most ``max_grace_period``). As Mesos' agent does,
kill updates of a draining agent carry ``REASON_AGENT_DRAINING`` and, with
``mark_gone``, TASK_KILLED becomes TASK_GONE_BY_OPERATOR; the agent here does not
know it is draining, so the master rewrites them. Once no task is left running the
drain is DRAINED and, with ``mark_gone``, the agent is marked gone. The agent stays
deactivated until REACTIVATE_AGENT.

Every change is written to the registry before it is applied or answered, so a
restarted master keeps the schedule, the DOWN machines and the drains.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from mesos.allocator import Unavailability
from mesos.master.events import event
from mesos.master.operator_stream import OperatorEventsMixin
from mesos.master.registry import (
    DeactivateAgent,
    DrainRecord,
    MachineRecord,
    ReactivateAgent,
    Registry,
    StartMaintenance,
    StopMaintenance,
    UpdateSchedule,
    WindowRecord,
)
from mesos.master.state import Agent
from mesos.v1 import mesos as v1

log = logging.getLogger("mesos.master")

_NANOS = 1_000_000_000


# ---------------------------------------------------------------------- parsing


def _nanoseconds(value: Any, where: str) -> int:
    """``{"nanoseconds": N}`` (N an integer or a numeric string, as protobuf JSON
    writes int64) as an int."""
    raw = value.get("nanoseconds") if isinstance(value, dict) else None
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"'{where}' must be an object with integer 'nanoseconds'")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"'{where}.nanoseconds' {raw!r} is not an integer") from None


def parse_machine(value: Any, where: str) -> MachineRecord:
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' must be an object with a 'hostname' and/or an 'ip'")
    hostname, ip = value.get("hostname"), value.get("ip")
    for name, part in (("hostname", hostname), ("ip", ip)):
        if part is not None and not isinstance(part, str):
            raise ValueError(f"'{where}.{name}' must be a string")
    if not hostname and not ip:
        raise ValueError(f"'{where}' must have a 'hostname' or an 'ip'")
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise ValueError(f"'{where}.ip' {ip!r} is not a valid IPv4 address") from None
    # As Mesos: hostnames are not case-sensitive, so they are kept in lower case.
    return MachineRecord(hostname=hostname.lower() if hostname else None, ip=ip or None)


def parse_machines(value: Any, where: str) -> list[MachineRecord]:
    """A non-empty list of machine ids, each given once."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{where}' must be a non-empty list of machine ids")
    out: list[MachineRecord] = []
    for i, item in enumerate(value):
        machine = parse_machine(item, f"{where}[{i}]")
        if machine in out:
            raise ValueError(f"Machine {machine_label(machine)} appears more than once in "
                             f"'{where}' ('{where}[{out.index(machine)}]' and '{where}[{i}]')")
        out.append(machine)
    return out


def parse_schedule(value: Any, where: str) -> list[WindowRecord]:
    """A Schedule JSON object as windows; every problem names where it is."""
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' must be an object with 'windows'")
    windows = value.get("windows", [])
    if not isinstance(windows, list):
        raise ValueError(f"'{where}.windows' must be a list")
    seen: dict[MachineRecord, str] = {}
    out: list[WindowRecord] = []
    for i, window in enumerate(windows):
        here = f"{where}.windows[{i}]"
        if not isinstance(window, dict):
            raise ValueError(f"'{here}' must be an object")
        machines = parse_machines(window.get("machine_ids"), f"{here}.machine_ids")
        for j, machine in enumerate(machines):
            if machine in seen:
                raise ValueError(f"Machine {machine_label(machine)} appears more than once in "
                                 f"the schedule ('{seen[machine]}' and '{here}.machine_ids[{j}]')")
            seen[machine] = f"{here}.machine_ids[{j}]"
        unavailability = window.get("unavailability")
        if not isinstance(unavailability, dict) or "start" not in unavailability:
            raise ValueError(f"'{here}.unavailability.start' is required")
        start = _nanoseconds(unavailability["start"], f"{here}.unavailability.start")
        duration: float | None = None
        if unavailability.get("duration") is not None:
            nanos = _nanoseconds(unavailability["duration"], f"{here}.unavailability.duration")
            if nanos < 0:
                raise ValueError(f"'{here}.unavailability.duration' must not be negative")
            duration = nanos / _NANOS
        out.append(WindowRecord(machine_ids=machines, start=start / _NANOS, duration=duration))
    return out


def machine_label(machine: MachineRecord) -> str:
    return f"'{machine.hostname or ''}' ({machine.ip or ''})"


def machine_json(machine: MachineRecord) -> dict[str, str]:
    out = {}
    if machine.hostname:
        out["hostname"] = machine.hostname
    if machine.ip:
        out["ip"] = machine.ip
    return out


def window_json(window: WindowRecord) -> dict[str, Any]:
    unavailability: dict[str, Any] = {"start": {"nanoseconds": round(window.start * _NANOS)}}
    if window.duration is not None:
        unavailability["duration"] = {"nanoseconds": round(window.duration * _NANOS)}
    return {"machine_ids": [machine_json(m) for m in window.machine_ids],
            "unavailability": unavailability}


def _matches(machine: MachineRecord, hostname: str | None, ip: str | None) -> bool:
    """As Mesos: an agent is on a machine when both its hostname (in any case) and its
    IP equal the machine's; a part the machine leaves out is the empty string."""
    return ((machine.hostname or "") == (hostname or "").lower()
            and (machine.ip or "") == (ip or ""))


def agent_ip(agent: Agent) -> str:
    return agent.pid.split("@")[-1].rsplit(":", 1)[0]


# ---------------------------------------------------------------------- the mixin


class MaintenanceMixin(OperatorEventsMixin):
    schedule: list[WindowRecord]
    down_machines: list[MachineRecord]
    deactivated_agents: set[str]
    drains: dict[str, DrainRecord]
    # agent id -> the window its allocator entry has
    agent_windows: dict[str, Unavailability]
    # agent id -> framework id -> (ACCEPT | DECLINE | UNKNOWN, time)
    inverse_offer_statuses: dict[str, dict[str, tuple[str, float]]]

    def _init_maintenance(self) -> None:
        self.schedule = []
        self.down_machines = []
        self.deactivated_agents = set()
        self.drains = {}
        self.agent_windows = {}
        self.inverse_offer_statuses = {}
        self._drain_tasks: set[asyncio.Task[None]] = set()

    def _restore_maintenance(self, registry: Registry) -> None:
        self.schedule = list(registry.schedule)
        self.down_machines = list(registry.down_machines)
        self.deactivated_agents = set(registry.deactivated)
        self.drains = dict(registry.drains)

    # ------------------------------------------------------------------ machines

    def machine_down(self, hostname: str | None, ip: str | None) -> bool:
        return any(_matches(m, hostname, ip) for m in self.down_machines)

    def _window_of(self, hostname: str | None, ip: str | None) -> WindowRecord | None:
        for window in self.schedule:
            if any(_matches(m, hostname, ip) for m in window.machine_ids):
                return window
        return None

    def _agents_on(self, machine: MachineRecord) -> list[Agent]:
        return [a for a in self.agents.values() if _matches(machine, a.info.hostname, agent_ip(a))]

    def _apply_unavailability(self, agent: Agent, *, fresh: bool = False) -> None:
        """Give the allocator the agent's window (or none); ``fresh``: the allocator
        has just (re)added the agent and knows no window for it."""
        window = self._window_of(agent.info.hostname, agent_ip(agent))
        new = Unavailability(window.start, window.duration) if window is not None else None
        if not fresh and self.agent_windows.get(agent.id) == new:
            return
        if new is None:
            self.agent_windows.pop(agent.id, None)
        else:
            self.agent_windows[agent.id] = new
        if not fresh or new is not None:
            self.allocator.update_unavailability(agent.id, new.start if new else None,
                                                 new.duration if new else None)
        self.inverse_offer_statuses.pop(agent.id, None)
        # As Mesos: offers made without the new window are taken back and made again.
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=True)
        # Outstanding inverse offers asked about the old window: take them back.
        for offer_id, (framework_id, owner) in list(self.inverse_offers.items()):
            if owner == agent.id:
                del self.inverse_offers[offer_id]
                framework = self.frameworks.get(framework_id)
                if framework is not None:
                    framework.send(event("RESCIND_INVERSE_OFFER",
                                         {"inverse_offer_id": {"value": offer_id}}))
        self.wake_allocator()

    def record_inverse_offer_status(self, agent_id: str, framework_id: str, status: str,
                                    now: float) -> None:
        if agent_id in self.agent_windows:
            self.inverse_offer_statuses.setdefault(agent_id, {})[framework_id] = (status, now)

    def schedule_json(self) -> dict[str, Any]:
        return {"windows": [window_json(w) for w in self.schedule]}

    def maintenance_status(self) -> dict[str, Any]:
        draining = []
        for window in self.schedule:
            for machine in window.machine_ids:
                if machine in self.down_machines:
                    continue
                statuses = []
                for agent in self._agents_on(machine):
                    for fw_id, (status, when) in sorted(
                            self.inverse_offer_statuses.get(agent.id, {}).items()):
                        statuses.append({"status": status, "framework_id": {"value": fw_id},
                                         "timestamp": {"nanoseconds": round(when * _NANOS)}})
                draining.append({"id": machine_json(machine), "statuses": statuses})
        return {"draining_machines": draining,
                "down_machines": [machine_json(m) for m in self.down_machines]}

    async def update_schedule(self, windows: list[WindowRecord]) -> None:
        """UPDATE_MAINTENANCE_SCHEDULE (validated by :func:`parse_schedule`): a DOWN
        machine must stay in the schedule until STOP_MAINTENANCE."""
        listed = {m for w in windows for m in w.machine_ids}
        for machine in self.down_machines:
            if machine not in listed:
                raise ValueError(f"Machine {machine_label(machine)} is DOWN and cannot be "
                                 "removed from the schedule; bring it UP first")
        await asyncio.shield(self._update_schedule(windows))

    async def _update_schedule(self, windows: list[WindowRecord]) -> None:
        await self.registrar.apply(UpdateSchedule(windows=windows))
        self.schedule = list(self.registrar.registry.schedule)
        for agent in list(self.agents.values()):
            self._apply_unavailability(agent)

    async def start_maintenance(self, machines: list[MachineRecord]) -> None:
        scheduled = {m for w in self.schedule for m in w.machine_ids}
        for machine in machines:
            if machine not in scheduled:
                raise ValueError(f"Machine {machine_label(machine)} is not part of a "
                                 "maintenance schedule")
            if machine in self.down_machines:
                raise ValueError(f"Machine {machine_label(machine)} is already DOWN")
        await asyncio.shield(self._start_maintenance(machines))

    async def _start_maintenance(self, machines: list[MachineRecord]) -> None:
        doomed = {a.id: a for m in machines for a in self._agents_on(m)}
        await self.registrar.apply(StartMaintenance(machines=machines, agent_ids=sorted(doomed)))
        self.down_machines = list(self.registrar.registry.down_machines)
        for agent in doomed.values():
            if self.agents.get(agent.id) is agent:
                self._remove_agent(agent, "Operator initiated 'Machine DOWN'")

    async def stop_maintenance(self, machines: list[MachineRecord]) -> None:
        for machine in machines:
            if machine not in self.down_machines:
                raise ValueError(f"Machine {machine_label(machine)} is not DOWN")
        await asyncio.shield(self._stop_maintenance(machines))

    async def _stop_maintenance(self, machines: list[MachineRecord]) -> None:
        await self.registrar.apply(StopMaintenance(machines=machines))
        self.down_machines = list(self.registrar.registry.down_machines)
        self.schedule = list(self.registrar.registry.schedule)
        for agent in list(self.agents.values()):
            self._apply_unavailability(agent)

    def _remove_agent(self, agent: Agent, message: str) -> None:
        """Shut an agent down and forget it (its machine went DOWN), as Mesos'
        ``removeSlave``: every framework, partition-aware or not, hears its tasks are
        TASK_LOST with REASON_AGENT_REMOVED (Mesos' docs: "tasks are updated as
        TASK_LOST")."""
        log.warning("Removing agent %s (%s): %s", agent.id, agent.info.hostname, message)
        now = self._now()
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=False)
        self.allocator.remove_agent(agent.id)
        for task in agent.all_tasks():
            framework = self.frameworks.get(task.framework_id)
            if framework is None:
                continue
            if not task.terminal:
                status = self._master_status(task, "TASK_LOST", "REASON_AGENT_REMOVED",
                                             f"Agent {agent.info.hostname} removed: {message}",
                                             now)
                self._apply_status(task, status)
                framework.send(event("UPDATE", {"status": status}))
            framework.tasks.pop(task.id, None)
            framework.completed_tasks.append(task)
        if agent.stream is not None:
            agent.stream.send(event("SHUTDOWN", {"message": message}))
            agent.stream.close()
        self._agent_streams.pop(agent.stream_id or "", None)
        del self.agents[agent.id]
        self._pending_kills.pop(agent.id, None)
        self.agent_windows.pop(agent.id, None)
        self.inverse_offer_statuses.pop(agent.id, None)
        for offer_id, (_, owner) in list(self.inverse_offers.items()):
            if owner == agent.id:
                del self.inverse_offers[offer_id]
        for framework in self.frameworks.values():
            framework.executors.pop(agent.id, None)
            framework.send(event("FAILURE", {"agent_id": {"value": agent.id}}))
        self.counters.inc("master/slave_removals")
        self._publish_agent_removed(agent.id)
        self.wake_allocator()

    # ------------------------------------------------------------------ one agent

    def _agent_to_change(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ValueError(f"Unknown agent {agent_id}: it is not registered with this master")
        return agent

    def _take_offers_back(self, agent: Agent) -> None:
        self.allocator.deactivate_agent(agent.id)
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=True)

    async def deactivate_agent(self, agent_id: str) -> None:
        agent = self._agent_to_change(agent_id)
        await asyncio.shield(self.registrar.apply(DeactivateAgent(id=agent_id)))
        self.deactivated_agents.add(agent_id)
        if self.agents.get(agent_id) is agent:
            self._take_offers_back(agent)
            self._publish_agent_updated(agent)

    async def reactivate_agent(self, agent_id: str) -> None:
        self._agent_to_change(agent_id)
        if agent_id not in self.deactivated_agents:
            raise ValueError(f"Agent {agent_id} is not deactivated")
        await asyncio.shield(self.registrar.apply(ReactivateAgent(id=agent_id)))
        self.deactivated_agents.discard(agent_id)
        self.drains.pop(agent_id, None)
        current = self.agents.get(agent_id)
        if current is not None:
            if current.active and current.connected:
                self.allocator.activate_agent(agent_id)
            self._publish_agent_updated(current)
        self.wake_allocator()

    async def drain_agent(self, agent_id: str, max_grace_period: float | None,
                          mark_gone: bool) -> None:
        self._agent_to_change(agent_id)
        drain = DrainRecord(state="DRAINING", max_grace_period=max_grace_period,
                            mark_gone=mark_gone)
        await asyncio.shield(self.registrar.apply(DeactivateAgent(id=agent_id, drain=drain)))
        self.deactivated_agents.add(agent_id)
        self.drains[agent_id] = drain
        current = self.agents.get(agent_id)
        if current is None:
            return
        log.info("Draining agent %s (max grace period %s, mark gone %s)", agent_id,
                 max_grace_period, mark_gone)
        self._take_offers_back(current)
        self._publish_agent_updated(current)
        self._send_drain_kills(current)
        self._check_drained(current)

    def _send_drain_kills(self, agent: Agent) -> None:
        drain = self.drains.get(agent.id)
        if drain is None or drain.state != "DRAINING" or not agent.connected:
            return
        for task in agent.all_tasks():
            if task.terminal:
                continue
            grace: float | None = None
            policy = task.info.kill_policy
            if policy is not None and policy.grace_period is not None:
                grace = policy.grace_period.nanoseconds / _NANOS
            if drain.max_grace_period is not None:
                grace = drain.max_grace_period if grace is None else min(grace, drain.max_grace_period)
            payload: dict[str, Any] = {"framework_id": {"value": task.framework_id},
                                       "task_id": {"value": task.id}}
            if grace is not None:
                payload["kill_policy"] = v1.KillPolicy(
                    grace_period=v1.DurationInfo(nanoseconds=round(grace * _NANOS)))
            agent.send(event("KILL_TASK", payload))
            self.counters.inc("master/messages_kill_task")

    def _drain_status(self, agent: Agent, status: v1.TaskStatus) -> None:
        """What a draining Mesos agent would have said of a kill."""
        drain = self.drains.get(agent.id)
        if drain is None or status.state not in ("TASK_KILLING", "TASK_KILLED"):
            return
        status.reason = "REASON_AGENT_DRAINING"
        if drain.mark_gone and status.state == "TASK_KILLED":
            status.state = "TASK_GONE_BY_OPERATOR"

    def _check_drained(self, agent: Agent) -> None:
        drain = self.drains.get(agent.id)
        if drain is None or drain.state != "DRAINING":
            return
        if any(not t.terminal for t in agent.all_tasks()):
            return
        drained = DrainRecord(state="DRAINED", max_grace_period=drain.max_grace_period,
                              mark_gone=drain.mark_gone)
        agent_id = agent.id

        def done() -> None:
            if self.drains.get(agent_id) is not drain:
                return  # reactivated, or drained again, meanwhile
            self.drains[agent_id] = drained
            log.info("Agent %s is drained", agent_id)
            current = self.agents.get(agent_id)
            if current is not None:
                self._publish_agent_updated(current)
            if drained.mark_gone and self.loop is not None:
                task = self.loop.create_task(self._master().mark_gone(agent_id))
                # Held until done, so the task cannot be collected half-way.
                self._drain_tasks.add(task)
                task.add_done_callback(self._drain_tasks.discard)

        self._persist(DeactivateAgent(id=agent_id, drain=drained), then=done)

    def _admitted_maintenance(self, agent: Agent) -> bool:
        """On (re-)admission: whether the agent may be offered; a draining one is
        sent its kills again."""
        if agent.id not in self.deactivated_agents:
            return True
        self._send_drain_kills(agent)
        self._check_drained(agent)
        return False

