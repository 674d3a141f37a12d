"""The master: frameworks, agents, offers and tasks, owned by one event loop.

Requests arrive from the HTTP edges (:mod:`api_scheduler`, :mod:`api_agent`) as
already-validated wire structs; this class changes state, asks the pure allocator
for offers, and queues events on subscribers' streams. It never awaits a socket.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import socket
import time
import uuid as uuidlib
from typing import Any

from mesos import __version__
from mesos.allocator import Allocator, load_allocator
from mesos.errors import ForbiddenError, ValidationError
from mesos.flags import Flags
from mesos.http.streaming import EventStream
from mesos.master import accept as acceptmod
from mesos.master.agents import AgentsMixin
from mesos.master.events import event
from mesos.master.offers import OffersMixin
from mesos.master.operator_stream import OperatorStreams
from mesos.master.registrar import RegistrarMixin, info_json
from mesos.master.registry import AddFramework, RemoveFramework
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
from mesos.v1 import mesos as v1
from mesos.v1 import scheduler as sched
from mesos.v1.enums import TaskState, TaskStatusReason

log = logging.getLogger("mesos.master")

REFUSE_SECONDS_DEFAULT = 5.0
REFUSE_SECONDS_MAX = 31536000.0


def _ip_as_int(ip: str) -> int:
    try:
        packed = socket.inet_aton(ip)
    except OSError:
        return 0
    return int.from_bytes(packed, "little")


class Master(AgentsMixin, OffersMixin, RegistrarMixin):
    def __init__(self, flags: Flags) -> None:
        for name in ("role_sorter", "framework_sorter"):
            if getattr(flags, name) not in ("drf", "random"):
                raise ValidationError(
                    f"Invalid --{name} '{getattr(flags, name)}': expecting 'drf' or 'random'"
                )
        self.removal_limit = _percentage(flags.recovery_agent_removal_limit,
                                         "--recovery_agent_removal_limit")
        if flags.work_dir:
            try:
                os.makedirs(flags.work_dir, exist_ok=True)
            except OSError as exc:
                raise ValidationError(f"Cannot use --work_dir '{flags.work_dir}': {exc}") from None
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
        self.inverse_offers: dict[str, tuple[str, str]] = {}
        self._agent_streams: dict[str, str] = {}  # stream id -> agent id
        self._pending_kills: dict[str, set[tuple[str, str]]] = {}
        self.counters = Counters()
        self._framework_ids = itertools.count()
        self._agent_ids = itertools.count()
        self._offer_ids = itertools.count()
        self.region = _region_of(flags.domain, "--domain")
        self.weights: dict[str, float] = self._parse_weights(flags.weights)
        # role -> (guarantees, limits) as set by UPDATE_QUOTA; the allocator enforces it.
        self.quota_configs: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
        self.allocator = self._load_allocator(flags)
        self.allocator.update_weights(self.weights)
        self.recovered_agents: dict[str, v1.AgentInfo] = {}
        self.operator_streams = OperatorStreams(flags.max_operator_event_stream_subscribers)
        # SET_LOGGING_LEVEL: the verbosity in force, and the timer that reverts it.
        self.logging_verbosity = 0
        self.logging_revert: asyncio.TimerHandle | None = None
        self._init_maintenance()
        self._open_registry()
        self._restore_maintenance(self.registrar.registry)
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

    def _load_allocator(self, flags: Flags) -> Allocator:
        options: dict[str, Any] = {
            "min_allocatable": self._min_allocatable(flags.min_allocatable_resources),
            "role_sorter": flags.role_sorter,
            "framework_sorter": flags.framework_sorter,
            "roles": flags.roles,
            "local_region": self.region,
            "filter_gpu_resources": flags.filter_gpu_resources,
        }
        try:
            return load_allocator(flags.allocator, **options)
        except (LookupError, TypeError, ValueError) as exc:
            raise ValidationError(f"Cannot load --allocator '{flags.allocator}': {exc}") from None

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
        self._tasks.append(asyncio.create_task(self._registry_gc_loop()))
        self._start_reregister_timer()
        for framework in list(self.frameworks.values()):
            if framework.recovered:
                self._start_recovered_failover(framework)
        log.info("Master %s (%s) started on %s:%s", self.id, __version__, self.ip, self.port)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self._close_registry()
        self.operator_streams.close_all()
        if self.logging_revert is not None:
            self.logging_revert.cancel()
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
        is_new = framework is None
        if framework is None:
            if not framework_id:
                framework_id = f"{self.id}-{next(self._framework_ids):04d}"
                info.id = v1.FrameworkID(value=framework_id)
            framework = self._new_framework(framework_id, info, now)
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
        # Offers wait until the framework is in the registry; SUBSCRIBED says it is.
        self.allocator.deactivate_framework(framework.id)
        self._persist(AddFramework(id=framework.id, info=info_json(framework.info)),
                      then=lambda: self._subscribed(framework, request_stream, is_new))
        return framework

    def _subscribed(self, framework: Framework, request_stream: EventStream,
                    is_new: bool = False) -> None:
        if framework.stream is not request_stream or request_stream.closed:
            return  # the subscription ended (or failed over) before it was durable
        framework.active = True
        self._publish_framework("FRAMEWORK_ADDED" if is_new else "FRAMEWORK_UPDATED", framework)
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

    def _new_framework(self, framework_id: str, info: v1.FrameworkInfo, now: float) -> Framework:
        framework = Framework(id=framework_id, info=info, registered_time=now)
        framework.completed_tasks = collections.deque(
            maxlen=max(int(self.flags.max_completed_tasks_per_framework), 0)
        )
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
        framework.recovered = False
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
        self._publish_framework("FRAMEWORK_UPDATED", framework)
        log.info("Framework %s disconnected; failover timeout %.1fs", framework.id, timeout)
        framework.failover_timer = self._later(timeout, self._failover_expired, framework.id)

    def _start_recovered_failover(self, framework: Framework) -> None:
        """A framework this master knows only from its registry or from re-registering
        agents gets its ``failover_timeout``, counted from the master's recovery, to
        re-subscribe; otherwise it is torn down like one whose scheduler went away."""
        if framework.failover_timer is not None or framework.connected:
            return
        timeout = float(framework.info.failover_timeout or 0.0)
        delay = max(0.0, self.start_time + timeout - self._now())
        log.info("Recovered framework %s has %.1fs to re-subscribe", framework.id, delay)
        framework.failover_timer = self._later(delay, self._failover_expired, framework.id)

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
        for task in framework.unreachable_tasks.values():
            framework.completed_tasks.append(task)
        framework.unreachable_tasks.clear()
        if framework.stream is not None:
            framework.stream.close()
            framework.stream = None
        framework.active = False
        framework.unregistered_time = now
        self.allocator.remove_framework(framework.id)
        for offer_id, (owner, _) in list(self.inverse_offers.items()):
            if owner == framework.id:
                del self.inverse_offers[offer_id]
        del self.frameworks[framework.id]
        self.removed_framework_ids.add(framework.id)
        self._persist(RemoveFramework(id=framework.id))
        self.completed_frameworks.append(framework)
        self._publish_framework_removed(framework)
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

    async def teardown(self, framework: Framework) -> None:
        """TEARDOWN: ``RemoveFramework`` is written first, so the ``202`` that follows is
        durable; shielded, so a request cancelled after the write still removes it."""
        await asyncio.shield(self._teardown(framework))

    async def _teardown(self, framework: Framework) -> None:
        await self.registrar.apply(RemoveFramework(id=framework.id))
        if self.frameworks.get(framework.id) is framework:
            self.remove_framework(framework, "TEARDOWN call")

    def accept(self, framework: Framework, body: sched.Accept) -> None:
        offer_ids = [o.value for o in body.offer_ids]
        agent_of_offers = None
        for offer_id in offer_ids:
            known = self.offers.get(offer_id)
            if known is not None:
                agent_of_offers = self.agents.get(known.agent_id)
                break
        plan = acceptmod.plan_accept(framework, self.offers, offer_ids, body.operations,
                                     agent=agent_of_offers)
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
        for old, new in plan.conversions:
            self.allocator.update_allocation(framework.id, agent.id, plan.role, old, new)
            agent.total = agent.total - old + new
            log.info("Framework %s converted %s into %s on agent %s", framework.id, old, new, agent.id)
        if plan.conversions:
            self.checkpoint_resources(agent)
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
        self._publish_task_added(task)
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
        now = self._now()
        unreachable = framework.unreachable_tasks.get(task_id)
        task = framework.tasks.get(task_id)
        if task is None:
            # Unknown and unreachable tasks get what reconciliation would say of them.
            status: v1.TaskStatus | None
            if unreachable is not None:
                status = self._reconcile_status(unreachable, now)
            else:
                status = self._unknown_task_status(framework, body, now)
            if status is not None:
                framework.send(event("UPDATE", {"status": status}))
            return
        agent = self.agents.get(task.agent_id)
        if agent is None:
            return
        if not agent.connected:
            # Sent again when the agent re-registers.
            self._pending_kills.setdefault(agent.id, set()).add((framework.id, task_id))
            return
        payload: dict[str, Any] = {"framework_id": {"value": framework.id}, "task_id": body.task_id}
        if body.kill_policy is not None:
            payload["kill_policy"] = body.kill_policy
        agent.send(event("KILL_TASK", payload))
        self.counters.inc("master/messages_kill_task")

    def shutdown_executor(self, framework: Framework, body: sched.Shutdown) -> None:
        agent = self.agents.get(body.agent_id.value)
        if agent is None:
            return  # as Mesos: nothing to shut down on an agent it does not know
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
            status: v1.TaskStatus | None
            found = framework.tasks.get(item.task_id.value) or framework.unreachable_tasks.get(
                item.task_id.value
            )
            if found is not None:
                task = found
                status = self._reconcile_status(task, now)
            else:
                status = self._unknown_task_status(framework, item, now)
            if status is not None:
                framework.send(event("UPDATE", {"status": status}))

    def _unknown_task_status(self, framework: Framework, item: Any,
                             now: float) -> v1.TaskStatus | None:
        """What reconciliation says of a task the master does not know; None (say
        nothing) while its agent is recovered from the registry but has not re-registered,
        since the task may well come back with it (Mesos drops such reconciliations)."""
        agent_id = item.agent_id.value if item.agent_id is not None else None
        if agent_id is not None and agent_id in self.recovered_agents:
            return None
        # Mesos: non-partition-aware frameworks hear TASK_LOST; aware ones hear what is
        # known of the agent: unreachable, registered (so the task is gone) or unknown.
        state: TaskState = "TASK_UNKNOWN"
        if not framework.partition_aware:
            state = "TASK_LOST"
        elif agent_id is not None and agent_id in self.registrar.registry.gone:
            state = "TASK_GONE_BY_OPERATOR"
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

    def reconcile_operations(self, framework: Framework, body: sched.ReconcileOperations) -> None:
        """No operation with feedback exists yet, so every one asked about is unknown."""
        for item in body.operations:
            status: dict[str, Any] = {"operation_id": item.operation_id, "state": "OPERATION_UNKNOWN"}
            if item.agent_id is not None:
                status["agent_id"] = item.agent_id
            framework.send(event("UPDATE_OPERATION_STATUS", {"status": status}))

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
        # Durable before the call is answered (the edge awaits the registrar), so a
        # restarted master recovers the updated info.
        self._persist(AddFramework(id=framework.id, info=info_json(info)))
        framework.suppressed_roles = set(body.suppressed_roles)
        self.allocator.update_framework(
            framework.id, framework.roles, framework.capabilities,
            suppressed_roles=framework.suppressed_roles,
        )
        # Offers made under roles the framework left are taken back, as Mesos does.
        for offer in list(framework.offers.values()):
            if offer.role not in framework.roles:
                self._remove_offer(offer, rescind=True, recover=True)
        agent_ids = set(framework.executors) | {
            a.id for a in self.agents.values() if framework.id in a.tasks
        }
        for agent_id in agent_ids:
            agent = self.agents.get(agent_id)
            if agent is not None:
                agent.send(event("UPDATE_FRAMEWORK", {"framework_info": info}))
        self._publish_framework("FRAMEWORK_UPDATED", framework)
        self.wake_allocator()

    # ------------------------------------------------------------------ tasks

    def _apply_status(self, task: Task, status: v1.TaskStatus) -> None:
        if status.state != task.state and not task.terminal:
            self.counters.inc(f"master/tasks_{status.state[5:].lower()}_total")
        if not task.terminal or status.state in TERMINAL_STATES:
            task.state = status.state
        task.statuses.append(status)
        if len(task.statuses) > 50:
            del task.statuses[1:-49]
        self._publish_task_updated(task, status)

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

    # ------------------------------------------------------------------ views

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


def _percentage(text: str, where: str) -> float:
    """``'N%'`` (0 to 100, as Mesos requires the '%') as a fraction."""
    if not text.endswith("%"):
        raise ValidationError(f"Invalid value '{text}' for {where}: missing '%'")
    try:
        value = float(text[:-1])
    except ValueError:
        raise ValidationError(f"Invalid value '{text}' for {where}: not a number") from None
    if not 0.0 <= value <= 100.0:
        raise ValidationError(f"Invalid value '{text}' for {where}: must be within [0%-100%]")
    return value / 100.0


def _region_of(domain: Any, where: str) -> str | None:
    """The region name of a DomainInfo given as JSON (``--domain``), or None."""
    if domain is None:
        return None
    try:
        name = domain["fault_domain"]["region"]["name"]
    except (KeyError, TypeError):
        raise ValidationError(
            f"Invalid {where}: expecting {{\"fault_domain\": {{\"region\": {{\"name\": ...}}, "
            f"\"zone\": {{\"name\": ...}}}}}}"
        ) from None
    if not isinstance(name, str) or not name:
        raise ValidationError(f"Invalid {where}: the region name must be a non-empty string")
    return name
