"""The agent core: frameworks, executors and tasks, and what happens to them.

Pure and synchronous. The one mutator is :meth:`AgentCore.handle`, which takes an
event (a frozen value: a master's RUN_TASK, an executor's UPDATE, an executor that
exited, a timer that fired) and the current time, changes the state, and returns
the effects for the service to carry out (start a process, write to an executor's
stream, hand a status update to the status-update manager, tell the master).
Container ids and status-update uuids are minted by functions passed in, so tests
are deterministic.

Executor life cycle (as Mesos' ``Executor::State``)::

    REGISTERING --SUBSCRIBE--> RUNNING --shutdown--> TERMINATING --exit--> TERMINATED
         |                                                                    ^
         +------------------ exit / registration timeout ---------------------+

A RUNNING executor whose event stream broke is *disconnected* until it subscribes
again: LAUNCH and KILL wait for that. Re-subscribing, it names the updates it could
not get acknowledged (taken over then) and the tasks it knows; a launched task still
STAGING that it does not know is lost, as in Mesos' ``Slave::subscribe``.

A task of an executor is *queued* until the executor subscribes, then *launched*
(sent as LAUNCH / LAUNCH_GROUP); a terminal update moves it to *terminated*, and the
scheduler's acknowledgement of that update moves it to *completed*. A TERMINATED
executor with no unacknowledged tasks is moved to its framework's completed
executors; a framework with no executors left is removed.

An executor's container holds the executor's resources plus those of its queued
and live tasks; whenever tasks come or go (a launch to a running executor, a
terminal update) the core asks for the container to be resized (UpdateContainer),
as Mesos' agent calls the containerizer's ``update``.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from mesos.agent import paths
from mesos.agent.builtin_executors import (
    allocation_role,
    command_executor_info,
    default_executor_info,
)
from mesos.agent.events import (
    CheckpointTasks,
    CloseExecutorStream,
    DestroyContainer,
    Effect,
    Event,
    ExecutorDisconnected,
    ExecutorExited,
    ExecutorLaunchFailed,
    ExecutorMessage,
    ExecutorMessageToMaster,
    ExecutorStarted,
    ExecutorSubscribed,
    ExecutorUpdate,
    ExitedExecutor,
    ForwardStatus,
    FrameworkMessage,
    FrameworksRemoved,
    KillTask,
    LaunchExecutor,
    Registered,
    RegistrationTimeout,
    ReregistrationTimeout,
    RunTask,
    RunTaskGroup,
    SendToExecutor,
    ShutdownAll,
    ShutdownContainer,
    ShutdownExecutor,
    ShutdownFramework,
    UpdateAcknowledged,
    UpdateContainer,
    UpdateFramework,
)
from mesos.agent.state import Executor, Framework, QueuedLaunch, Task, Termination
from mesos.v1 import executor as ev1
from mesos.v1 import mesos as v1
from mesos.v1.mesos import TERMINAL_STATES

log = logging.getLogger(__name__)

MAX_COMPLETED_FRAMEWORKS = 50


@dataclass(frozen=True)
class CoreConfig:
    work_dir: str
    command_executor_argv: tuple[str, ...]
    default_executor_argv: tuple[str, ...]
    shutdown_grace_period: float = 5.0
    registration_timeout: float = 60.0
    max_completed_executors_per_framework: int = 150


class AgentCore:
    """What the agent knows; changed only through :meth:`handle`."""

    def __init__(
        self,
        config: CoreConfig,
        agent_info: v1.AgentInfo,
        *,
        new_container_id: Callable[[], str],
        new_uuid: Callable[[], bytes],
    ) -> None:
        self.config = config
        self.agent_info = agent_info
        self.frameworks: dict[str, Framework] = {}
        self.completed_frameworks: collections.deque[Framework] = collections.deque(
            maxlen=MAX_COMPLETED_FRAMEWORKS
        )
        self._new_container_id = new_container_id
        self._new_uuid = new_uuid
        # Counters for /metrics/snapshot.
        self.terminal_counts: collections.Counter[str] = collections.Counter()
        self.valid_status_updates = 0
        self.invalid_status_updates = 0
        self.valid_framework_messages = 0
        self.invalid_framework_messages = 0
        self.executors_terminated = 0
        # Executors whose tasks changed while handling the current event.
        self._resized: dict[str, Executor] = {}
        self._handlers: dict[type, Callable[[Any, float], list[Effect]]] = {
            Registered: self._registered,
            RunTask: self._run_task,
            RunTaskGroup: self._run_task_group,
            KillTask: self._kill_task,
            ShutdownExecutor: self._shutdown_executor,
            ShutdownFramework: self._shutdown_framework,
            ShutdownAll: self._shutdown_all,
            UpdateFramework: self._update_framework,
            FrameworkMessage: self._framework_message,
            ExecutorSubscribed: self._executor_subscribed,
            ExecutorDisconnected: self._executor_disconnected,
            ExecutorUpdate: self._executor_update,
            ExecutorMessage: self._executor_message,
            ExecutorStarted: self._executor_started,
            ExecutorLaunchFailed: self._executor_launch_failed,
            RegistrationTimeout: self._registration_timeout,
            ReregistrationTimeout: self._reregistration_timeout,
            ExecutorExited: self._executor_exited,
            UpdateAcknowledged: self._update_acknowledged,
        }

    # ------------------------------------------------------------------ queries

    @property
    def agent_id(self) -> str | None:
        return self.agent_info.id.value if self.agent_info.id is not None else None

    def executor(self, framework_id: str, executor_id: str) -> Executor | None:
        framework = self.frameworks.get(framework_id)
        return framework.executors.get(executor_id) if framework is not None else None

    def executors(self) -> Iterator[Executor]:
        for framework in self.frameworks.values():
            yield from framework.executors.values()

    def tasks(self) -> Iterator[Task]:
        """Every task not yet completed: queued, live, or awaiting acknowledgement."""
        for executor in self.executors():
            yield from executor.queued_tasks()
            yield from executor.launched.values()
            yield from executor.terminated.values()

    def executor_call_error(
        self, framework_id: str, executor_id: str, call_type: str
    ) -> tuple[int, str] | None:
        """The HTTP status and message Mesos answers an executor call with, if refused."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            return 400, "Framework cannot be found"
        executor = framework.executors.get(executor_id)
        if executor is None:
            return 400, "Executor cannot be found"
        if executor.state == "REGISTERING" and call_type != "SUBSCRIBE":
            return 403, "Executor is not subscribed"
        return None

    # ------------------------------------------------------------------ the mutator

    def handle(self, event: Event, now: float) -> list[Effect]:
        handler = self._handlers[type(event)]
        known = set(self.frameworks)
        self._resized = {}
        try:
            return handler(event, now) + self._resize_effects()
        except Exception:
            # Leave no half-made framework behind (one with no executor).
            for framework_id in set(self.frameworks) - known:
                if not self.frameworks[framework_id].executors:
                    del self.frameworks[framework_id]
            raise

    def _resize_effects(self) -> list[Effect]:
        """UpdateContainer for each executor (still here, not ended) whose tasks changed."""
        effects: list[Effect] = []
        for executor in self._resized.values():
            if executor.state != "TERMINATED" and self._current(
                    executor.framework_id, executor.id, executor.container_id) is executor:
                effects.append(UpdateContainer(executor.framework_id, executor.id,
                                               executor.container_id))
        self._resized = {}
        return effects

    # ------------------------------------------------------------------ master events

    def _registered(self, event: Registered, now: float) -> list[Effect]:
        self.agent_info = msgspec.structs.replace(
            self.agent_info, id=v1.AgentID(value=event.agent_id)
        )
        return []

    def _framework_for(self, info: v1.FrameworkInfo) -> Framework:
        assert info.id is not None, "checked by _refusal"
        framework = self.frameworks.get(info.id.value)
        if framework is None:
            framework = Framework(
                info,
                completed_executors=collections.deque(
                    maxlen=self.config.max_completed_executors_per_framework
                ),
            )
            self.frameworks[info.id.value] = framework
        elif framework.state == "RUNNING":
            framework.info = info
        return framework

    def _refusal(
        self, info: v1.FrameworkInfo, tasks: list[v1.TaskInfo], executor: v1.ExecutorInfo | None,
        now: float,
    ) -> list[Effect] | None:
        """What to answer tasks the agent cannot run as given (None: they can run).

        Ids become sandbox path components: an id that is not one valid component
        fails every task of the launch with TASK_ERROR (REASON_TASK_INVALID).
        """
        if info.id is None:
            log.error("Ignoring %s: its framework has no id",
                      ", ".join(f"task '{t.task_id.value}'" for t in tasks))
            return []
        named = [("Framework", info.id.value)]
        named += [("Executor", executor.executor_id.value)] if executor is not None else []
        named += [("Task", t.task_id.value) for t in tasks]
        problem = next((f"{kind} ID is invalid: {error}" for kind, value in named
                        if (error := paths.id_error(value)) is not None), None)
        if problem is None:
            return None
        log.warning("Refusing %s of framework %r: %s",
                    ", ".join(f"task {t.task_id.value!r}" for t in tasks), info.id.value, problem)
        return [
            ForwardStatus(info.id.value, self._status(
                t.task_id.value, "TASK_ERROR", "REASON_TASK_INVALID", problem, now))
            for t in tasks
        ]

    def _run_task(self, event: RunTask, now: float) -> list[Effect]:
        task = event.task
        refusal = self._refusal(event.framework_info, [task], task.executor, now)
        if refusal is not None:
            return refusal
        framework = self._framework_for(event.framework_info)
        role = allocation_role(task.resources, framework.info)
        if task.executor is not None:
            info = task.executor
            command_executor = False
        else:
            info = command_executor_info(
                task, framework.info, role, self.config.command_executor_argv)
            command_executor = True
        log.info("Got assigned task '%s' of framework %s", task.task_id.value, framework.id)
        tasks = [Task(task, framework.id, info.executor_id.value)]
        return self._launch(framework, info, tasks, False, command_executor, role, now)

    def _run_task_group(self, event: RunTaskGroup, now: float) -> list[Effect]:
        refusal = self._refusal(event.framework_info, event.tasks, event.executor, now)
        if refusal is not None:
            return refusal
        framework = self._framework_for(event.framework_info)
        info = default_executor_info(event.executor, self.config.default_executor_argv)
        tasks = [Task(t, framework.id, info.executor_id.value) for t in event.tasks]
        role = allocation_role(
            [r for t in event.tasks for r in t.resources] + info.resources, framework.info
        )
        ids = ", ".join(t.id for t in tasks)
        log.info("Got assigned task group [%s] of framework %s", ids, framework.id)
        return self._launch(framework, info, tasks, True, False, role, now)

    def _launch(
        self,
        framework: Framework,
        info: v1.ExecutorInfo,
        tasks: list[Task],
        group: bool,
        command_executor: bool,
        role: str | None,
        now: float,
    ) -> list[Effect]:
        if info.framework_id is None:
            info = msgspec.structs.replace(info, framework_id=framework.info.id)
        if framework.state == "TERMINATING":
            return self._drop_tasks(framework, tasks, "Framework terminating", now)
        executor = framework.executors.get(info.executor_id.value)
        if executor is not None and executor.state in ("TERMINATING", "TERMINATED"):
            reason = f"Executor {executor.state.lower()}"
            return self._drop_tasks(framework, tasks, reason, now)
        effects: list[Effect] = []
        if executor is not None:
            self._resized[executor.container_id] = executor
        else:
            executor = self._new_executor(framework, info, command_executor, role)
            effects.append(
                LaunchExecutor(
                    framework.id, executor.id, executor.container_id, executor.directory,
                    executor.info, framework.info, role, command_executor,
                )
            )
        effects.append(CheckpointTasks(framework.id, executor.id, executor.container_id,
                                       tuple(t.info for t in tasks)))
        if executor.state == "RUNNING" and executor.connected:
            effects.append(self._send_launch(executor, QueuedLaunch(tasks, group)))
        else:
            executor.queued.append(QueuedLaunch(tasks, group))
            log.info("Queued %s for executor '%s' of framework %s",
                     ", ".join(f"task '{t.id}'" for t in tasks), executor.id, framework.id)
        return effects

    def _new_executor(
        self,
        framework: Framework,
        info: v1.ExecutorInfo,
        command_executor: bool,
        role: str | None,
    ) -> Executor:
        assert self.agent_id is not None, "launching before registration"
        container_id = self._new_container_id()
        directory = paths.sandbox_dir(
            self.config.work_dir, self.agent_id, framework.id, info.executor_id.value,
            container_id,
        )
        executor = Executor(info, framework.id, container_id, directory, command_executor, role)
        framework.executors[executor.id] = executor
        return executor

    def _drop_tasks(
        self, framework: Framework, tasks: list[Task], message: str, now: float
    ) -> list[Effect]:
        state = "TASK_DROPPED" if framework.partition_aware() else "TASK_LOST"
        log.warning("Dropping %s of framework %s: %s",
                    ", ".join(f"task '{t.id}'" for t in tasks), framework.id, message)
        return [
            ForwardStatus(framework.id, self._status(
                t.id, state, "REASON_EXECUTOR_TERMINATED", message, now, t.executor_id))
            for t in tasks
        ]

    def _send_launch(self, executor: Executor, launch: QueuedLaunch) -> SendToExecutor:
        for task in launch.tasks:
            executor.launched[task.id] = task
        if launch.group:
            group = v1.TaskGroupInfo(tasks=[t.info for t in launch.tasks])
            event = ev1.Event(type="LAUNCH_GROUP", launch_group=ev1.LaunchGroup(task_group=group))
        else:
            event = ev1.Event(type="LAUNCH", launch=ev1.Launch(task=launch.tasks[0].info))
        for task in launch.tasks:
            log.info("Launching task '%s' on executor '%s' of framework %s",
                     task.id, executor.id, executor.framework_id)
        return SendToExecutor(executor.framework_id, executor.id, event)

    def _kill_task(self, event: KillTask, now: float) -> list[Effect]:
        framework = self.frameworks.get(event.framework_id)
        if framework is None or framework.state == "TERMINATING":
            log.warning("Ignoring kill of task '%s': framework %s is not running here",
                        event.task_id, event.framework_id)
            return []
        executor = framework.executor_of_task(event.task_id)
        if executor is None:
            if any(t.id == event.task_id for ex in framework.completed_executors
                   for t in ex.completed):
                return []
            log.warning("Cannot kill task '%s' of framework %s: no executor runs it",
                        event.task_id, framework.id)
            state = "TASK_DROPPED" if framework.partition_aware() else "TASK_LOST"
            return [ForwardStatus(framework.id, self._status(
                event.task_id, state, "REASON_EXECUTOR_TERMINATED", "Cannot find executor", now))]
        if executor.state in ("TERMINATING", "TERMINATED"):
            log.warning("Ignoring kill of task '%s': executor '%s' is %s",
                        event.task_id, executor.id, executor.state.lower())
            return []
        launch = next((q for q in executor.queued if event.task_id in {t.id for t in q.tasks}),
                      None)
        if launch is not None:
            return self._kill_queued(framework, executor, launch, now)
        if event.task_id in executor.terminated:
            return []
        if not executor.connected:
            log.info("Killing task '%s' once executor '%s' of framework %s re-subscribes",
                     event.task_id, executor.id, framework.id)
            executor.pending_kills[event.task_id] = event.kill_policy
            return []
        log.info("Asking executor '%s' of framework %s to kill task '%s'",
                 executor.id, framework.id, event.task_id)
        kill = ev1.Kill(task_id=v1.TaskID(value=event.task_id), kill_policy=event.kill_policy)
        return [SendToExecutor(framework.id, executor.id, ev1.Event(type="KILL", kill=kill))]

    def _kill_queued(
        self, framework: Framework, executor: Executor, launch: QueuedLaunch, now: float
    ) -> list[Effect]:
        executor.queued.remove(launch)
        effects: list[Effect] = []
        for task in launch.tasks:
            log.info("Killing task '%s' of framework %s before it was launched",
                     task.id, framework.id)
            status = self._status(task.id, "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH",
                                  "Killed before delivery to the executor", now, executor.id)
            self._record(executor, task, status)
            executor.terminated[task.id] = task
            effects.append(ForwardStatus(framework.id, status))
        self._resized[executor.container_id] = executor
        if executor.state == "REGISTERING" and not executor.queued and not executor.launched:
            # Nothing left for this executor to run: do not leave it behind.
            effects.extend(self._begin_shutdown(framework, executor))
        return effects

    def _shutdown_executor(self, event: ShutdownExecutor, now: float) -> list[Effect]:
        framework = self.frameworks.get(event.framework_id)
        executor = self.executor(event.framework_id, event.executor_id)
        if framework is None or executor is None:
            log.warning("Ignoring shutdown of unknown executor '%s' of framework %s",
                        event.executor_id, event.framework_id)
            return []
        return self._begin_shutdown(framework, executor)

    def _begin_shutdown(self, framework: Framework, executor: Executor) -> list[Effect]:
        if executor.state in ("TERMINATING", "TERMINATED"):
            return []
        was = executor.state
        executor.state = "TERMINATING"
        log.info("Shutting down executor '%s' of framework %s", executor.id, framework.id)
        if was == "REGISTERING":
            return [DestroyContainer(framework.id, executor.id, executor.container_id)]
        grace = executor.grace_period(self.config.shutdown_grace_period)
        return [
            SendToExecutor(framework.id, executor.id, ev1.Event(type="SHUTDOWN")),
            ShutdownContainer(framework.id, executor.id, executor.container_id, grace),
        ]

    def _shutdown_framework(self, event: ShutdownFramework, now: float) -> list[Effect]:
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return []
        return self._terminate_framework(framework)

    def _terminate_framework(self, framework: Framework) -> list[Effect]:
        if framework.state == "TERMINATING":
            return []
        log.info("Shutting down framework %s", framework.id)
        framework.state = "TERMINATING"
        effects: list[Effect] = []
        for executor in list(framework.executors.values()):
            if executor.state == "TERMINATED":
                self._remove_executor(framework, executor)
            else:
                effects.extend(self._begin_shutdown(framework, executor))
        effects.extend(self._maybe_remove_framework(framework))
        return effects

    def _shutdown_all(self, event: ShutdownAll, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for framework in list(self.frameworks.values()):
            effects.extend(self._terminate_framework(framework))
        return effects

    def _update_framework(self, event: UpdateFramework, now: float) -> list[Effect]:
        info = event.framework_info
        framework = self.frameworks.get(info.id.value) if info.id is not None else None
        if framework is not None and framework.state == "RUNNING":
            framework.info = info
        return []

    def _framework_message(self, event: FrameworkMessage, now: float) -> list[Effect]:
        executor = self.executor(event.framework_id, event.executor_id)
        framework = self.frameworks.get(event.framework_id)
        if (framework is None or framework.state != "RUNNING" or executor is None
                or executor.state != "RUNNING"):
            log.warning("Dropping message for executor '%s' of framework %s: not running",
                        event.executor_id, event.framework_id)
            self.invalid_framework_messages += 1
            return []
        self.valid_framework_messages += 1
        message = ev1.Event(type="MESSAGE", message=ev1.Message(data=event.data))
        return [SendToExecutor(event.framework_id, event.executor_id, message)]

    # ------------------------------------------------------------------ executor events

    def _executor_subscribed(self, event: ExecutorSubscribed, now: float) -> list[Effect]:
        executor = self.executor(event.framework_id, event.executor_id)
        if executor is None:  # removed meanwhile: the service closes the stream
            return [CloseExecutorStream(event.framework_id, event.executor_id)]
        framework = self.frameworks[event.framework_id]
        if executor.state in ("TERMINATING", "TERMINATED"):
            log.info("Executor '%s' of framework %s subscribed while %s; shutting it down",
                     executor.id, framework.id, executor.state.lower())
            return [SendToExecutor(framework.id, executor.id, ev1.Event(type="SHUTDOWN")),
                    CloseExecutorStream(framework.id, executor.id)]
        log.info("Executor '%s' of framework %s %s", executor.id, framework.id,
                 "re-subscribed" if executor.state == "RUNNING" else "subscribed")
        executor.state = "RUNNING"
        executor.connected = True
        subscribed = ev1.Subscribed(
            executor_info=executor.info,
            framework_info=framework.info,
            agent_info=self.agent_info,
            container_id=v1.ContainerID(value=executor.container_id),
        )
        effects: list[Effect] = [
            SendToExecutor(framework.id, executor.id,
                           ev1.Event(type="SUBSCRIBED", subscribed=subscribed))
        ]
        # Slave::subscribe: the updates the executor could not get acknowledged first
        # (each is acknowledged once taken over), then the tasks it never heard of.
        for status in event.unacknowledged_updates:
            update = ExecutorUpdate(framework.id, executor.id, status)
            effects.extend(self._executor_update(update, now))
        known = {t.task_id.value for t in event.unacknowledged_tasks}
        # A recovered task still queued that the executor names did reach it (LAUNCH
        # went out just before the agent died): it is launched, not sent again.
        for launch in executor.queued:
            for task in [t for t in launch.tasks if t.id in known]:
                launch.tasks.remove(task)
                executor.launched[task.id] = task
        executor.queued = [q for q in executor.queued if q.tasks]
        effects.extend(self._drop_unknown_staging(framework, executor, known, now))
        queued, executor.queued = executor.queued, []
        effects.extend(self._send_launch(executor, launch) for launch in queued)
        kills, executor.pending_kills = executor.pending_kills, {}
        effects.extend(
            SendToExecutor(framework.id, executor.id, ev1.Event(
                type="KILL", kill=ev1.Kill(task_id=v1.TaskID(value=task_id), kill_policy=policy)))
            for task_id, policy in kills.items() if task_id in executor.launched)
        return effects

    def _drop_unknown_staging(
        self, framework: Framework, executor: Executor, known: set[str], now: float
    ) -> list[Effect]:
        """A launched task still STAGING that the executor does not name never reached it."""
        state = "TASK_DROPPED" if framework.partition_aware() else "TASK_LOST"
        effects: list[Effect] = []
        for task in list(executor.launched.values()):
            if task.state != "TASK_STAGING" or task.id in known:
                continue
            log.warning("Task '%s' of framework %s is %s: executor '%s' re-subscribed without "
                        "knowing it", task.id, framework.id, state, executor.id)
            # Mesos' reason (REASON_SLAVE_RESTARTED in v0) for the same case.
            status = self._status(task.id, state, "REASON_AGENT_RESTARTED",
                                  "Task unknown to the executor when it re-subscribed", now,
                                  executor.id)
            self._apply_status(executor, task, status)
            effects.append(ForwardStatus(framework.id, status))
        return effects

    def _executor_disconnected(self, event: ExecutorDisconnected, now: float) -> list[Effect]:
        executor = self.executor(event.framework_id, event.executor_id)
        if executor is not None:
            executor.connected = False
        return []

    def _executor_update(self, event: ExecutorUpdate, now: float) -> list[Effect]:
        executor = self.executor(event.framework_id, event.executor_id)
        if executor is None or executor.state == "TERMINATED":
            log.warning("Ignoring status update %s for task '%s': executor '%s' of framework "
                        "%s has terminated", event.status.state, event.status.task_id.value,
                        event.executor_id, event.framework_id)
            self.invalid_status_updates += 1
            return []
        status = self._stamped(executor, event.status, now)
        if event.limitation is not None and status.state == "TASK_FAILED":
            reason, message = event.limitation
            status = msgspec.structs.replace(
                status, reason=reason, message=message, source="SOURCE_AGENT")
        # The agent's own reports (tasks the executor never heard of) are not the
        # executor's to be acknowledged.
        by_executor = event.status.source != "SOURCE_AGENT"
        forward = ForwardStatus(event.framework_id, status,
                                ack_executor=executor.id if by_executor else None)
        task = executor.find_task(status.task_id.value)
        if task is not None and (task.state in TERMINAL_STATES
                                 or any(s.uuid == status.uuid for s in task.statuses)):
            # A duplicate, or an update after the terminal one: the task keeps its record;
            # the status-update manager acknowledges the former and refuses the latter.
            return [forward]
        self.valid_status_updates += 1
        if task is not None:
            self._apply_status(executor, task, status)
        else:
            log.warning("Status update %s for unknown task '%s' of executor '%s'",
                        status.state, status.task_id.value, executor.id)
        return [forward]

    def _stamped(self, executor: Executor, status: v1.TaskStatus, now: float) -> v1.TaskStatus:
        """The executor's update as the agent passes it on (agent, executor, container)."""
        container_status = status.container_status or v1.ContainerStatus()
        if container_status.container_id is None:
            container_status = msgspec.structs.replace(
                container_status, container_id=v1.ContainerID(value=executor.container_id),
                executor_pid=container_status.executor_pid or executor.pid)
        return msgspec.structs.replace(
            status,
            agent_id=self.agent_info.id,
            executor_id=v1.ExecutorID(value=executor.id),
            timestamp=status.timestamp if status.timestamp is not None else now,
            container_status=container_status,
        )

    def _executor_message(self, event: ExecutorMessage, now: float) -> list[Effect]:
        executor = self.executor(event.framework_id, event.executor_id)
        if executor is None or executor.state == "TERMINATED":
            log.warning("Dropping message of executor '%s' of framework %s: it has terminated",
                        event.executor_id, event.framework_id)
            return []
        return [ExecutorMessageToMaster(event.framework_id, event.executor_id, event.data)]

    def _current(self, framework_id: str, executor_id: str, container_id: str) -> Executor | None:
        executor = self.executor(framework_id, executor_id)
        if executor is None or executor.container_id != container_id:
            return None
        return executor

    def _executor_started(self, event: ExecutorStarted, now: float) -> list[Effect]:
        executor = self._current(event.framework_id, event.executor_id, event.container_id)
        if executor is not None:
            executor.pid = event.pid
        return []

    def _executor_launch_failed(self, event: ExecutorLaunchFailed, now: float) -> list[Effect]:
        executor = self._current(event.framework_id, event.executor_id, event.container_id)
        if executor is None:
            return []
        executor.termination = Termination(
            "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED",
            f"Failed to launch container: {event.message}")
        exited = ExecutorExited(event.framework_id, event.executor_id, event.container_id, None)
        return self._executor_exited(exited, now)

    def _registration_timeout(self, event: RegistrationTimeout, now: float) -> list[Effect]:
        executor = self._current(event.framework_id, event.executor_id, event.container_id)
        if executor is None or executor.state != "REGISTERING":
            return []
        log.warning("Terminating executor '%s' of framework %s: it did not subscribe within "
                    "%gs", executor.id, executor.framework_id, self.config.registration_timeout)
        executor.state = "TERMINATING"
        executor.termination = Termination(
            "TASK_FAILED", "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
            f"Executor did not register within {self.config.registration_timeout:g}secs")
        return [DestroyContainer(executor.framework_id, executor.id, executor.container_id)]

    def _reregistration_timeout(self, event: ReregistrationTimeout, now: float) -> list[Effect]:
        executor = self._current(event.framework_id, event.executor_id, event.container_id)
        if executor is None or executor.state != "RUNNING" or executor.connected:
            return []
        log.warning("Terminating recovered executor '%s' of framework %s: it did not "
                    "re-subscribe", executor.id, executor.framework_id)
        executor.state = "TERMINATING"
        executor.termination = Termination(
            "TASK_FAILED", "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
            "Executor did not re-register after the agent restarted")
        return [DestroyContainer(executor.framework_id, executor.id, executor.container_id)]

    def _executor_exited(self, event: ExecutorExited, now: float) -> list[Effect]:
        executor = self._current(event.framework_id, event.executor_id, event.container_id)
        if executor is None or executor.state == "TERMINATED":
            return []
        framework = self.frameworks[event.framework_id]
        log.info("Executor '%s' of framework %s exited with status %s%s",
                 executor.id, framework.id, event.status,
                 f" ({event.reason}: {event.message})" if event.reason else "")
        if event.reason is not None and executor.termination is None:
            # A limit ended the container (Mesos: the termination's limitation).
            executor.termination = Termination(
                "TASK_FAILED", event.reason, event.message or "Container limitation reached")
        executor.state = "TERMINATED"
        executor.exit_status = event.status
        self.executors_terminated += 1
        effects: list[Effect] = [
            DestroyContainer(framework.id, executor.id, executor.container_id),
            CloseExecutorStream(framework.id, executor.id),
        ]
        if framework.state == "RUNNING":
            effects.extend(self._fail_live_tasks(framework, executor, now))
        if not executor.command_executor:
            # As Mesos: the master never heard of a command task's executor.
            effects.append(ExitedExecutor(framework.id, executor.id, event.status))
        if framework.state == "TERMINATING" or not executor.incomplete():
            self._remove_executor(framework, executor)
            effects.extend(self._maybe_remove_framework(framework))
        return effects

    def _fail_live_tasks(
        self, framework: Framework, executor: Executor, now: float
    ) -> list[Effect]:
        term = executor.termination or Termination(
            "TASK_FAILED", "REASON_EXECUTOR_TERMINATED", "Executor terminated")
        effects: list[Effect] = []
        live = executor.queued_tasks() + [
            t for t in executor.launched.values() if t.state not in TERMINAL_STATES
        ]
        for task in live:
            status = self._status(task.id, term.state, term.reason, term.message, now,
                                  executor.id)
            self._apply_status(executor, task, status)
            effects.append(ForwardStatus(framework.id, status))
        executor.queued = []
        return effects

    def _update_acknowledged(self, event: UpdateAcknowledged, now: float) -> list[Effect]:
        if event.state not in TERMINAL_STATES:
            return []
        framework = self.frameworks.get(event.framework_id)
        if framework is None:
            return []
        for executor in list(framework.executors.values()):
            task = executor.terminated.pop(event.task_id, None)
            if task is None:
                continue
            executor.completed.append(task)
            if executor.state == "TERMINATED" and not executor.incomplete():
                self._remove_executor(framework, executor)
                return self._maybe_remove_framework(framework)
            return []
        return []

    # ------------------------------------------------------------------ helpers

    def _status(
        self,
        task_id: str,
        state: str,
        reason: str | None,
        message: str,
        now: float,
        executor_id: str | None = None,
    ) -> v1.TaskStatus:
        """A status update generated by the agent itself (SOURCE_AGENT, fresh uuid)."""
        return v1.TaskStatus(
            task_id=v1.TaskID(value=task_id),
            state=state,  # type: ignore[arg-type]
            message=message,
            source="SOURCE_AGENT",
            reason=reason,  # type: ignore[arg-type]
            agent_id=self.agent_info.id,
            executor_id=v1.ExecutorID(value=executor_id) if executor_id else None,
            timestamp=now,
            uuid=self._new_uuid(),
        )

    def _record(self, executor: Executor, task: Task, status: v1.TaskStatus) -> None:
        if task.state != status.state:
            log.info("Task '%s' of framework %s is now %s%s", task.id, task.framework_id,
                     status.state, f" ({status.reason})" if status.reason else "")
        if status.state in TERMINAL_STATES and task.state not in TERMINAL_STATES:
            self.terminal_counts[status.state] += 1
        task.state = status.state
        task.statuses.append(msgspec.structs.replace(status, data=None))

    def _apply_status(self, executor: Executor, task: Task, status: v1.TaskStatus) -> None:
        """Executor::updateTaskState: the latest state, and the move to ``terminated``."""
        self._record(executor, task, status)
        if status.state not in TERMINAL_STATES:
            return
        self._resized[executor.container_id] = executor
        if task.id in executor.launched:
            executor.terminated[task.id] = executor.launched.pop(task.id)
        else:
            for launch in executor.queued:
                if task in launch.tasks:
                    launch.tasks.remove(task)
                    executor.terminated[task.id] = task
            executor.queued = [q for q in executor.queued if q.tasks]

    def _remove_executor(self, framework: Framework, executor: Executor) -> None:
        framework.executors.pop(executor.id, None)
        framework.completed_executors.append(executor)

    def _maybe_remove_framework(self, framework: Framework) -> list[Effect]:
        if framework.executors:
            return []
        log.info("Removing framework %s", framework.id)
        self.frameworks.pop(framework.id, None)
        self.completed_frameworks.append(framework)
        return [FrameworksRemoved((framework.id,))]

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Assert the invariants (for tests)."""
        for fw_id, framework in self.frameworks.items():
            assert framework.id == fw_id
            for ex_id, executor in framework.executors.items():
                assert executor.id == ex_id and executor.framework_id == fw_id
                ids = [t.id for t in executor.queued_tasks()] + list(executor.launched) + list(
                    executor.terminated)
                assert len(ids) == len(set(ids)), f"task in two places: {ids}"
                assert all(t.state not in TERMINAL_STATES for t in executor.queued_tasks())
                assert all(t.state not in TERMINAL_STATES for t in executor.launched.values())
                assert all(t.state in TERMINAL_STATES for t in executor.terminated.values())
                if executor.state == "TERMINATED" or (
                        executor.state == "RUNNING" and executor.connected):
                    assert not executor.queued
