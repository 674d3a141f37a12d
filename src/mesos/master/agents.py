"""The master's side of the agent channel: registration, pings, unreachable agents,
and what agents report (status updates, executor messages and exits).

A mixin of :class:`mesos.master.service.Master`; it shares the master's state and is
changed only from its event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from mesos import __version__
from mesos.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from mesos.http.streaming import EventStream
from mesos.master.accept import resources_of
from mesos.master.events import event
from mesos.master.maintenance import MaintenanceMixin
from mesos.master.registrar import info_json
from mesos.master.registry import AdmitAgent, MarkAgentGone, MarkAgentUnreachable
from mesos.master.state import Agent, Framework, Task, UnreachableAgent
from mesos.resources import Resources, ResourcesError, apply_checkpointed
from mesos.v1 import codec
from mesos.v1 import mesos as v1
from mesos.v1.enums import TaskState

log = logging.getLogger("mesos.master")


@dataclass
class _Reported:
    """What a subscribing agent reported, parsed and checked before anything changes."""

    total: Resources
    tasks: list[tuple[v1.Task, Resources]]
    executors: list[tuple[str, v1.ExecutorInfo, Resources]]
    frameworks: dict[str, v1.FrameworkInfo]
    static: Resources  # what the agent's flags give it
    checkpointed: Resources  # dynamic reservations and volumes the agent checkpointed


def _parse_report(body: Any) -> _Reported:
    info: v1.AgentInfo = body.agent_info
    static = resources_of(info.resources or body.resources, "'subscribe.agent_info.resources'")
    checkpointed = resources_of(body.checkpointed_resources,
                                "'subscribe.checkpointed_resources'")
    if checkpointed:
        # As Mesos: the agent's total is its flag resources with what it checkpointed
        # (operations the master sent it) laid over them.
        try:
            total = apply_checkpointed(static, checkpointed)
        except ResourcesError as exc:
            raise ValidationError(f"Invalid 'subscribe.checkpointed_resources': {exc}") from None
    else:
        total = resources_of(body.resources or info.resources, "'subscribe.resources'")
        checkpointed = total.checkpointed()
    tasks = [
        (item, resources_of(item.resources, f"'subscribe.tasks[{i}].resources'"))
        for i, item in enumerate(body.tasks or [])
    ]
    executors = []
    for i, executor in enumerate(body.executors or []):
        if executor.framework_id is None:
            continue
        res = resources_of(executor.resources, f"'subscribe.executors[{i}].resources'")
        executors.append((executor.framework_id.value, executor, res))
    frameworks = {f.id.value: f for f in body.frameworks or [] if f.id is not None}
    return _Reported(total=total, tasks=tasks, executors=executors, frameworks=frameworks,
                     static=static, checkpointed=checkpointed)


def task_role(framework: Framework, resources: Resources) -> str:
    """The role a reported task's resources are held under."""
    allocated = list(resources.allocations())
    if allocated:
        return allocated[0]
    for role in resources.reservations():
        if role in framework.roles:
            return role
    return framework.roles[0] if framework.roles else "*"


class AgentsMixin(MaintenanceMixin):
    # ------------------------------------------------------------------ registration

    def register_agent(self, stream: EventStream, body: Any) -> Agent:
        """SUBSCRIBE on the agent channel: admit a new agent or take one back.

        Everything the agent reports is parsed first, so a refused subscription
        (a ValidationError) changes nothing.
        """
        report = _parse_report(body)
        info: v1.AgentInfo = body.agent_info
        now = self._now()
        agent_id = info.id.value if info.id is not None else None
        if agent_id and agent_id in self.registrar.registry.gone:
            # As Mesos: the agent is told to shut down rather than retry forever.
            message = f"Agent {agent_id} has been marked gone"
            stream.send(event("SHUTDOWN", {"message": message}))
            raise ValidationError(message)
        address_ip = body.address_ip or self._peer_ip(stream)
        if self.machine_down(info.hostname, address_ip):
            # As Mesos: an agent on a machine under maintenance is told to shut down.
            message = f"Machine '{info.hostname}' ({address_ip}) is DOWN for maintenance"
            stream.send(event("SHUTDOWN", {"message": message}))
            raise ValidationError(message)
        existing = self.agents.get(agent_id) if agent_id else None
        reregistered = agent_id is not None and (
            existing is not None or agent_id in self.unreachable_agents
            or agent_id in self.recovered_agents
        )
        resend = False
        if not agent_id:
            agent_id = f"{self.id}-S{next(self._agent_ids)}"
        info.id = v1.AgentID(value=agent_id)
        if existing is not None:
            if existing.stream is not None and existing.stream is not stream:
                existing.stream.close()
            self._drop_agent_from_allocator(existing)
            resend = self._reconcile_checkpointed(existing, report)
        pid = f"slave(1)@{address_ip}:{info.port or 5051}"
        agent = Agent(
            id=agent_id, info=info, pid=pid, total=report.total,
            version=body.version or __version__,
            registered_time=existing.registered_time if existing else now,
            reregistered_time=now if reregistered else None,
        )
        agent.stream = stream
        agent.stream_id = stream.stream_id
        if resend:
            self.checkpoint_resources(agent)
        if stream.stream_id is not None:
            self._agent_streams[stream.stream_id] = agent_id
        self.agents[agent_id] = agent
        was_unreachable = self.unreachable_agents.pop(agent_id, None) is not None
        self.recovered_agents.pop(agent_id, None)
        used = self._adopt_reported(agent, report, existing, was_unreachable, now)
        self.allocator.add_agent(agent_id, report.total, used,
                                 domain=codec.to_builtins(info.domain) if info.domain else None)
        self._apply_unavailability(agent, fresh=True)
        # Nothing is offered, and the agent hears SUBSCRIBED, only once it is admitted
        # in the registry.
        self.allocator.deactivate_agent(agent_id)
        agent.active = False
        self._persist(AdmitAgent(id=agent_id, info=info_json(info)),
                      then=lambda: self._admitted(agent, stream))
        self.counters.inc(
            "master/slave_reregistrations" if reregistered else "master/slave_registrations"
        )
        log.info("%s agent %s at %s (%s) with %s",
                 "Re-registered" if reregistered else "Registered",
                 agent_id, pid, info.hostname, report.total)
        self.wake_allocator()
        return agent

    @staticmethod
    def _reconcile_checkpointed(existing: Agent, report: _Reported) -> bool:
        """An agent this master already knows re-registers: as in Mesos, the master's
        view of its reservations and volumes wins (an operation may have been sent
        while the agent was away), and the agent is sent it again. Returns whether
        it must be sent; the agent's own report is kept if the views cannot be
        reconciled (its resources changed under it)."""
        mine = existing.total.checkpointed()
        if mine == report.checkpointed:
            return False
        try:
            report.total = apply_checkpointed(report.static, mine)
        except ResourcesError as exc:
            log.warning("Agent %s: keeping its own checkpointed resources: %s", existing.id, exc)
            return False
        report.checkpointed = mine
        return True

    def checkpoint_resources(self, agent: Agent) -> None:
        """Tell the agent its reservations and volumes (Mesos' CheckpointResourcesMessage):
        it checkpoints them, creates or deletes volume directories, and reports them
        when it re-registers."""
        agent.send(event("CHECKPOINT_RESOURCES",
                         {"resources": agent.total.checkpointed().to_json()}))

    def apply_operator_operation(self, agent_id: str, old: Resources, new: Resources) -> None:
        """An operator's RESERVE/UNRESERVE/CREATE/DESTROY on unallocated resources:
        ``old`` becomes ``new`` on the agent. Offers on the agent are taken back first,
        so offered resources can be used (Mesos rescinds them too). Not enough
        available resources raises ConflictError (409) and changes nothing else."""
        agent = self.agents.get(agent_id)
        if agent is None:
            raise ValidationError(f"No agent found with specified ID '{agent_id}'")
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=True)
        update = getattr(self.allocator, "update_available", None)
        if update is None:
            raise ConflictError("The allocator cannot change unallocated resources")
        try:
            update(agent_id, old, new)
        except ValueError as exc:
            self.wake_allocator()
            raise ConflictError(f"Insufficient resources on agent {agent_id}: {exc}") from None
        agent.total = agent.total - old + new
        log.info("Operator converted %s into %s on agent %s", old, new, agent_id)
        self.checkpoint_resources(agent)
        self.wake_allocator()

    def _admitted(self, agent: Agent, stream: EventStream) -> None:
        if self.agents.get(agent.id) is not agent or stream.closed:
            return  # it went away, or re-registered again, before the write landed
        if agent.id in self.registrar.registry.gone:
            return  # marked gone while its admission was queued; that removes it
        agent.active = True
        if self._admitted_maintenance(agent):
            self.allocator.activate_agent(agent.id)
        stream.send(event("SUBSCRIBED", {
            "agent_id": {"value": agent.id},
            "ping_interval_seconds": float(self.flags.agent_ping_timeout),
        }))
        # Frameworks hear that its tasks are back only now that the registry no
        # longer says the agent is unreachable.
        for framework_id, status in agent.reregistered_updates:
            framework = self.frameworks.get(framework_id)
            if framework is not None:
                framework.send(event("UPDATE", {"status": status}))
        agent.reregistered_updates.clear()
        for framework_id, task_id in self._pending_kills.pop(agent.id, set()):
            if task_id in agent.tasks.get(framework_id, {}):
                agent.send(event("KILL_TASK", {"framework_id": {"value": framework_id},
                                               "task_id": {"value": task_id}}))
        self._publish_agent_added(agent)
        self.wake_allocator()

    @staticmethod
    def _peer_ip(stream: EventStream) -> str:
        transport = stream.request.transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        return str(peer[0]) if peer else "127.0.0.1"

    def _framework_for_report(
        self, fw_id: str, report: _Reported, now: float
    ) -> Framework | None:
        """The framework a reported task belongs to; a master that does not know it yet
        (it restarted, or failed over) keeps it as a recovered, inactive framework until
        the scheduler re-subscribes."""
        framework = self.frameworks.get(fw_id)
        if framework is not None or fw_id in self.removed_framework_ids:
            return framework
        info = report.frameworks.get(fw_id) or v1.FrameworkInfo(
            user="", name="", id=v1.FrameworkID(value=fw_id)
        )
        framework = self._new_framework(fw_id, info, now)
        framework.active = False
        framework.recovered = True
        self.frameworks[fw_id] = framework
        self.allocator.add_framework(fw_id, framework.roles, framework.capabilities)
        self.allocator.deactivate_framework(fw_id)
        log.info("Recovered framework %s (%s) from a re-registering agent", fw_id, info.name)
        if self.loop is not None:
            self._start_recovered_failover(framework)
        return framework

    def _adopt_reported(
        self, agent: Agent, report: _Reported, existing: Agent | None, was_unreachable: bool,
        now: float,
    ) -> dict[str, Resources]:
        """Rebuild the agent's executors and tasks from its report (the source of truth);
        return what each framework uses there."""
        used: dict[str, Resources] = {}
        shut_down: set[str] = set()

        def keep(fw_id: str) -> Framework | None:
            framework = self._framework_for_report(fw_id, report, now)
            refuse = framework is None or (was_unreachable and not framework.partition_aware)
            if refuse:
                # Removed frameworks, and (as Mesos did before partition awareness) the
                # tasks of non-partition-aware frameworks on an agent that comes back
                # after being marked unreachable, are shut down.
                if fw_id not in shut_down:
                    shut_down.add(fw_id)
                    agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": fw_id}}))
                return None
            return framework

        for known in self.frameworks.values():
            known.executors.pop(agent.id, None)
        for fw_id, executor, res in report.executors:
            owner = keep(fw_id)
            if owner is None:
                continue
            exec_id = executor.executor_id.value
            agent.executors.setdefault(fw_id, {})[exec_id] = executor
            owner.executors.setdefault(agent.id, {})[exec_id] = executor
            if res:
                used[fw_id] = used.get(fw_id, Resources.empty()) + res
        reported: set[tuple[str, str]] = set()
        for item, res in report.tasks:
            fw_id, task_id = item.framework_id.value, item.task_id.value
            reported.add((fw_id, task_id))
            owner = keep(fw_id)
            if owner is None:
                continue
            task = self._reported_task(owner, agent, item, res, was_unreachable, now)
            if task is not None and not task.terminal:
                used[fw_id] = used.get(fw_id, Resources.empty()) + task.resources
        if existing is not None:
            self._lose_unreported(existing, reported, now)
        return used

    def _reported_task(
        self, framework: Framework, agent: Agent, item: v1.Task, res: Resources,
        was_unreachable: bool, now: float,
    ) -> Task | None:
        task_id = item.task_id.value
        if any(t.id == task_id for t in framework.completed_tasks):
            return None  # already finished and acknowledged here; the agent catches up
        task = framework.tasks.get(task_id) or framework.unreachable_tasks.pop(task_id, None)
        if task is None:
            info = v1.TaskInfo(name=item.name, task_id=item.task_id,
                               agent_id=v1.AgentID(value=agent.id), resources=item.resources)
            task = Task(
                info=info, framework_id=framework.id, agent_id=agent.id,
                executor_id=item.executor_id.value if item.executor_id else "",
                role=task_role(framework, res), resources=res,
            )
        task.state = item.state
        # A terminal task's resources are not in use; its final update (resent by the
        # agent until acknowledged) must not give them back a second time.
        task.resources_recovered = task.terminal
        framework.tasks[task_id] = task
        agent.tasks.setdefault(framework.id, {})[task_id] = task
        if was_unreachable:
            status = v1.TaskStatus(
                task_id=task.info.task_id, state=task.state, source="SOURCE_MASTER",
                reason="REASON_AGENT_REREGISTERED", message="Agent re-registered",
                agent_id=v1.AgentID(value=agent.id), timestamp=now,
            )
            task.statuses.append(status)
            agent.reregistered_updates.append((framework.id, status))
            self._publish_task_updated(task, status)
        return task

    def _lose_unreported(self, existing: Agent, reported: set[tuple[str, str]], now: float) -> None:
        """Tasks the master launched that the re-registered agent never heard of."""
        for task in existing.all_tasks():
            if (task.framework_id, task.id) in reported or task.terminal:
                continue
            framework = self.frameworks.get(task.framework_id)
            if framework is None:
                continue
            state: TaskState = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
            status = self._master_status(task, state, "REASON_AGENT_RESTARTED",
                                         "Task was not found on the re-registered agent", now)
            self._apply_status(task, status)
            framework.send(event("UPDATE", {"status": status}))
            self._complete_task(framework, task)

    def _drop_agent_from_allocator(self, agent: Agent) -> None:
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=False)
        self.allocator.remove_agent(agent.id)

    # ------------------------------------------------------------------ the link

    def agent_stream_closed(self, agent_id: str, stream: EventStream) -> None:
        self._agent_streams.pop(stream.stream_id or "", None)
        agent = self.agents.get(agent_id)
        if agent is None or agent.stream is not stream:
            return
        agent.stream = None
        log.info("Agent %s disconnected; waiting for it to re-register", agent_id)
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=True)
        self.allocator.deactivate_agent(agent_id)
        agent.active = False

    def agent_of_stream(self, stream_id: str | None) -> str | None:
        return self._agent_streams.get(stream_id) if stream_id is not None else None

    def agent_for_call(self, agent_id: str | None, stream_id: str | None) -> Agent:
        if agent_id is None:
            raise ValidationError("Expecting 'agent_id' to be present")
        agent = self.agents.get(agent_id)
        if agent is None:
            raise NotFoundError(f"Agent {agent_id} is not registered")
        if stream_id is None or stream_id != agent.stream_id or not agent.connected:
            raise ForbiddenError(f"Agent {agent_id} is not subscribed on this stream")
        return agent

    def pong(self, agent: Agent) -> None:
        agent.pong_since_ping = True
        agent.pings_unanswered = 0

    async def _ping_loop(self) -> None:
        interval = float(self.flags.agent_ping_timeout)
        limit = int(self.flags.max_agent_ping_timeouts)
        while True:
            await asyncio.sleep(interval)
            for agent in list(self.agents.values()):
                if not agent.pong_since_ping:
                    agent.pings_unanswered += 1
                    if agent.pings_unanswered >= limit:
                        self.mark_unreachable(agent, f"{limit} consecutive pings went unanswered")
                        continue
                agent.pong_since_ping = False
                agent.send(event("PING"))

    def mark_unreachable(self, agent: Agent, why: str) -> None:
        """Persist that the agent is unreachable, then tell its frameworks."""
        log.warning("Marking agent %s (%s) unreachable: %s", agent.id, agent.info.hostname, why)
        now = self._now()

        def marked() -> None:
            if self.agents.get(agent.id) is agent:  # else it re-registered meanwhile
                self._mark_unreachable_now(agent, why, now)
                self._prune_unreachable()

        self._persist(MarkAgentUnreachable(id=agent.id, time=now), then=marked)

    def _mark_unreachable_now(self, agent: Agent, why: str, now: float) -> None:
        self._drop_agent_from_allocator(agent)
        for task in agent.all_tasks():
            framework = self.frameworks.get(task.framework_id)
            if framework is None:
                continue
            if task.terminal:
                # Its final update already went out; nobody can acknowledge it now.
                self._complete_task(framework, task)
                continue
            state: TaskState = "TASK_UNREACHABLE" if framework.partition_aware else "TASK_LOST"
            status = self._master_status(task, state, "REASON_AGENT_REMOVED",
                                         f"Agent {agent.id} is unreachable: {why}", now)
            status.unreachable_time = v1.TimeInfo(nanoseconds=int(now * 1e9))
            self._apply_status(task, status)
            framework.send(event("UPDATE", {"status": status}))
            framework.tasks.pop(task.id, None)
            if framework.partition_aware:
                framework.unreachable_tasks[task.id] = task
                self._trim(framework.unreachable_tasks,
                           int(self.flags.max_unreachable_tasks_per_framework))
            else:
                framework.completed_tasks.append(task)
        for framework in self.frameworks.values():
            framework.executors.pop(agent.id, None)
            framework.send(event("FAILURE", {"agent_id": {"value": agent.id}}))
        if agent.stream is not None:
            agent.stream.close()
        del self.agents[agent.id]
        self._pending_kills.pop(agent.id, None)
        for offer_id, (_, agent_id) in list(self.inverse_offers.items()):
            if agent_id == agent.id:
                del self.inverse_offers[offer_id]
        self.unreachable_agents[agent.id] = UnreachableAgent(id=agent.id, info=agent.info, time=now)
        self.agent_windows.pop(agent.id, None)
        self.inverse_offer_statuses.pop(agent.id, None)
        self._publish_agent_removed(agent.id)
        self.counters.inc("master/slave_unreachable_completed")
        self.counters.inc("master/slave_removals")
        self.wake_allocator()

    # ------------------------------------------------------------------ gone agents

    def knows_agent(self, agent_id: str) -> bool:
        return (agent_id in self.agents or agent_id in self.unreachable_agents
                or agent_id in self.recovered_agents or agent_id in self.registrar.registry.gone)

    async def mark_gone(self, agent_id: str) -> None:
        """MARK_AGENT_GONE: persist it, then report the agent's tasks gone, tell
        every framework, and shut the agent down. Marking a gone agent again
        changes nothing; the caller has checked that the agent is known."""
        # Shielded: once the write is started, its effects follow even if the
        # operator's request is cancelled.
        await asyncio.shield(self._mark_gone(agent_id))

    async def _mark_gone(self, agent_id: str) -> None:
        if agent_id in self.registrar.registry.gone:
            return
        now = self._now()
        if await self.registrar.apply(MarkAgentGone(id=agent_id, time=now)):
            self._mark_gone_now(agent_id, now)  # else a concurrent call did it

    def _mark_gone_now(self, agent_id: str, now: float) -> None:
        log.warning("Agent %s was marked gone by the operator", agent_id)
        message = f"Agent {agent_id} was marked gone by the operator"

        def report(framework: Framework, task: Task) -> None:
            state: TaskState = ("TASK_GONE_BY_OPERATOR" if framework.partition_aware
                                else "TASK_LOST")
            status = self._master_status(task, state, "REASON_AGENT_REMOVED_BY_OPERATOR",
                                         message, now)
            self._apply_status(task, status)
            framework.send(event("UPDATE", {"status": status}))

        agent = self.agents.pop(agent_id, None)
        if agent is not None:
            self._drop_agent_from_allocator(agent)
            for task in agent.all_tasks():
                framework = self.frameworks.get(task.framework_id)
                if framework is None:
                    continue
                if not task.terminal:
                    report(framework, task)
                framework.tasks.pop(task.id, None)
                framework.completed_tasks.append(task)
            if agent.stream is not None:
                agent.stream.send(event("SHUTDOWN", {"message": message}))
                agent.stream.close()
            self._agent_streams.pop(agent.stream_id or "", None)
            self._pending_kills.pop(agent_id, None)
            for offer_id, (_, owner) in list(self.inverse_offers.items()):
                if owner == agent_id:
                    del self.inverse_offers[offer_id]
            self.counters.inc("master/slave_removals")
            self.agent_windows.pop(agent_id, None)
            self.inverse_offer_statuses.pop(agent_id, None)
            self._publish_agent_removed(agent_id)
        self.drains.pop(agent_id, None)
        self.unreachable_agents.pop(agent_id, None)
        self.recovered_agents.pop(agent_id, None)
        for framework in self.frameworks.values():
            framework.executors.pop(agent_id, None)
            for task in [t for t in framework.unreachable_tasks.values() if t.agent_id == agent_id]:
                del framework.unreachable_tasks[task.id]
                report(framework, task)
                framework.completed_tasks.append(task)
            framework.send(event("FAILURE", {"agent_id": {"value": agent_id}}))
        self.wake_allocator()

    @staticmethod
    def _trim(tasks: dict[str, Task], limit: int) -> None:
        while len(tasks) > max(limit, 0):
            del tasks[next(iter(tasks))]

    # ------------------------------------------------------------------ what agents report

    def status_update(self, agent: Agent, framework_id: str, status: v1.TaskStatus) -> None:
        status.agent_id = v1.AgentID(value=agent.id)
        framework = self.frameworks.get(framework_id)
        if framework is None:
            self.counters.inc("master/invalid_status_updates")
            if framework_id in self.removed_framework_ids:
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": framework_id}}))
            return
        task = framework.tasks.get(status.task_id.value)
        if task is None or task.agent_id != agent.id:
            self.counters.inc("master/invalid_status_updates")
            # Forward anyway so the scheduler can acknowledge it and the agent stops retrying.
            framework.send(event("UPDATE", {"status": status}))
            return
        self._drain_status(agent, status)
        self._apply_status(task, status)
        task.unacked_uuid = status.uuid
        if task.terminal:
            self._recover_task(task)
            if status.uuid is None:
                self._complete_task(framework, task)  # nothing will acknowledge it
        framework.send(event("UPDATE", {"status": status}))
        self.counters.inc("master/valid_status_updates")
        self.counters.inc(f"master/messages_status_update_{status.state.lower()}")
        self._check_drained(agent)

    def executor_message(self, agent: Agent, body: Any) -> None:
        framework = self.frameworks.get(body.framework_id.value)
        if framework is None:
            return
        framework.send(event("MESSAGE", {"agent_id": {"value": agent.id},
                                         "executor_id": body.executor_id, "data": body.data}))
        self.counters.inc("master/messages_executor_to_framework")

    def exited_executor(self, agent: Agent, body: Any) -> None:
        fw_id = body.framework_id.value
        exec_id = body.executor_id.value
        executor = agent.executors.get(fw_id, {}).pop(exec_id, None)
        framework = self.frameworks.get(fw_id)
        if framework is not None:
            framework.executors.get(agent.id, {}).pop(exec_id, None)
        if executor is not None:
            res = resources_of(executor.resources, "executor resources")
            if res:
                self.allocator.recover_resources(fw_id, agent.id, res, None, self._now())
                self.wake_allocator()
            if framework is not None:
                framework.send(event("FAILURE", {
                    "agent_id": {"value": agent.id}, "executor_id": body.executor_id,
                    "status": int(body.status if body.status is not None else -1),
                }))
        log.info("Executor %s of framework %s on agent %s exited with status %s",
                 exec_id, fw_id, agent.id, body.status)
