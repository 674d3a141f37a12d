"""The master: frameworks, agents, offers and tasks, owned by one event loop.

Requests arrive from the HTTP edges (:mod:`api_scheduler`, :mod:`api_agent`) as
already-validated wire structs; this class changes state, asks the pure allocator
for offers, and queues events on subscribers' streams. It never awaits a socket.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import time
import uuid as uuidlib
from collections.abc import Iterable
from typing import Any

from mesos import __version__
from mesos.allocator.drf import DRFAllocator
from mesos.errors import ForbiddenError, NotFoundError, ValidationError
from mesos.flags import Flags
from mesos.http.streaming import EventStream
from mesos.master import accept as acceptmod
from mesos.master.state import (
    TERMINAL_STATES,
    Agent,
    Counters,
    Framework,
    Offer,
    Task,
    UnreachableAgent,
)
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1 import mesos as v1
from mesos.v1 import scheduler as sched
from mesos.v1.enums import TaskState, TaskStatusReason

log = logging.getLogger("mesos.master")

REFUSE_SECONDS_DEFAULT = 5.0
REFUSE_SECONDS_MAX = 31536000.0


def event(type_: str, payload: Any = None) -> bytes:
    """One stream event: ``{"type": T, "<t>": payload}`` as compact JSON."""
    if payload is None:
        return codec.encode({"type": type_})
    return codec.encode({"type": type_, type_.lower(): payload})


def _ip_as_int(ip: str) -> int:
    try:
        packed = socket.inet_aton(ip)
    except OSError:
        return 0
    return int.from_bytes(packed, "little")


class Master:
    def __init__(self, flags: Flags) -> None:
        self.flags = flags
        self.id = str(uuidlib.uuid4())
        self.start_time = time.time()
        self.ip: str = flags.advertise_ip or flags.ip
        self.port: int = flags.advertise_port or flags.port
        self.hostname: str = flags.hostname or self._lookup_hostname()
        self.pid = f"master@{self.ip}:{self.port}"
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: list[Framework] = []
        self.removed_framework_ids: set[str] = set()
        self.agents: dict[str, Agent] = {}
        self.unreachable_agents: dict[str, UnreachableAgent] = {}
        self.offers: dict[str, Offer] = {}
        self._agent_streams: dict[str, str] = {}  # stream id -> agent id
        self.counters = Counters()
        self._framework_ids = itertools.count()
        self._agent_ids = itertools.count()
        self._offer_ids = itertools.count()
        self.allocator = DRFAllocator(
            min_allocatable=self._min_allocatable(flags.min_allocatable_resources)
        )
        self.allocator.update_weights(self._parse_weights(flags.weights))
        self._allocation_wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle

    def _lookup_hostname(self) -> str:
        if self.flags.hostname_lookup:
            try:
                return socket.gethostbyaddr(self.ip)[0]
            except OSError:
                pass
        return self.ip

    @staticmethod
    def _min_allocatable(text: str | None) -> list[Resources] | None:
        if not text:
            return None
        return [Resources.parse(part) for part in text.split("|") if part.strip()]

    @staticmethod
    def _parse_weights(text: str | None) -> dict[str, float]:
        weights: dict[str, float] = {}
        for item in (text or "").split(","):
            if not item.strip():
                continue
            role, sep, value = item.partition("=")
            if not sep:
                raise ValidationError(f"Invalid weight '{item}': expected role=weight")
            try:
                weight = float(value)
            except ValueError:
                raise ValidationError(f"Invalid weight '{item}': '{value}' is not a number") from None
            if weight <= 0:
                raise ValidationError(f"Invalid weight '{item}': weights must be positive")
            weights[role.strip()] = weight
        return weights

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._tasks.append(asyncio.create_task(self._allocation_loop()))
        self._tasks.append(asyncio.create_task(self._ping_loop()))
        log.info("Master %s (%s) started on %s:%s", self.id, __version__, self.ip, self.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        for framework in self.frameworks.values():
            if framework.stream is not None:
                framework.stream.close()
        for agent in self.agents.values():
            if agent.stream is not None:
                agent.stream.close()

    def master_info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ip": _ip_as_int(self.ip),
            "port": self.port,
            "pid": self.pid,
            "hostname": self.hostname,
            "version": __version__,
            "address": {"hostname": self.hostname, "ip": self.ip, "port": self.port},
            "capabilities": [{"type": "AGENT_UPDATE"}],
        }

    def _now(self) -> float:
        return time.time()

    def _later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        assert self.loop is not None
        return self.loop.call_later(delay, callback, *args)

    # ------------------------------------------------------------------ frameworks

    def subscribe(
        self, request_stream: EventStream, call: sched.Call
    ) -> Framework | None:
        """Admit or fail over a framework; on refusal send ERROR and return None."""
        assert call.subscribe is not None
        info = call.subscribe.framework_info
        error = self._validate_framework_info(info)
        if error is not None:
            request_stream.send(event("ERROR", {"message": error}))
            request_stream.close()
            return None
        now = self._now()
        framework_id = info.id.value if info.id is not None else None
        framework = self.frameworks.get(framework_id) if framework_id else None
        if framework_id and framework is None and framework_id in self.removed_framework_ids:
            request_stream.send(event("ERROR", {"message": "Framework has been removed"}))
            request_stream.close()
            return None
        if framework is None:
            if not framework_id:
                framework_id = f"{self.id}-{next(self._framework_ids):04d}"
                info.id = v1.FrameworkID(value=framework_id)
            framework = Framework(id=framework_id, info=info, registered_time=now)
            self.frameworks[framework_id] = framework
            self.allocator.add_framework(
                framework_id, framework.roles, framework.capabilities,
                suppressed_roles=set(call.subscribe.suppressed_roles),
            )
            framework.suppressed_roles = set(call.subscribe.suppressed_roles)
            log.info("Added framework %s (%s) with roles %s", framework_id, info.name, framework.roles)
            self.counters.inc("master/frameworks_subscribed")
        else:
            self._failover(framework, info, set(call.subscribe.suppressed_roles), now)
        framework.stream = request_stream
        framework.stream_id = request_stream.stream_id
        framework.active = True
        request_stream.send(
            event(
                "SUBSCRIBED",
                {
                    "framework_id": {"value": framework.id},
                    "heartbeat_interval_seconds": float(self.flags.heartbeat_interval),
                    "master_info": self.master_info(),
                },
            )
        )
        request_stream.send(event("HEARTBEAT"))
        self.allocator.activate_framework(framework.id)
        self.wake_allocator()
        return framework

    def _validate_framework_info(self, info: v1.FrameworkInfo) -> str | None:
        caps = {c.type for c in info.capabilities}
        if "MULTI_ROLE" in caps:
            if info.role is not None:
                return "'FrameworkInfo.role' must not be set with the MULTI_ROLE capability"
            roles = list(info.roles)
        else:
            if info.roles:
                return "'FrameworkInfo.roles' requires the MULTI_ROLE capability"
            roles = [info.role or "*"]
        if len(set(roles)) != len(roles):
            return f"'FrameworkInfo.roles' contains duplicates: {roles}"
        for role in roles:
            problem = validate_role(role)
            if problem:
                return f"Invalid role '{role}': {problem}"
        whitelist = self.flags.roles
        if whitelist:
            allowed = {r.strip() for r in whitelist.split(",")} | {"*"}
            for role in roles:
                if role not in allowed:
                    return f"Role '{role}' is not present in the master's --roles"
        if info.user == "root" and not self.flags.root_submissions:
            return "User 'root' is not allowed to run frameworks without --root_submissions"
        if info.failover_timeout is not None and not (0 <= info.failover_timeout < 1e10):
            return "'FrameworkInfo.failover_timeout' is not a valid duration"
        return None

    def _failover(
        self, framework: Framework, info: v1.FrameworkInfo, suppressed: set[str], now: float
    ) -> None:
        old = framework.stream
        if old is not None and not old.closed:
            old.send(event("ERROR", {"message": "Framework failed over"}))
            old.close()
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
            framework.failover_timer = None
        info.id = v1.FrameworkID(value=framework.id)
        framework.info = info
        framework.reregistered_time = now
        framework.unregistered_time = None
        framework.suppressed_roles = suppressed
        # Offers made to the old connection are taken back, as Mesos does.
        for offer in list(framework.offers.values()):
            self._remove_offer(offer, rescind=False, recover=True)
        self.allocator.update_framework(
            framework.id, framework.roles, framework.capabilities, suppressed_roles=suppressed
        )
        log.info("Framework %s (%s) failed over / re-subscribed", framework.id, info.name)

    def stream_closed(self, framework_id: str, stream: EventStream) -> None:
        """The framework's subscription ended: start its failover timeout."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.stream is not stream:
            return
        framework.stream = None
        framework.active = False
        framework.unregistered_time = self._now()
        self.allocator.deactivate_framework(framework.id)
        for offer in list(framework.offers.values()):
            self._remove_offer(offer, rescind=False, recover=True)
        timeout = float(framework.info.failover_timeout or 0.0)
        log.info("Framework %s disconnected; failover timeout %.1fs", framework.id, timeout)
        framework.failover_timer = self._later(timeout, self._failover_expired, framework.id)

    def _failover_expired(self, framework_id: str) -> None:
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.connected:
            return
        log.info("Framework %s did not re-subscribe within its failover timeout", framework_id)
        self.remove_framework(framework, "failover timeout expired")

    def remove_framework(self, framework: Framework, why: str) -> None:
        """Tear a framework down: offers back, executors and tasks killed."""
        log.info("Removing framework %s (%s): %s", framework.id, framework.info.name, why)
        if framework.failover_timer is not None:
            framework.failover_timer.cancel()
        for offer in list(framework.offers.values()):
            self._remove_offer(offer, rescind=False, recover=True)
        now = self._now()
        # Which agents run something of this framework, before its tasks move out.
        agent_ids = set(framework.executors) | {
            a.id for a in self.agents.values() if framework.id in a.tasks
        }
        for task in list(framework.tasks.values()):
            if not task.terminal:
                status = self._master_status(task, "TASK_KILLED", "REASON_FRAMEWORK_REMOVED",
                                             "Framework removed", now)
                self._apply_status(task, status)
            self._recover_task(task)
            self._complete_task(framework, task)
        for agent_id in agent_ids:
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": framework.id}}))
                agent.executors.pop(framework.id, None)
                agent.tasks.pop(framework.id, None)
        framework.executors.clear()
        framework.unreachable_tasks.clear()
        if framework.stream is not None:
            framework.stream.close()
            framework.stream = None
        framework.active = False
        framework.unregistered_time = now
        self.allocator.remove_framework(framework.id)
        del self.frameworks[framework.id]
        self.removed_framework_ids.add(framework.id)
        self.completed_frameworks.append(framework)
        excess = len(self.completed_frameworks) - int(self.flags.max_completed_frameworks)
        if excess > 0:
            del self.completed_frameworks[:excess]
        self.wake_allocator()

    def framework_for_call(self, call: sched.Call, stream_id: str | None) -> Framework:
        """The subscribed framework a non-SUBSCRIBE call acts for, or an error."""
        if call.framework_id is None:
            raise ValidationError("Expecting 'framework_id' to be present")
        framework = self.frameworks.get(call.framework_id.value)
        if framework is None:
            raise ValidationError("Framework cannot be found")
        if not framework.connected:
            raise ForbiddenError("Framework is not subscribed")
        if stream_id is None:
            raise ValidationError("All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        if stream_id != framework.stream_id:
            raise ValidationError(
                f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
                f"currently associated with framework ID {framework.id}"
            )
        return framework

    # ------------------------------------------------------------------ scheduler calls

    def teardown(self, framework: Framework) -> None:
        self.remove_framework(framework, "TEARDOWN call")

    def accept(self, framework: Framework, body: sched.Accept) -> None:
        offer_ids = [o.value for o in body.offer_ids]
        plan = acceptmod.plan_accept(framework, self.offers, offer_ids, body.operations)
        refuse = self._refuse_seconds(body.filters)
        now = self._now()
        for offer in plan.offers:
            self._remove_offer(offer, rescind=False, recover=False)
        if plan.invalid_offers:
            self._report_invalid_offers(framework, body.operations, plan.invalid_offers, now)
            if plan.agent_id is not None and plan.remaining:
                self.allocator.recover_resources(framework.id, plan.agent_id, plan.remaining, None,
                                                 now, role=plan.role)
            self.wake_allocator()
            return
        assert plan.agent_id is not None
        agent = self.agents.get(plan.agent_id)
        if agent is None:
            return
        for launch in plan.launches:
            self._launch_task(framework, agent, plan.role, launch)
        for executor, members in plan.groups:
            self._launch_group(framework, agent, plan.role, executor, members)
        if plan.remaining:
            self.allocator.recover_resources(framework.id, agent.id, plan.remaining, refuse, now,
                                             role=plan.role)
        self.counters.inc("master/messages_accept")
        self.wake_allocator()

    def _report_invalid_offers(
        self, framework: Framework, operations: list[v1.Operation], invalid: list[str], now: float
    ) -> None:
        state: TaskState = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
        message = f"Task launched with invalid offers: Offer {invalid[0]} is no longer valid"
        for op in operations:
            tasks: list[v1.TaskInfo] = []
            if op.type == "LAUNCH" and op.launch is not None:
                tasks = op.launch.task_infos
            elif op.type == "LAUNCH_GROUP" and op.launch_group is not None:
                tasks = op.launch_group.task_group.tasks
            for task in tasks:
                status = v1.TaskStatus(
                    task_id=task.task_id, state=state, source="SOURCE_MASTER",
                    reason="REASON_INVALID_OFFERS", message=message,
                    agent_id=task.agent_id, timestamp=now,
                )
                framework.send(event("UPDATE", {"status": status}))

    def _launch_task(
        self, framework: Framework, agent: Agent, role: str, launch: acceptmod.Launch
    ) -> None:
        task = acceptmod.task_of(launch, framework, role)
        self._add_task(framework, agent, task, launch.executor)
        agent.send(event("RUN_TASK", {"framework_info": framework.info, "task": launch.task}))
        self.counters.inc("master/tasks_launched")

    def _launch_group(
        self, framework: Framework, agent: Agent, role: str, executor: v1.ExecutorInfo,
        members: list[acceptmod.Launch],
    ) -> None:
        if executor.framework_id is None:
            executor.framework_id = v1.FrameworkID(value=framework.id)
        for launch in members:
            task = acceptmod.task_of(launch, framework, role)
            self._add_task(framework, agent, task, executor)
            self.counters.inc("master/tasks_launched")
        agent.send(
            event(
                "RUN_TASK_GROUP",
                {
                    "framework_info": framework.info,
                    "executor": executor,
                    "task_group": {"tasks": [m.task for m in members]},
                },
            )
        )

    def _add_task(
        self, framework: Framework, agent: Agent, task: Task, executor: v1.ExecutorInfo | None
    ) -> None:
        framework.tasks[task.id] = task
        agent.tasks.setdefault(framework.id, {})[task.id] = task
        if executor is not None:
            exec_id = executor.executor_id.value
            framework.executors.setdefault(agent.id, {})[exec_id] = executor
            agent.executors.setdefault(framework.id, {})[exec_id] = executor
        log.info("Launching task %s of framework %s on agent %s", task.id, framework.id, agent.id)

    def decline(self, framework: Framework, body: sched.Decline) -> None:
        refuse = self._refuse_seconds(body.filters)
        now = self._now()
        for offer_id in body.offer_ids:
            offer = self.offers.get(offer_id.value)
            if offer is None or offer.framework_id != framework.id:
                continue
            self._remove_offer(offer, rescind=False, recover=False)
            self.allocator.recover_resources(framework.id, offer.agent_id, offer.resources, refuse,
                                             now, role=offer.role)
        self.counters.inc("master/messages_decline_offers")
        self.wake_allocator()

    @staticmethod
    def _refuse_seconds(filters: v1.Filters | None) -> float:
        if filters is None or filters.refuse_seconds is None:
            return REFUSE_SECONDS_DEFAULT
        value = float(filters.refuse_seconds)
        if value < 0:
            return REFUSE_SECONDS_DEFAULT
        return min(value, REFUSE_SECONDS_MAX)

    def revive(self, framework: Framework, roles: list[str] | None) -> None:
        if roles:
            self._check_roles(framework, roles, "revive.roles")
            framework.suppressed_roles -= set(roles)
        else:
            framework.suppressed_roles.clear()
        self.allocator.revive(framework.id, roles or None)
        self.wake_allocator()

    def suppress(self, framework: Framework, roles: list[str] | None) -> None:
        if roles:
            self._check_roles(framework, roles, "suppress.roles")
            framework.suppressed_roles |= set(roles)
        else:
            framework.suppressed_roles = set(framework.roles)
        self.allocator.suppress(framework.id, roles or None)

    @staticmethod
    def _check_roles(framework: Framework, roles: list[str], where: str) -> None:
        for role in roles:
            if role not in framework.roles:
                raise ValidationError(f"Invalid '{where}': framework is not subscribed to role '{role}'")

    def kill(self, framework: Framework, body: sched.Kill) -> None:
        task_id = body.task_id.value
        task = framework.tasks.get(task_id) or framework.unreachable_tasks.get(task_id)
        if task is None:
            state: TaskState = "TASK_UNKNOWN" if framework.partition_aware else "TASK_LOST"
            status = v1.TaskStatus(
                task_id=body.task_id, state=state, source="SOURCE_MASTER",
                reason="REASON_RECONCILIATION", message="Attempted to kill an unknown task",
                agent_id=body.agent_id, timestamp=self._now(),
            )
            framework.send(event("UPDATE", {"status": status}))
            return
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return
        payload: dict[str, Any] = {"framework_id": {"value": framework.id}, "task_id": body.task_id}
        if body.kill_policy is not None:
            payload["kill_policy"] = body.kill_policy
        agent.send(event("KILL_TASK", payload))
        self.counters.inc("master/messages_kill_task")

    def shutdown_executor(self, framework: Framework, body: sched.Shutdown) -> None:
        agent = self.agents.get(body.agent_id.value)
        if agent is None:
            raise NotFoundError(f"Agent {body.agent_id.value} is not registered")
        agent.send(
            event(
                "SHUTDOWN_EXECUTOR",
                {"framework_id": {"value": framework.id}, "executor_id": body.executor_id},
            )
        )

    def acknowledge(self, framework: Framework, body: sched.Acknowledge) -> None:
        if len(body.uuid) != 16:
            raise ValidationError("Invalid 'acknowledge.uuid': must be exactly 16 bytes")
        task = framework.tasks.get(body.task_id.value)
        agent = self.agents.get(body.agent_id.value)
        if task is not None and task.unacked_uuid == body.uuid:
            task.unacked_uuid = None
            if task.terminal:
                self._complete_task(framework, task)
        if agent is not None:
            agent.send(
                event(
                    "ACKNOWLEDGE",
                    {
                        "framework_id": {"value": framework.id},
                        "task_id": body.task_id,
                        "uuid": body.uuid,
                    },
                )
            )
        self.counters.inc("master/messages_status_update_acknowledgement")

    def reconcile(self, framework: Framework, body: sched.Reconcile) -> None:
        now = self._now()
        if not body.tasks:
            for task in list(framework.tasks.values()) + list(framework.unreachable_tasks.values()):
                framework.send(event("UPDATE", {"status": self._reconcile_status(task, now)}))
            return
        for item in body.tasks:
            found = framework.tasks.get(item.task_id.value) or framework.unreachable_tasks.get(
                item.task_id.value
            )
            if found is not None:
                task = found
                status = self._reconcile_status(task, now)
            else:
                status = self._unknown_task_status(framework, item, now)
            framework.send(event("UPDATE", {"status": status}))

    def _unknown_task_status(self, framework: Framework, item: Any, now: float) -> v1.TaskStatus:
        agent_id = item.agent_id.value if item.agent_id is not None else None
        # Mesos: non-partition-aware frameworks hear TASK_LOST; aware ones hear what is
        # known of the agent: unreachable, registered (so the task is gone) or unknown.
        state: TaskState = "TASK_UNKNOWN"
        if not framework.partition_aware:
            state = "TASK_LOST"
        elif agent_id is not None and agent_id in self.unreachable_agents:
            state = "TASK_UNREACHABLE"
        elif agent_id is not None and agent_id in self.agents:
            state = "TASK_GONE"
        return v1.TaskStatus(
            task_id=item.task_id, state=state, source="SOURCE_MASTER",
            reason="REASON_RECONCILIATION", message="Reconciliation: Task is unknown",
            agent_id=item.agent_id, timestamp=now,
        )

    def _reconcile_status(self, task: Task, now: float) -> v1.TaskStatus:
        latest = task.latest_status()
        state = task.state
        return v1.TaskStatus(
            task_id=task.info.task_id, state=state, source="SOURCE_MASTER",
            reason="REASON_RECONCILIATION", message="Reconciliation: Latest task state",
            agent_id=v1.AgentID(value=task.agent_id),
            executor_id=v1.ExecutorID(value=task.executor_id) if task.executor_id else None,
            timestamp=now, healthy=latest.healthy if latest is not None else None,
            data=latest.data if latest is not None else None,
        )

    def message(self, framework: Framework, body: sched.Message) -> None:
        agent = self.agents.get(body.agent_id.value)
        if agent is None:
            return
        agent.send(
            event(
                "FRAMEWORK_MESSAGE",
                {"framework_id": {"value": framework.id}, "executor_id": body.executor_id,
                 "data": body.data},
            )
        )
        self.counters.inc("master/messages_framework_to_executor")

    def update_framework(self, framework: Framework, body: sched.UpdateFramework) -> None:
        info = body.framework_info
        if info.id is None or info.id.value != framework.id:
            raise ValidationError("'update_framework.framework_info.id' must equal 'framework_id'")
        for name in ("principal", "user", "checkpoint"):
            if getattr(info, name) != getattr(framework.info, name):
                raise ValidationError(
                    f"Invalid 'update_framework.framework_info.{name}': it cannot be changed"
                )
        error = self._validate_framework_info(info)
        if error is not None:
            raise ValidationError(error)
        framework.info = info
        framework.suppressed_roles = set(body.suppressed_roles)
        self.allocator.update_framework(
            framework.id, framework.roles, framework.capabilities,
            suppressed_roles=framework.suppressed_roles,
        )
        for agent_id in framework.executors:
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.send(event("UPDATE_FRAMEWORK", {"framework_info": info}))
        self.wake_allocator()

    # ------------------------------------------------------------------ offers and allocation

    def wake_allocator(self) -> None:
        self._allocation_wakeup.set()

    async def _allocation_loop(self) -> None:
        interval = float(self.flags.allocation_interval)
        while True:
            try:
                await asyncio.wait_for(self._allocation_wakeup.wait(), interval)
            except TimeoutError:
                pass
            self._allocation_wakeup.clear()
            try:
                self.allocate()
            except Exception:  # a bug here must not stop every future allocation
                log.exception("Allocation failed")
            # Batch the bursts of freed resources a busy cluster produces.
            await asyncio.sleep(min(interval, 0.005))

    def allocate(self) -> None:
        now = self._now()
        by_framework: dict[str, list[Offer]] = {}
        for allocation in self.allocator.allocate(now):
            framework = self.frameworks.get(allocation.framework_id)
            agent = self.agents.get(allocation.agent_id)
            if framework is None or agent is None or not framework.connected:
                self.allocator.recover_resources(
                    allocation.framework_id, allocation.agent_id, allocation.resources, None, now,
                    role=allocation.role,
                )
                continue
            offer = Offer(
                id=f"{self.id}-O{next(self._offer_ids)}",
                framework_id=framework.id,
                agent_id=agent.id,
                role=allocation.role,
                resources=allocation.resources,
            )
            self.offers[offer.id] = offer
            framework.offers[offer.id] = offer
            agent.offers.add(offer.id)
            if self.flags.offer_timeout:
                offer.expiry = self._later(float(self.flags.offer_timeout), self._offer_expired, offer.id)
            by_framework.setdefault(framework.id, []).append(offer)
        for framework_id, offers in by_framework.items():
            framework = self.frameworks[framework_id]
            framework.send(event("OFFERS", {"offers": [self._offer_json(framework, o) for o in offers]}))
            self.counters.inc("master/outstanding_offers_sent", len(offers))

    def _offer_json(self, framework: Framework, offer: Offer) -> dict[str, Any]:
        agent = self.agents[offer.agent_id]
        multi_role = "MULTI_ROLE" in framework.capabilities
        if multi_role:
            resources = offer.resources.allocate(offer.role).to_json()
        elif "RESERVATION_REFINEMENT" in framework.capabilities:
            resources = offer.resources.to_json()
        else:
            resources = offer.resources.to_json_pre_refinement()
        body: dict[str, Any] = {
            "id": {"value": offer.id},
            "framework_id": {"value": framework.id},
            "agent_id": {"value": agent.id},
            "hostname": agent.info.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": agent.info.hostname, "ip": agent.pid.split("@")[-1].split(":")[0],
                            "port": agent.info.port or 5051},
                "path": "/slave(1)",
            },
            "resources": resources,
            "attributes": agent.info.attributes,
            "executor_ids": [{"value": e} for e in agent.executors.get(framework.id, {})],
        }
        if agent.info.domain is not None:
            body["domain"] = agent.info.domain
        if multi_role:
            body["allocation_info"] = {"role": offer.role}
        return body

    def _offer_expired(self, offer_id: str) -> None:
        offer = self.offers.get(offer_id)
        if offer is not None:
            log.info("Offer %s expired after --offer_timeout", offer_id)
            self._remove_offer(offer, rescind=True, recover=True)
            self.wake_allocator()

    def _remove_offer(self, offer: Offer, *, rescind: bool, recover: bool) -> None:
        self.offers.pop(offer.id, None)
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.pop(offer.id, None)
            if rescind:
                framework.send(event("RESCIND", {"offer_id": {"value": offer.id}}))
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.discard(offer.id)
        if offer.expiry is not None:
            offer.expiry.cancel()
        if recover:
            self.allocator.recover_resources(offer.framework_id, offer.agent_id, offer.resources,
                                             None, self._now(), role=offer.role)

    # ------------------------------------------------------------------ agents

    def register_agent(self, stream: EventStream, body: Any) -> Agent:
        """SUBSCRIBE on the agent channel: admit a new agent or take one back."""
        info: v1.AgentInfo = body.agent_info
        total = acceptmod.resources_of(body.resources or info.resources, "'subscribe.resources'")
        now = self._now()
        agent_id = info.id.value if info.id is not None else None
        existing = self.agents.get(agent_id) if agent_id else None
        reregistered = agent_id is not None and (existing is not None or agent_id in self.unreachable_agents)
        if not agent_id:
            agent_id = f"{self.id}-S{next(self._agent_ids)}"
        info.id = v1.AgentID(value=agent_id)
        if existing is not None:
            if existing.stream is not None and existing.stream is not stream:
                existing.stream.close()
            self._drop_agent_from_allocator(existing)
        pid = f"slave(1)@{body.address_ip or self._peer_ip(stream)}:{info.port or 5051}"
        agent = Agent(
            id=agent_id, info=info, pid=pid, total=total, version=body.version or __version__,
            registered_time=existing.registered_time if existing else now,
            reregistered_time=now if reregistered else None,
        )
        agent.stream = stream
        agent.stream_id = stream.stream_id
        if stream.stream_id is not None:
            self._agent_streams[stream.stream_id] = agent_id
        self.agents[agent_id] = agent
        was_unreachable = self.unreachable_agents.pop(agent_id, None)
        self._recover_agent_tasks(agent, body, existing, was_unreachable is not None)
        used: dict[str, Resources] = {}
        for framework_id, tasks in agent.tasks.items():
            for task in tasks.values():
                if not task.terminal:
                    used[framework_id] = used.get(framework_id, Resources.empty()) + task.resources
        for framework_id, executors in agent.executors.items():
            for executor in executors.values():
                res = acceptmod.resources_of(executor.resources, "executor resources")
                if res:
                    used[framework_id] = used.get(framework_id, Resources.empty()) + res
        self.allocator.add_agent(agent_id, total, used)
        stream.send(
            event(
                "SUBSCRIBED",
                {"agent_id": {"value": agent_id},
                 "ping_interval_seconds": float(self.flags.agent_ping_timeout)},
            )
        )
        self.counters.inc("master/slave_reregistrations" if reregistered else "master/slave_registrations")
        log.info("%s agent %s at %s (%s) with %s", "Re-registered" if reregistered else "Registered",
                 agent_id, pid, info.hostname, total)
        self.wake_allocator()
        return agent

    @staticmethod
    def _peer_ip(stream: EventStream) -> str:
        peer = stream.request.transport.get_extra_info("peername") if stream.request.transport else None
        return str(peer[0]) if peer else "127.0.0.1"

    def _recover_agent_tasks(
        self, agent: Agent, body: Any, existing: Agent | None, was_unreachable: bool
    ) -> None:
        """Rebuild the agent's tasks from what it reports (it is the source of truth)."""
        reported: dict[tuple[str, str], Any] = {}
        for item in body.tasks or []:
            reported[(item.framework_id.value, item.task_id.value)] = item
        for executor in body.executors or []:
            if executor.framework_id is None:
                continue
            fw_id = executor.framework_id.value
            agent.executors.setdefault(fw_id, {})[executor.executor_id.value] = executor
            framework = self.frameworks.get(fw_id)
            if framework is not None:
                framework.executors.setdefault(agent.id, {})[executor.executor_id.value] = executor
        for (fw_id, task_id), item in reported.items():
            framework = self.frameworks.get(fw_id)
            if framework is None:
                if fw_id in self.removed_framework_ids:
                    agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": fw_id}}))
                continue
            if was_unreachable and not framework.partition_aware:
                # Mesos kills the tasks of non-partition-aware frameworks on an agent
                # that comes back after being marked unreachable.
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": fw_id}}))
                continue
            task = framework.tasks.get(task_id) or framework.unreachable_tasks.pop(task_id, None)
            if task is None:
                info = v1.TaskInfo(
                    name=item.name, task_id=item.task_id, agent_id=v1.AgentID(value=agent.id),
                    resources=item.resources,
                )
                task = Task(
                    info=info, framework_id=fw_id, agent_id=agent.id,
                    executor_id=item.executor_id.value if item.executor_id else "",
                    role=framework.roles[0], resources=acceptmod.resources_of(item.resources, "task"),
                )
            task.state = item.state
            framework.tasks[task_id] = task
            agent.tasks.setdefault(fw_id, {})[task_id] = task
            if was_unreachable and task.state == "TASK_RUNNING":
                status = v1.TaskStatus(
                    task_id=task.info.task_id, state="TASK_RUNNING", source="SOURCE_MASTER",
                    reason="REASON_AGENT_REREGISTERED", message="Agent re-registered",
                    agent_id=v1.AgentID(value=agent.id), timestamp=self._now(),
                )
                task.statuses.append(status)
                framework.send(event("UPDATE", {"status": status}))
        # Tasks the master launched that the agent never heard of were lost in flight.
        if existing is not None:
            for task in existing.all_tasks():
                if (task.framework_id, task.id) in reported or task.terminal:
                    continue
                framework = self.frameworks.get(task.framework_id)
                if framework is None:
                    continue
                state: TaskState = "TASK_DROPPED" if framework.partition_aware else "TASK_LOST"
                status = self._master_status(task, state, "REASON_AGENT_RESTARTED",
                                             "Task was not found on the re-registered agent",
                                             self._now())
                self._apply_status(task, status)
                framework.send(event("UPDATE", {"status": status}))
                self._complete_task(framework, task)

    def _drop_agent_from_allocator(self, agent: Agent) -> None:
        for offer_id in list(agent.offers):
            offer = self.offers.get(offer_id)
            if offer is not None:
                self._remove_offer(offer, rescind=True, recover=False)
        self.allocator.remove_agent(agent.id)

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
        log.warning("Marking agent %s (%s) unreachable: %s", agent.id, agent.info.hostname, why)
        now = self._now()
        self._drop_agent_from_allocator(agent)
        for task in agent.all_tasks():
            framework = self.frameworks.get(task.framework_id)
            if framework is None or task.terminal:
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
            else:
                framework.completed_tasks.append(task)
        for framework in self.frameworks.values():
            framework.executors.pop(agent.id, None)
            framework.send(event("FAILURE", {"agent_id": {"value": agent.id}}))
        if agent.stream is not None:
            agent.stream.close()
        del self.agents[agent.id]
        self.unreachable_agents[agent.id] = UnreachableAgent(id=agent.id, info=agent.info, time=now)
        self.counters.inc("master/slave_unreachable_completed")
        self.counters.inc("master/slave_removals")
        self.wake_allocator()

    # ------------------------------------------------------------------ status updates

    def status_update(self, agent: Agent, framework_id: str, status: v1.TaskStatus) -> None:
        framework = self.frameworks.get(framework_id)
        task_id = status.task_id.value
        if framework is None:
            self.counters.inc("master/invalid_status_updates")
            if framework_id in self.removed_framework_ids:
                agent.send(event("SHUTDOWN_FRAMEWORK", {"framework_id": {"value": framework_id}}))
            return
        task = framework.tasks.get(task_id)
        if task is None:
            self.counters.inc("master/invalid_status_updates")
            # Forward anyway so the scheduler can acknowledge it and the agent stops retrying.
            framework.send(event("UPDATE", {"status": status}))
            return
        status.agent_id = v1.AgentID(value=agent.id)
        self._apply_status(task, status)
        if status.uuid is not None:
            task.unacked_uuid = status.uuid
        if task.terminal:
            self._recover_task(task)
        framework.send(event("UPDATE", {"status": status}))
        self.counters.inc("master/valid_status_updates")
        self.counters.inc(f"master/messages_status_update_{status.state.lower()}")

    def _apply_status(self, task: Task, status: v1.TaskStatus) -> None:
        if status.state != task.state and not task.terminal:
            self.counters.inc(f"master/tasks_{status.state[5:].lower()}_total")
        if not task.terminal or status.state in TERMINAL_STATES:
            task.state = status.state
        task.statuses.append(status)
        if len(task.statuses) > 50:
            del task.statuses[1:-49]

    def _master_status(
        self, task: Task, state: TaskState, reason: TaskStatusReason, message: str, now: float
    ) -> v1.TaskStatus:
        return v1.TaskStatus(
            task_id=task.info.task_id, state=state, source="SOURCE_MASTER", reason=reason,
            message=message, agent_id=v1.AgentID(value=task.agent_id), timestamp=now,
            executor_id=v1.ExecutorID(value=task.executor_id) if task.executor_id else None,
        )

    def _recover_task(self, task: Task) -> None:
        if task.resources_recovered:
            return
        task.resources_recovered = True
        if task.agent_id in self.agents:
            self.allocator.recover_resources(task.framework_id, task.agent_id, task.resources,
                                             None, self._now(), role=task.role)
            self.wake_allocator()

    def _complete_task(self, framework: Framework, task: Task) -> None:
        framework.tasks.pop(task.id, None)
        framework.completed_tasks.append(task)
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            by_id = agent.tasks.get(framework.id)
            if by_id is not None:
                by_id.pop(task.id, None)
                if not by_id:
                    agent.tasks.pop(framework.id, None)

    def executor_message(self, agent: Agent, body: Any) -> None:
        framework = self.frameworks.get(body.framework_id.value)
        if framework is None:
            return
        framework.send(
            event("MESSAGE", {"agent_id": {"value": agent.id}, "executor_id": body.executor_id,
                              "data": body.data})
        )
        self.counters.inc("master/messages_executor_to_framework")

    def exited_executor(self, agent: Agent, body: Any) -> None:
        fw_id = body.framework_id.value
        exec_id = body.executor_id.value
        executor = agent.executors.get(fw_id, {}).pop(exec_id, None)
        framework = self.frameworks.get(fw_id)
        if framework is not None:
            framework.executors.get(agent.id, {}).pop(exec_id, None)
        if executor is not None:
            res = acceptmod.resources_of(executor.resources, "executor resources")
            if res:
                self.allocator.recover_resources(fw_id, agent.id, res, None, self._now())
                self.wake_allocator()
            if framework is not None:
                framework.send(
                    event(
                        "FAILURE",
                        {"agent_id": {"value": agent.id}, "executor_id": body.executor_id,
                         "status": int(body.status if body.status is not None else -1)},
                    )
                )
        log.info("Executor %s of framework %s on agent %s exited with status %s",
                 exec_id, fw_id, agent.id, body.status)

    # ------------------------------------------------------------------ views

    def iter_tasks(self) -> Iterable[Task]:
        for framework in self.frameworks.values():
            yield from framework.tasks.values()

    def uptime(self) -> float:
        return time.time() - self.start_time


def validate_role(role: str) -> str | None:
    """Mesos' role name rules; None when valid."""
    if role == "*":
        return None
    if not role:
        return "role names must not be empty"
    if role.startswith("/") or role.endswith("/") or "//" in role:
        return "role names must not start or end with '/' or contain '//'"
    for part in role.split("/"):
        if part in (".", ".."):
            return "'.' and '..' are not valid role path components"
        if part.startswith("-"):
            return "role path components must not start with '-'"
        if part == "*":
            return "'*' is only valid as the whole role name"
        for ch in part:
            if ch.isspace() or ch in "\x7f" or ord(ch) < 32:
                return "role names must not contain whitespace or control characters"
    return None

