"""The agent service: wires the pure core to processes, streams, timers and the master.

:class:`Agent` owns everything on the event loop. Inputs (master events, executor
calls, process exits, timers) become core events through :meth:`Agent.dispatch`;
the effects the core returns are carried out by :meth:`Agent._execute`. Status
updates go through the :class:`StatusUpdateManager`, whose resend timer is kept
here (loop time, monotonic).

Checkpoint writes go to a :class:`~mesos.agent.checkpoint.WriteQueue` (one worker
thread, in order) and every effect is carried out through it, so effects keep the
core's order and none overtakes a checkpoint written before it: an update is on
disk before the executor gets its ACKNOWLEDGED and before the master gets it.

Executors run in containers of the Mesos containerizer (``--launcher``,
``--isolation``): launched with their resources plus their tasks', resized when
tasks come and go, destroyed (every process, escapees included with the linux
launcher) when they end or are killed. A container ended by a limit (an OOM kill,
say) fails its live tasks with that limitation's reason. On recovery the
checkpointed containers are handed back to the containerizer, which destroys the
orphans (cgroups under ``--cgroups_root`` no checkpoint names).

Stopping comes in two kinds, as in Mesos: SIGTERM/SIGINT stop the agent and leave
the executors of checkpointing frameworks running for the next agent to recover
(those of the others are shut down); SIGUSR1 or the master's SHUTDOWN shut every
executor down and forget the agent's checkpointed id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from mesos import __version__
from mesos.agent import checkpoint, launcher, paths, recovery, volumes
from mesos.agent.api_operator import container_resources
from mesos.agent.containerizer import (
    CgroupsError,
    ContainerizerError,
    LaunchError,
    MesosContainerizer,
)
from mesos.agent.containerizer.isolator import BindMount
from mesos.agent.core import AgentCore, CoreConfig
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
from mesos.agent.fetcher import Fetcher, FetchError
from mesos.agent.gc import GarbageCollector
from mesos.agent.group_fetch import (
    GroupFetchSender,
    Target,
    executor_target,
    file_owner,
    open_task_sandbox,
    task_sandbox,
)
from mesos.agent.master_link import MasterEvent, MasterLink, call
from mesos.agent.state import Executor, v1_task
from mesos.agent.status_updates import AckOutcome, Forward, Received, StatusUpdateManager
from mesos.executor.command import executor_argv
from mesos.flags import Flags, redact_credentials
from mesos.http.streaming import EventStream
from mesos.resources import Resources, ResourcesError
from mesos.v1 import codec
from mesos.v1 import executor as ev1
from mesos.v1 import mesos as v1
from mesos.v1.internal import (
    AgentCall,
    AgentSubscribe,
    StatusUpdate,
)
from mesos.v1.internal import ExecutorMessage as ExecutorMessageCall
from mesos.v1.internal import ExitedExecutor as ExitedExecutorCall

log = logging.getLogger("mesos.agent")

_EXECUTOR_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "executor")
COMMAND_EXECUTOR = os.path.join(_EXECUTOR_DIR, "command.py")
DEFAULT_EXECUTOR = os.path.join(_EXECUTOR_DIR, "default.py")
# Mesos sends HEARTBEAT events to HTTP executors every 30 minutes.
EXECUTOR_HEARTBEAT_INTERVAL = 30 * 60.0


class Agent:
    """One agent: its core, status updates, executor processes and master link."""

    def __init__(
        self,
        flags: Flags,
        *,
        resources: Resources,
        attributes: list[dict[str, Any]],
        hostname: str,
        python: str,
        containerizer: MesosContainerizer | None = None,
    ) -> None:
        self.flags = flags
        self.ip = flags.advertise_ip or flags.ip
        self.port = flags.advertise_port or flags.port
        self.pid = f"slave(1)@{self.ip}:{self.port}"
        self.hostname = hostname
        self.resources = resources
        self.attributes = attributes
        self.start_time = time.time()
        self.master_hostname: str | None = None
        self.core = _make_core(flags, resources, attributes, hostname, self.port, python)
        self.updates = StatusUpdateManager(initial_interval=flags.status_update_retry_interval)
        self.link = MasterLink(
            flags.master,
            subscribe_call=self._subscribe_call,
            on_event=self._on_master_event,
            on_disconnected=self._on_master_lost,
            backoff_factor=flags.registration_backoff_factor,
        )
        self.streams: dict[tuple[str, str], EventStream] = {}
        self.launcher = flags.launcher or launcher.default_launcher(
            flags.cgroups_root, flags.cgroups_hierarchy)
        flags.launcher = self.launcher  # /flags shows the launcher in use, as Mesos'
        self.containerizer = containerizer or launcher.make_containerizer(
            flags, resources, self.launcher)
        log.info("Mesos containerizer: --launcher=%s --isolation=%s%s", self.launcher,
                 self.containerizer.flags.isolation,
                 f" --cgroups_root={self.containerizer.flags.cgroups_root}"
                 if self.containerizer.cgroups is not None else "")
        # Containers launched by this agent whose executor runs: container id -> pid.
        self.processes: dict[str, launcher.ContainerProcess] = {}
        # Executors found alive on recovery (not our children): container id -> pid.
        self.recovered_pids: dict[str, int] = {}
        # Containers whose launch is under way (destroyed, if need be, once started).
        self._launching: set[str] = set()
        self._fetcher: Fetcher | None = None  # made once the agent has its id
        self._fetcher_ready: asyncio.Future[None] | None = None
        # Read-only volumes each container was started with (mounted in its mount
        # namespace then; none can be added later): container id -> (sandbox the
        # volume was mounted in, persistence id).
        self._ro_mounts: dict[str, set[tuple[str, str]]] = {}
        # Events to executors; a LAUNCH_GROUP waits for its tasks' URIs to be fetched
        # (into a staging directory under the work directory, then moved in).
        self._to_executor = GroupFetchSender(
            send=self._send_to_stream, fetcher=self._get_fetcher,
            target=self._executor_target,
            fail=lambda f, e, c, m: self.dispatch(ExecutorLaunchFailed(f, e, c, m)),
            spawn=self._spawn, report=self._report_undelivered,
            staging=os.path.join(os.path.abspath(flags.work_dir), "fetch-staging"),
            timeout=flags.executor_registration_timeout,
            check=self._check_launch)
        # Sandboxes of finished executors and removed frameworks go after --gc_delay.
        self.gc = GarbageCollector(
            os.path.abspath(flags.work_dir), gc_delay=flags.gc_delay,
            disk_watch_interval=flags.disk_watch_interval,
            gc_disk_headroom=flags.gc_disk_headroom)
        # Containers being resized, and those to resize again once that is done.
        self._resizing: set[str] = set()
        self._resize_again: set[str] = set()
        self.checkpointer = checkpoint.Checkpointer(os.path.abspath(flags.work_dir))
        # Flag resources with the checkpointed reservations and volumes laid over them
        # (read back in recover()); the master sends changes as CHECKPOINT_RESOURCES.
        self.volume_state = volumes.CheckpointedResources(resources, Resources.empty(),
                                                          resources)
        self.checkpoints = checkpoint.WriteQueue()
        # SIGUSR1 or the master's SHUTDOWN: every executor goes, checkpointed or not.
        self.full_shutdown = False
        # Executor processes left running on stopping (for the next agent to recover).
        self.left_running: list[int] = []
        # While the checkpoints are read back, executor calls are answered 503.
        self.recovering = False
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._watchers: set[asyncio.Task[Any]] = set()
        self._watcher_of: dict[str, asyncio.Task[Any]] = {}
        self.stopping = asyncio.Event()
        self.executor_heartbeat_interval = EXECUTOR_HEARTBEAT_INTERVAL
        self.executor_env = launcher.ExecutorEnv(
            agent_id="",
            endpoint=f"{self.ip}:{self.port}",
            pid=self.pid,
            http_command_executor=flags.http_command_executor,
            shutdown_grace_period=flags.executor_shutdown_grace_period,
            recovery_timeout=flags.recovery_timeout,
            subscription_backoff_max=flags.executor_reregistration_timeout,
            base=flags.executor_environment_variables,
        )

    # ------------------------------------------------------------------ plumbing

    @property
    def registered(self) -> bool:
        return self.link.connected and self.core.agent_id is not None

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, watcher: bool = False,
               container_id: str | None = None) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        group = self._watchers if watcher else self._background
        group.add(task)
        task.add_done_callback(group.discard)
        if container_id is not None:  # the watcher of one container's process
            self._watcher_of[container_id] = task
            task.add_done_callback(lambda _: self._watcher_of.pop(container_id, None))
        return task

    def request_shutdown(self, why: str) -> None:
        """Shut every executor down and stop (SIGUSR1, or the master's SHUTDOWN)."""
        log.warning("Shutting down the agent and all its executors: %s", why)
        self.full_shutdown = True
        self.stopping.set()

    def dispatch(self, event: Event) -> None:
        """Feed one event to the core and carry out what it asks for."""
        self._execute(self.core.handle(event, time.time()))

    def _execute(self, effects: list[Effect]) -> None:
        """Carry the effects out in order, each after the checkpoints queued before it."""
        for effect in effects:
            self.checkpoints.then(functools.partial(self._carry_out, effect))

    def _carry_out(self, effect: Effect) -> None:
        if isinstance(effect, SendToExecutor):
            self._to_executor(effect)
        elif isinstance(effect, ForwardStatus):
            self._take_status(effect)
        elif isinstance(effect, CheckpointTasks):
            self._checkpoint_tasks(effect)
        elif isinstance(effect, LaunchExecutor):
            self._checkpoint_executor(effect)
            # Started once its executor.info is on disk, so a recovered agent knows it.
            self.checkpoints.then(lambda: _discard(self._spawn(self._launch_executor(effect))))
        elif isinstance(effect, CloseExecutorStream):
            key = (effect.framework_id, effect.executor_id)
            self._to_executor.forget(key, "the executor ended")
            stream = self.streams.pop(key, None)
            if stream is not None:
                stream.close()
        elif isinstance(effect, ShutdownContainer):
            handle = asyncio.get_running_loop().call_later(
                effect.grace, self._destroy, effect.container_id)
            self._timers.setdefault(effect.container_id, []).append(handle)
        elif isinstance(effect, DestroyContainer):
            self._destroy(effect.container_id)
        elif isinstance(effect, UpdateContainer):
            self._resize(effect.container_id)
        else:
            self._tell_master(effect)

    def _tell_master(self, effect: Effect) -> None:
        if isinstance(effect, ExitedExecutor):
            exited = ExitedExecutorCall(
                framework_id=v1.FrameworkID(value=effect.framework_id),
                executor_id=v1.ExecutorID(value=effect.executor_id), status=effect.status)
            self._send("EXITED_EXECUTOR", exited_executor=exited)
        elif isinstance(effect, ExecutorMessageToMaster):
            message = ExecutorMessageCall(
                framework_id=v1.FrameworkID(value=effect.framework_id),
                executor_id=v1.ExecutorID(value=effect.executor_id), data=effect.data)
            self._send("EXECUTOR_MESSAGE", executor_message=message)
        elif isinstance(effect, FrameworksRemoved):
            agent_id = self.core.agent_id
            for framework_id in effect.framework_ids:
                self.updates.remove_framework(framework_id)
                if agent_id is not None and not self.stopping.is_set():
                    self.gc.schedule(self.flags.gc_delay, paths.framework_dir(
                        self.checkpointer.work_dir, agent_id, framework_id))
                if agent_id is not None:
                    self.checkpoints.write(
                        functools.partial(self.checkpointer.remove_framework, agent_id,
                                          framework_id),
                        f"the removal of framework {framework_id}")
        else:  # pragma: no cover - every effect is handled above
            raise AssertionError(f"unhandled effect {effect!r}")

    def _send(self, type_: str, **fields: Any) -> None:
        self.link.post(call(type_, self.core.agent_id, **fields))

    # ------------------------------------------------------------------ status updates

    def _take_status(self, effect: ForwardStatus) -> None:
        now = asyncio.get_running_loop().time()
        received, forwards = self.updates.update(effect.framework_id, effect.status, now)
        status = effect.status
        if received is Received.NEW:
            # Checkpointed before it is acknowledged to the executor or forwarded: both
            # wait (in the write queue) until the write is done.
            self._checkpoint(effect.framework_id, status.task_id.value,
                             lambda a, f, e, c: self.checkpointer.update(a, f, e, c, status))
        if received is Received.AFTER_TERMINAL:
            self.core.invalid_status_updates += 1
            log.warning("Ignoring %s for task '%s' of framework %s: it already has a terminal "
                        "update", status.state, status.task_id.value, effect.framework_id)
        elif effect.ack_executor is not None:
            assert status.uuid is not None
            ack = ev1.Acknowledged(task_id=status.task_id, uuid=status.uuid)
            key = (effect.framework_id, effect.ack_executor)
            event = codec.encode(ev1.Event(type="ACKNOWLEDGED", acknowledged=ack))
            self.checkpoints.then(lambda: self._send_to_stream(key, event))
        self._forward(forwards)

    def _runs_as_user(self) -> bool:
        """Whether containers run as their task's user (so it is given their files)."""
        return self.containerizer.flags.switch_user and any(
            i.name == "filesystem/posix" for i in self.containerizer.isolators)

    def _executor_target(self, framework_id: str, executor_id: str) -> Target | None:
        return executor_target(self.core, framework_id, executor_id, self._runs_as_user())

    def _report_undelivered(self, framework_id: str, executor_id: str, task_ids: list[str],
                            state: str, reason: str, message: str) -> None:
        """Terminal updates, by the agent, for tasks it never handed to the executor
        (killed while their URIs were fetched, or refused by the container)."""
        for task_id in task_ids:
            status = v1.TaskStatus(
                task_id=v1.TaskID(value=task_id), state=state,  # type: ignore[arg-type]
                source="SOURCE_AGENT", reason=reason,  # type: ignore[arg-type]
                message=message, uuid=uuid.uuid4().bytes, timestamp=time.time())
            self.dispatch(ExecutorUpdate(framework_id, executor_id, status))

    def _check_launch(self, framework_id: str, executor_id: str,
                      tasks: Sequence[v1.TaskInfo]) -> str | None:
        """Ready the executor's container for ``tasks`` just before they are sent: link
        their read-write volumes (new ones given to the task's user, as at launch;
        a group's task gets them in its own sandbox), so a task never starts before
        its volume is there. Returns why they cannot go instead: a read-only volume
        the container was not started with at that sandbox (only a starting
        container's mount namespace gets one), or a volume that cannot be linked."""
        executor = self.core.executor(framework_id, executor_id)
        if executor is None:
            return None
        other_user = self._other_task_user(executor, tasks)
        if other_user is not None:
            return other_user
        mounted = self._ro_mounts.get(executor.container_id)
        try:
            places = self._volume_sandboxes(executor, tasks)
        except volumes.VolumeError as exc:
            return str(exc)
        for sandbox, held, _ in places:
            for volume in held.volumes():
                if volume.mode != "RO":
                    continue
                if mounted is not None:
                    ok = (sandbox, volume.persistence_id) in mounted
                else:  # recovered by this agent: the container's mounts say
                    pid = self._live_pid(executor.container_id)
                    # Only the executor's directory is resolved (its parents are
                    # ours); nothing the user could have made a link below it.
                    below = os.path.relpath(sandbox, executor.directory)
                    path = os.path.normpath(os.path.join(
                        os.path.realpath(executor.directory), below,
                        volume.container_path))
                    ok = pid is not None and volumes.mounted_read_only(pid, path)
                if not ok:
                    return (f"read-only persistent volume '{volume.persistence_id}' can "
                            "only be mounted when its container starts, not added to the "
                            f"running container {executor.container_id}")
        try:
            self._place_volumes(executor, self._executor_user(executor), tasks)
        except (volumes.VolumeError, OSError) as exc:
            return str(exc)
        return None

    def _other_task_user(self, executor: Executor,
                         tasks: Sequence[v1.TaskInfo]) -> str | None:
        """Why ``tasks`` cannot run under the default executor as the user they ask
        for, or None. Mesos runs each task of a group as a nested container of the
        task's own user; our default executor runs every task as a local process of
        its own user and never switches, so a task naming another user would run as
        the wrong one (and the files the agent gives it would be out of its reach):
        such a group is failed, not run."""
        if executor.info.type != "DEFAULT" or not self._runs_as_user():
            return None
        user = self._executor_user(executor)
        for task in tasks:
            asked = task.command.user if task.command is not None else None
            if asked and asked != user:
                return (f"task '{task.task_id.value}' asks to run as user '{asked}', but "
                        f"the default executor runs every task of its container as its "
                        f"own user '{user}' and cannot switch users")
        return None

    def _send_to_stream(self, key: tuple[str, str], data: bytes) -> None:
        stream = self.streams.get(key)
        if stream is not None:
            stream.send(data)

    def _forward(self, forwards: list[Forward]) -> None:
        """Send the updates to the master once every checkpoint queued so far is written."""
        if forwards:
            self.checkpoints.then(lambda: self._post_forwards(forwards))
        else:
            self._arm_retry()

    def _post_forwards(self, forwards: list[Forward]) -> None:
        for forward in forwards:
            status = forward.status
            log.info("%s status update %s (%s) for task '%s' of framework %s",
                     "Resending" if forward.retry else "Forwarding", status.state,
                     uuid.UUID(bytes=status.uuid or bytes(16)), status.task_id.value,
                     forward.framework_id)
            update = StatusUpdate(framework_id=v1.FrameworkID(value=forward.framework_id),
                                  status=status)
            self._send("STATUS_UPDATE", status_update=update)
        self._arm_retry()

    def _arm_retry(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        deadline = self.updates.next_timeout()
        if deadline is not None:
            self._retry = asyncio.get_running_loop().call_at(deadline, self._on_retry)

    def _on_retry(self) -> None:
        self._retry = None
        self._forward(self.updates.timeouts(asyncio.get_running_loop().time()))

    # ------------------------------------------------------------------ the master

    def _subscribe_call(self) -> AgentCall:
        core = self.core
        tasks = []
        for task in core.tasks():
            executor = core.executor(task.framework_id, task.executor_id)
            head = self.updates.head(task.framework_id, task.id)
            tasks.append(v1_task(task, executor is not None and executor.command_executor,
                                 core.agent_info.id, head))
        subscribe = AgentSubscribe(
            agent_info=core.agent_info,
            resources=codec.decode_obj(self.volume_state.total.to_json(), list[v1.Resource]),
            checkpointed_resources=codec.decode_obj(
                self.volume_state.checkpointed.to_json(), list[v1.Resource]),
            frameworks=[f.info for f in core.frameworks.values()],
            executors=[e.info for e in core.executors() if not e.command_executor],
            tasks=tasks,
            version=__version__,
            address_ip=self.ip,
        )
        return call("SUBSCRIBE", core.agent_id, subscribe=subscribe)

    def _on_master_event(self, event: MasterEvent) -> None:
        p = event.payload
        kind = event.type
        if self.stopping.is_set() and kind in ("RUN_TASK", "RUN_TASK_GROUP"):
            log.warning("Ignoring %s: the agent is shutting down", kind)
            return
        if kind == "SUBSCRIBED":
            self._on_subscribed(p["agent_id"].value)
        elif kind == "RUN_TASK":
            self.dispatch(RunTask(p["framework_info"], p["task"]))
        elif kind == "RUN_TASK_GROUP":
            self.dispatch(RunTaskGroup(p["framework_info"], p["executor"], p["task_group"].tasks))
        elif kind == "KILL_TASK":
            self.dispatch(KillTask(p["framework_id"].value, p["task_id"].value, p["kill_policy"]))
        elif kind == "SHUTDOWN_FRAMEWORK":
            self.dispatch(ShutdownFramework(p["framework_id"].value))
        elif kind == "SHUTDOWN_EXECUTOR":
            self.dispatch(ShutdownExecutor(p["framework_id"].value, p["executor_id"].value))
        elif kind == "ACKNOWLEDGE":
            self._on_acknowledge(p["framework_id"].value, p["task_id"].value, p["uuid"])
        elif kind == "FRAMEWORK_MESSAGE":
            self.dispatch(FrameworkMessage(p["framework_id"].value, p["executor_id"].value,
                                           p["data"]))
        elif kind == "UPDATE_FRAMEWORK":
            self.dispatch(UpdateFramework(p["framework_info"]))
        elif kind == "CHECKPOINT_RESOURCES":
            self._checkpoint_resources(p["resources"] or [])
        elif kind == "PING":
            self._send("PONG")
        elif kind == "SHUTDOWN":
            self.request_shutdown(f"asked by the master ({p.get('message') or ''})")
        elif kind == "ERROR":
            log.error("The master reported an error: %s", p.get("message"))
        elif kind != "HEARTBEAT":
            log.warning("Ignoring unknown event '%s' from the master", kind)

    def _checkpoint_resources(self, items: list[v1.Resource]) -> None:
        """The master's new checkpointed resources: written, and volume directories
        made or deleted, on the checkpoint writer thread (in order with other writes;
        deleting a destroyed volume's data can take a while)."""
        try:
            resources = Resources.from_json(codec.to_builtins(items))
        except ResourcesError as exc:
            log.error("Ignoring checkpointed resources from the master: %s", exc)
            return
        work_dir = self.checkpointer.work_dir

        def write() -> None:
            try:
                self.volume_state = volumes.apply(work_dir, self.volume_state, resources)
            except (volumes.VolumeError, OSError) as exc:
                log.error("Cannot apply checkpointed resources %s: %s", resources, exc)

        self.checkpoints.write(write, "the checkpointed resources")

    def _volume_sandboxes(self, executor: Executor,
                          tasks: Sequence[v1.TaskInfo] | None = None,
                          ) -> list[tuple[str, Resources, v1.TaskInfo | None]]:
        """Where the persistent volumes of the executor's container appear: (sandbox,
        resources, the task whose sandbox it is, or None for the executor's).

        ``tasks`` are tasks about to be sent (None: the whole container, its own
        resources and those of its queued and live tasks). The default executor (the
        only one task groups run under) runs each task in its own sandbox,
        ``tasks/<id>``, which is its MESOS_SANDBOX: a task's volumes go there, as to a
        nested container in Mesos, and only the ExecutorInfo's own volumes to the
        executor's sandbox. Other executors' tasks share the executor's sandbox.
        """
        def held(items: list[v1.Resource]) -> Resources:
            try:
                return Resources.from_json(codec.to_builtins(items)).unallocated()
            except ResourcesError:
                return Resources.empty()

        whole = tasks is None
        infos = ([t.info for t in (*executor.queued_tasks(), *executor.launched.values())]
                 if tasks is None else list(tasks))
        own = held(executor.info.resources) if whole else Resources.empty()
        if executor.info.type != "DEFAULT":
            for info in infos:
                own = own + held(info.resources)
            return [(executor.directory, own, None)]
        places: list[tuple[str, Resources, v1.TaskInfo | None]] = [
            (executor.directory, own, None)]
        for info in infos:
            try:
                sandbox = task_sandbox(executor.directory, info.task_id.value)
            except ValueError as exc:
                raise volumes.VolumeError(str(exc)) from None
            places.append((sandbox, held(info.resources), info))
        return places

    def _place_volumes(self, executor: Executor, user: str | None,
                       tasks: Sequence[v1.TaskInfo] | None = None, *,
                       starting: bool = False) -> list[BindMount]:
        """Make the volumes of ``tasks`` (None: of the whole container) appear in
        their sandboxes (see :meth:`_volume_sandboxes`); ``user`` is the container's.
        A starting container gets mount points, and the mounts to make, for its
        read-only ones. Every sandbox is tried; the first failure is raised after."""
        mounts: list[BindMount] = []
        failure: volumes.VolumeError | None = None
        for sandbox, held, task in self._volume_sandboxes(executor, tasks):
            if not held.persistent_volumes():
                continue
            try:
                if task is None:
                    mounts += self._link_volumes(sandbox, held, user, starting=starting)
                else:
                    mounts += self._link_task_volumes(executor.directory, task, held, user,
                                                      starting=starting)
            except volumes.VolumeError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return mounts

    def _link_task_volumes(self, directory: str, task: v1.TaskInfo, resources: Resources,
                           user: str | None, *, starting: bool) -> list[BindMount]:
        """The volumes of a task group's task in its own sandbox, ``tasks/<id>`` under
        the executor's ``directory``, reached by descriptor only (the task's user may
        have planted links there). The directories made and new volumes go to the
        container's user, which every task of the default executor runs as."""
        task_id = task.task_id.value
        as_user = self._runs_as_user() and bool(user)
        # The default executor runs every task as its own (the container's) user; a
        # task asking for another is refused (_other_task_user).
        task_user = user if as_user else None
        try:
            owners = (file_owner(user if as_user else None), file_owner(task_user))
            fd = open_task_sandbox(directory, task_id, owners)
        except (OSError, ValueError) as exc:
            raise volumes.VolumeError(f"Cannot open the sandbox of task '{task_id}' for its "
                                      f"volumes: {exc}") from None
        # Its real path: the mount helper refuses any link on the way to a mount point.
        shown = task_sandbox(os.path.realpath(directory), task_id)
        work_dir = self.checkpointer.work_dir
        try:
            mounts = (volumes.task_mount_points(work_dir, fd, shown, resources, owners[1])
                      if starting else [])
            volumes.link_task_volumes(work_dir, fd, shown, resources, owner=owners[1],
                                      user=task_user)
        finally:
            os.close(fd)
        return mounts

    def _link_volumes(self, sandbox: str, resources: Resources, user: str | None = None,
                      *, starting: bool = False) -> list[BindMount]:
        """Persistent volumes of a container's tasks appear in its sandbox; a starting
        container gets mount points, and the mounts to make, for its read-only ones.
        New volumes go to ``user`` when the container will run as that user."""
        if not resources.persistent_volumes():
            return []
        work_dir = self.checkpointer.work_dir
        mounts = volumes.mount_points(work_dir, sandbox, resources) if starting else []
        volumes.link_volumes(work_dir, sandbox, resources,
                             user=user if self._runs_as_user() else None)
        return mounts

    def _on_subscribed(self, agent_id: str) -> None:
        current = self.core.agent_id
        if current is None:
            log.info("Registered with master %s; given agent ID %s",
                     redact_credentials(self.flags.master), agent_id)
        elif current == agent_id:
            log.info("Re-registered with master %s as agent %s",
                     redact_credentials(self.flags.master), agent_id)
        else:
            log.error("The master gave a new agent ID %s (was %s); shutting down the old "
                      "executors", agent_id, current)
            self.dispatch(ShutdownAll())
        self.master_hostname = self.link.url.split("://", 1)[1].split(":", 1)[0]
        self.executor_env = _replace_agent_id(self.executor_env, agent_id)
        self.dispatch(Registered(agent_id))
        if current != agent_id:
            self.checkpoints.write(functools.partial(self.checkpointer.agent, agent_id),
                                   "the agent id")
        self._forward(self.updates.resume(asyncio.get_running_loop().time()))

    def _on_master_lost(self) -> None:
        log.warning("Disconnected from the master; keeping status updates until it is back")
        self.updates.pause()
        self._arm_retry()

    def _on_acknowledge(self, framework_id: str, task_id: str, ack_uuid: bytes) -> None:
        now = asyncio.get_running_loop().time()
        ack = self.updates.acknowledge(framework_id, task_id, ack_uuid, now)
        if ack.outcome is not AckOutcome.ACKED:
            log.info("Ignoring %s acknowledgement for task '%s' of framework %s",
                     ack.outcome.value.replace("_", " "), task_id, framework_id)
            return
        assert ack.status is not None
        self._checkpoint(framework_id, task_id, lambda a, f, e, c: self.checkpointer.ack(
            a, f, e, c, task_id, ack_uuid))
        log.info("Status update %s for task '%s' of framework %s was acknowledged",
                 ack.status.state, task_id, framework_id)
        framework = self.core.frameworks.get(framework_id)
        executor = framework.executor_of_task(task_id) if framework is not None else None
        self.dispatch(UpdateAcknowledged(framework_id, task_id, ack.status.state))
        if executor is not None:
            self._forget_run(framework_id, executor.id, executor.container_id)
        self._forward(ack.forwards)

    # ------------------------------------------------------------------ executors

    def executor_subscribed(self, framework_id: str, executor_id: str, stream: EventStream,
                            subscribe: ev1.Subscribe | None = None) -> bool:
        """Take ``stream`` as the executor's; False if the executor is gone by now."""
        if self.core.executor(framework_id, executor_id) is None:
            log.warning("Executor '%s' of framework %s went away while subscribing",
                        executor_id, framework_id)
            return False
        key = (framework_id, executor_id)
        old = self.streams.get(key)
        if old is not None and old is not stream:
            old.close()
        self.streams[key] = stream
        subscribe = subscribe or ev1.Subscribe()
        self.dispatch(ExecutorSubscribed(
            framework_id, executor_id, tuple(subscribe.unacknowledged_tasks),
            tuple(u.status for u in subscribe.unacknowledged_updates)))
        return True

    def executor_stream_closed(self, framework_id: str, executor_id: str,
                               stream: EventStream) -> None:
        if self.streams.get((framework_id, executor_id)) is stream:
            del self.streams[(framework_id, executor_id)]
            log.info("Executor '%s' of framework %s closed its event stream",
                     executor_id, framework_id)
            self._to_executor.forget((framework_id, executor_id), "its event stream closed")
            self.dispatch(ExecutorDisconnected(framework_id, executor_id))

    def executor_update(self, framework_id: str, executor_id: str,
                        status: v1.TaskStatus) -> None:
        limitation = None
        executor = self.core.executor(framework_id, executor_id)
        if status.state == "TASK_FAILED" and executor is not None:
            limitation = self._limitation(executor.container_id)
        self.dispatch(ExecutorUpdate(framework_id, executor_id, status, limitation))

    def _limitation(self, container_id: str) -> tuple[str, str] | None:
        """(reason, message) of a limit the container already hit, if any (see
        ExecutorUpdate: the kernel's OOM kill can be reported first by the executor)."""
        if container_id not in self.containerizer.containers():
            return None
        for isolator in self.containerizer.isolators:
            found = isolator.limitation_on_exit(container_id)
            if inspect.isawaitable(found):  # only a synchronous answer will do here
                if inspect.iscoroutine(found):
                    found.close()
                continue
            if found is not None:
                return found.reason, found.message
        return None

    def executor_message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        self.dispatch(ExecutorMessage(framework_id, executor_id, data))

    async def _get_fetcher(self) -> Fetcher:
        """The agent's fetcher, its cache under this agent id's directory (emptied the
        first time, as Mesos' is at start-up)."""
        if self._fetcher is None:
            # Made and recovered once, even when several launches ask at the same time:
            # one fetcher (one lock per URI) is what makes a download happen only once.
            self._fetcher = Fetcher.from_flags(self.flags, self.core.agent_id or "unregistered")
            self._fetcher_ready = asyncio.get_running_loop().create_task(
                self._recover_fetcher(self._fetcher))
        assert self._fetcher_ready is not None
        await asyncio.shield(self._fetcher_ready)
        return self._fetcher

    async def _recover_fetcher(self, fetcher: Fetcher) -> None:
        """Empty the cache, and the staging directory of group fetches a previous run
        left (no group fetch stages anything before the fetcher is ready)."""
        await fetcher.recover()
        await asyncio.to_thread(shutil.rmtree, self._to_executor.staging, True)

    async def _launch_executor(self, effect: LaunchExecutor) -> None:
        cid = effect.container_id
        try:
            self.gc.unschedule_for(effect.directory)  # a framework dir may be scheduled
            launcher.make_sandbox(effect.directory)
            command = effect.executor_info.command
            if command is None:
                raise launcher.LaunchError("ExecutorInfo has no 'command'")
            env = launcher.executor_environment(
                self.executor_env, effect.executor_info, effect.framework_info,
                effect.directory, effect.role, os.environ)
            if command.uris:
                fetcher = await self._get_fetcher()
                await fetcher.fetch(command.uris, effect.directory,
                                    user=command.user or effect.framework_info.user or None)
            log.info("Launching executor '%s' of framework %s in container %s (sandbox %s)",
                     effect.executor_id, effect.framework_id, cid, effect.directory)
            self._launching.add(cid)
            try:
                pid = await self._launch_container(effect, command, env)
            finally:
                self._launching.discard(cid)
        except Exception as exc:  # whatever it is, the tasks must not stay STAGING
            known = isinstance(exc, (OSError, launcher.LaunchError, LaunchError, FetchError))
            log.error("Failed to launch executor '%s' of framework %s: %s",
                      effect.executor_id, effect.framework_id, exc, exc_info=not known)
            self._resize_again.discard(cid)
            self.dispatch(ExecutorLaunchFailed(effect.framework_id, effect.executor_id, cid,
                                               str(exc) or type(exc).__name__))
            return
        self.processes[cid] = launcher.ContainerProcess(pid)
        self.dispatch(ExecutorStarted(effect.framework_id, effect.executor_id, cid, pid))
        if effect.framework_info.checkpoint and self.core.agent_id is not None:
            self.checkpoints.write(
                functools.partial(self.checkpointer.pid, self.core.agent_id,
                                  effect.framework_id, effect.executor_id, cid, pid),
                f"the pid of executor '{effect.executor_id}'")
        executor = self.core.executor(effect.framework_id, effect.executor_id)
        if (executor is None or executor.container_id != cid or executor.state == "TERMINATED"
                or (executor.state == "TERMINATING" and not executor.connected)):
            # Shut down while we were starting it (e.g. the agent is stopping); one that
            # subscribed meanwhile and was then sent SHUTDOWN has its grace period timer.
            self._destroy(cid)
        elif cid in self._resize_again:  # tasks came or went while it was starting
            self._resize_again.discard(cid)
            self._resize(cid)
        timeout = RegistrationTimeout(effect.framework_id, effect.executor_id, cid)
        handle = asyncio.get_running_loop().call_later(
            self.flags.executor_registration_timeout, self.dispatch, timeout)
        self._timers.setdefault(cid, []).append(handle)
        self._spawn(self._watch(effect.framework_id, effect.executor_id, cid),
                    watcher=True, container_id=cid)

    async def _launch_container(self, effect: LaunchExecutor, command: v1.CommandInfo,
                                env: dict[str, str]) -> int:
        """Start the executor in its container, sized for it and its tasks (as now)."""
        executor = self.core.executor(effect.framework_id, effect.executor_id)
        if executor is None or executor.container_id != effect.container_id:
            raise launcher.LaunchError("the executor was removed before it started")
        scalars, ranges = launcher.container_limits(container_resources(executor))
        user = command.user or effect.framework_info.user or None
        try:
            mounts = self._place_volumes(executor, user, starting=True)
            ro_mounts = {(sandbox, v.persistence_id)
                         for sandbox, held, _ in self._volume_sandboxes(executor)
                         for v in held.volumes() if v.mode == "RO"}
        except volumes.VolumeError as exc:
            raise launcher.LaunchError(str(exc)) from None
        self._ro_mounts[effect.container_id] = ro_mounts
        with (
            open(os.path.join(effect.directory, "stdout"), "ab") as out,
            open(os.path.join(effect.directory, "stderr"), "ab") as err,
        ):
            return await self.containerizer.launch(
                effect.container_id, launcher.command_argv(command), env=env,
                cwd=effect.directory, sandbox=effect.directory, resources=scalars,
                ranges=ranges, user=user, stdout=out, stderr=err, mounts=mounts)

    async def _watch(self, framework_id: str, executor_id: str, cid: str) -> None:
        """Wait for the container to end (the containerizer then kills what is left)."""
        termination = await self.containerizer.wait(cid)
        executor = self.core.executor(framework_id, executor_id)
        sandbox = executor.directory if executor and executor.container_id == cid else None
        self._cancel_timers(cid)
        self.processes.pop(cid, None)
        self.recovered_pids.pop(cid, None)
        self._ro_mounts.pop(cid, None)
        status = reason = None
        message = ""
        if termination is not None:
            if termination.status is not None:
                status = launcher.wait_status(termination.status)
            reason, message = termination.reason, termination.message
        self.dispatch(ExecutorExited(framework_id, executor_id, cid, status, reason, message))
        self._forget_run(framework_id, executor_id, cid)
        self._cancel_timers(cid)  # one armed while the container was being destroyed
        if sandbox is not None and not self.stopping.is_set():
            self.gc.schedule(self.flags.gc_delay, sandbox)

    def _cancel_timers(self, container_id: str) -> None:
        for handle in self._timers.pop(container_id, []):
            handle.cancel()

    def _destroy(self, container_id: str) -> None:
        # One still being launched is destroyed by _launch_executor once it has started.
        if (container_id in self.containerizer.containers()
                and container_id not in self._launching):
            log.info("Destroying container %s", container_id)
            self._spawn(self.containerizer.destroy(container_id), watcher=True)

    def _resize(self, container_id: str) -> None:
        """Give the container its executor's current resources (one update at a time)."""
        if container_id not in self.processes and container_id not in self.recovered_pids:
            self._resize_again.add(container_id)  # launching: resized once started
            return
        if container_id in self._resizing:
            self._resize_again.add(container_id)
            return
        self._resizing.add(container_id)
        self._spawn(self._apply_resize(container_id))

    async def _apply_resize(self, container_id: str) -> None:
        try:
            while True:
                self._resize_again.discard(container_id)
                executor = self._executor_of(container_id)
                if executor is None or executor.state == "TERMINATED":
                    return
                scalars, ranges = launcher.container_limits(container_resources(executor))
                try:
                    # Added read-only volumes are refused (their tasks failed) before
                    # LAUNCH is sent; the read-write ones are linked, and new ones given
                    # to the container's user as at launch.
                    self._place_volumes(executor, self._executor_user(executor))
                except volumes.VolumeError as exc:
                    log.warning("Container %s: %s", container_id, exc)
                try:
                    await self.containerizer.update(container_id, scalars, ranges)
                except (ContainerizerError, CgroupsError, OSError) as exc:
                    log.warning("Failed to update container %s to %s: %s", container_id,
                                scalars, exc)
                    return
                if container_id not in self._resize_again:
                    return
        finally:
            self._resizing.discard(container_id)

    def _executor_user(self, executor: Executor) -> str | None:
        """The user the executor's container runs as: its command's, else its
        framework's (as at launch)."""
        framework = self.core.frameworks.get(executor.framework_id)
        command = executor.info.command
        return ((command.user if command is not None else None)
                or (framework.info.user if framework is not None else None) or None)

    def _executor_of(self, container_id: str) -> Executor | None:
        for executor in self.core.executors():
            if executor.container_id == container_id:
                return executor
        return None

    # ------------------------------------------------------------------ usage

    async def container_usage(self, executor: Executor) -> dict[str, float] | None:
        """ResourceStatistics of the executor's container; None when it has none (now).

        As Mesos' containerizer does, ``cpus_limit`` and ``mem_limit_bytes`` come from
        the container's resources when no isolator reports them.
        """
        cid = executor.container_id
        if cid not in self.containerizer.containers():
            return None
        try:
            stats = await self.containerizer.usage(cid)
        except ContainerizerError:  # destroyed while we asked
            return None
        held = container_resources(executor)
        if "cpus_limit" not in stats and held.scalar("cpus"):
            stats["cpus_limit"] = held.scalar("cpus")
        if "mem_limit_bytes" not in stats and held.scalar("mem"):
            stats["mem_limit_bytes"] = float(int(held.scalar("mem") * 1024 * 1024))
        return stats

    # ------------------------------------------------------------------ checkpoints

    def _checkpoints(self, framework_id: str) -> str | None:
        """The agent id when ``framework_id`` is checkpointed here, else None."""
        framework = self.core.frameworks.get(framework_id)
        if framework is None or not framework.info.checkpoint:
            return None
        return self.core.agent_id

    def _checkpoint_executor(self, effect: LaunchExecutor) -> None:
        agent_id = self._checkpoints(effect.framework_id)
        if agent_id is None:
            return
        def write() -> None:
            self.checkpointer.framework(agent_id, effect.framework_info)
            self.checkpointer.executor(
                agent_id, effect.framework_id, effect.executor_info, effect.container_id,
                command_executor=effect.command_executor, role=effect.role,
                directory=effect.directory)

        self.checkpoints.write(write, f"executor '{effect.executor_id}' of framework "
                                      f"{effect.framework_id}")

    def _checkpoint_tasks(self, effect: CheckpointTasks) -> None:
        agent_id = self._checkpoints(effect.framework_id)
        if agent_id is None:
            return

        def write() -> None:
            for task in effect.tasks:
                self.checkpointer.task(agent_id, effect.framework_id, effect.executor_id,
                                       effect.container_id, task)

        self.checkpoints.write(write, f"the tasks of executor '{effect.executor_id}'")

    def _checkpoint(self, framework_id: str, task_id: str,
                    write: Callable[[str, str, str, str], None]) -> None:
        """``write(agent_id, framework_id, executor_id, container_id)`` for the task's run."""
        agent_id = self._checkpoints(framework_id)
        if agent_id is None:
            return
        executor = self.core.frameworks[framework_id].executor_of_task(task_id)
        if executor is None:
            return
        self.checkpoints.write(
            functools.partial(write, agent_id, framework_id, executor.id, executor.container_id),
            f"the status updates of task '{task_id}'")

    def _forget_run(self, framework_id: str, executor_id: str, container_id: str) -> None:
        """Delete the checkpoints of an executor run the core no longer holds."""
        current = self.core.executor(framework_id, executor_id)
        agent_id = self.core.agent_id
        if agent_id is None or (current is not None and current.container_id == container_id):
            return
        self.checkpoints.write(
            functools.partial(self.checkpointer.remove_run, agent_id, framework_id, executor_id,
                              container_id),
            f"the removal of a run of executor '{executor_id}'")

    # ------------------------------------------------------------------ recovery

    async def recover(self) -> None:
        """Re-read the checkpoints and take the executors still running back (ref §4)."""
        self.recovering = True  # before the first await: serve() has started listening
        try:
            live = await self._recover()
        finally:
            self.recovering = False
        await self._await_resubscription(live)

    async def _recover(self) -> list[tuple[str, str, str, int]]:
        """Rebuild the core from the checkpoints; the live executors to wait for."""
        work_dir = self.checkpointer.work_dir
        if self.flags.recover not in ("reconnect", "cleanup"):
            # OSError: the CLI reports it as a failure to start, in one line.
            raise OSError(f"--recover must be 'reconnect' or 'cleanup', not "
                          f"'{self.flags.recover}'")
        try:
            # One small file, read on the loop as the checkpoints below are.
            self.volume_state = volumes.recover(work_dir, self.resources)
        except volumes.VolumeError as exc:
            raise OSError(f"Cannot recover the checkpointed resources: {exc}") from exc
        try:
            # On the loop, not in a thread: msgspec decoding the same Struct types for the
            # first time on two threads at once crashed the agent (SIGSEGV in msgspec's
            # decoder, found by the chaos test). A few small files; start-up only.
            state = checkpoint.read_state(work_dir, strict=self.flags.strict)
        except checkpoint.CheckpointError as exc:
            raise OSError(f"Cannot recover from the checkpoints (--strict): {exc}") from exc
        if state is None:  # a fresh agent: every container under the root is an orphan
            await self._recover_containers(None, set())
            return []
        alive = await asyncio.to_thread(recovery.alive_containers, state)
        await self._recover_containers(state, alive)
        if self.flags.recover == "cleanup":
            log.info("Cleaning up agent %s: killing %d executor(s)", state.agent_id, len(alive))
            for cid in self.containerizer.containers():
                await self.containerizer.destroy(cid)
            await asyncio.to_thread(shutil.rmtree, checkpoint.meta_dir(work_dir), True)
            return []
        restored = recovery.restore(self.core, state, alive)
        self.executor_env = _replace_agent_id(self.executor_env, state.agent_id)
        log.info("Recovering agent %s: %d executor(s) alive, %d gone", state.agent_id,
                 len(restored.live), len(restored.dead))
        now = asyncio.get_running_loop().time()
        for framework_id, status in restored.unacknowledged:
            self.updates.update(framework_id, status, now)  # paused: sent on registering
        for framework_id, executor_id, cid, pid in restored.live:
            self.recovered_pids[cid] = pid
            self._spawn(self._watch(framework_id, executor_id, cid), watcher=True,
                        container_id=cid)
        for framework_id, executor_id, cid in restored.dead:
            self.dispatch(ExecutorExited(framework_id, executor_id, cid, None))
            self._forget_run(framework_id, executor_id, cid)
        kept = {cid for _, _, cid, _ in restored.live}
        for cid in self.containerizer.containers() - kept:  # runs that are over
            self._destroy(cid)
        return restored.live

    async def _recover_containers(self, state: checkpoint.RecoveredState | None,
                                  alive: set[str]) -> None:
        """Hand the checkpointed containers to the containerizer; it destroys orphans.

        Every checkpointed run is named (a dead executor's container may still hold
        its tasks' processes, destroyed once the core has failed them); only a live
        executor's pid is passed on (a dead one's number may have been reused).
        """
        states = recovery.container_states(state, alive) if state is not None else []
        try:
            orphans = await self.containerizer.recover(states)
        except (CgroupsError, OSError) as exc:
            raise OSError(f"Failed to recover the containerizer: {exc}") from exc
        if orphans:
            log.info("Destroyed %d orphan container(s): %s", len(orphans),
                     ", ".join(sorted(orphans)))

    async def _await_resubscription(self, live: list[tuple[str, str, str, int]]) -> None:
        """Wait (bounded) for recovered executors to re-subscribe; destroy the others.

        Executors retry with a backoff of at most --executor_reregistration_timeout
        (their MESOS_SUBSCRIPTION_BACKOFF_MAX), so twice that is waited for.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.flags.executor_reregistration_timeout

        def waiting() -> list[tuple[str, str, str, int]]:
            out = []
            for fw, ex, cid, pid in live:
                executor = self.core.executor(fw, ex)
                if executor is not None and executor.state == "RUNNING" and not (
                        executor.connected) and cid in self.recovered_pids:
                    out.append((fw, ex, cid, pid))
            return out

        while waiting() and loop.time() < deadline and not self.stopping.is_set():
            await asyncio.sleep(0.1)
        for fw, ex, cid, _ in waiting():
            self.dispatch(ReregistrationTimeout(fw, ex, cid))

    # ------------------------------------------------------------------ life cycle

    async def run(self) -> None:
        """Talk to the master until asked to stop, then stop (see :meth:`shutdown`)."""
        await self.recover()
        self.gc.start()
        link = asyncio.get_running_loop().create_task(self.link.run())
        link.add_done_callback(self._link_done)
        try:
            await self.stopping.wait()
        finally:
            await self.shutdown()
            self.link.stop()
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await link

    def _link_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("The master link failed; stopping", exc_info=task.exception())
            self.stopping.set()

    async def shutdown(self) -> None:
        """Stop: end the executors that must not outlive the agent, then let go.

        A full shutdown (SIGUSR1, the master's SHUTDOWN) sends SHUTDOWN to every
        executor, waits out the grace periods, kills what is left and forgets the
        agent id, so that the next agent here registers afresh (Mesos removes its
        ``latest`` link then too). A plain stop (SIGTERM, SIGINT) does that only to the
        executors of frameworks that do not checkpoint (as Mesos' ``Slave::finalize``):
        the others live on in their own sessions and are recovered by the next agent
        started with ``--recover=reconnect``.
        """
        if self.full_shutdown:
            self.dispatch(ShutdownAll())
        else:
            for framework in list(self.core.frameworks.values()):
                if not framework.info.checkpoint:
                    self.dispatch(ShutdownFramework(framework.id))
        await self.checkpoints.drain(10.0)  # launches wait for their checkpoints
        if self._background:  # executors being started right now
            await asyncio.wait(set(self._background), timeout=5.0)
        ending = self._ending_containers()
        graces = [e.grace_period(self.flags.executor_shutdown_grace_period)
                  for e in self.core.executors() if e.container_id in ending]
        deadline = max(graces, default=0.0) + 1.0
        watchers = {t for cid, t in self._watcher_of.items() if cid in ending}
        if watchers:
            await asyncio.wait(watchers, timeout=deadline)
        for cid in ending:
            self._destroy(cid)
        # The ending containers' watchers, and the kills just started (no container's).
        watchers = {t for cid, t in self._watcher_of.items() if cid in ending}
        watchers |= self._watchers - set(self._watcher_of.values())
        if watchers:
            await asyncio.wait(watchers, timeout=5.0)
        left = [cid for cid in [*self.processes, *self.recovered_pids] if cid not in ending]
        self.left_running = [self._pid_of(cid) for cid in left]
        if left:
            log.info("Leaving %d executor(s) of checkpointing frameworks running, for the "
                     "next agent to recover", len(left))
        for stream in list(self.streams.values()):
            stream.close()
        if self._retry is not None:
            self._retry.cancel()
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        if self.full_shutdown:
            self.checkpoints.write(self.checkpointer.forget_agent, "the removal of the agent id")
        await self.checkpoints.drain(10.0)
        self.checkpoints.close()
        if self._fetcher is not None:
            await self._fetcher.close()
        await self.gc.stop()
        await self.link.flush(2.0)
        log.info("Agent stopped")

    def _ending_containers(self) -> set[str]:
        """Containers this stop ends: all of them, or those of non-checkpointing frameworks."""
        running = {*self.processes, *self.recovered_pids}
        if self.full_shutdown:
            return running
        keep = {e.container_id for f in self.core.frameworks.values() if f.info.checkpoint
                for e in f.executors.values()}
        return running - keep

    def _live_pid(self, container_id: str) -> int | None:
        """The pid of the container's first process, if this agent knows it alive."""
        process = self.processes.get(container_id)
        return process.pid if process is not None else self.recovered_pids.get(container_id)

    def _pid_of(self, container_id: str) -> int:
        process = self.processes.get(container_id)
        return process.pid if process is not None else self.recovered_pids[container_id]


def _discard(_: object) -> None:
    """Discard a value (a callback that must return None)."""


def _command_executor_argv(python: str, work_dir: str) -> tuple[str, ...]:
    """Start the command executor from bytecode compiled once into the work dir.

    A script named on the command line is compiled on every start (about 10 ms, half
    of the executor's start-up); a ``.pyc`` is only unmarshalled.
    """
    cache_dir = os.path.join(work_dir, "executors-bin")
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError:
        return (python, "-S", "-I", COMMAND_EXECUTOR)
    return tuple(executor_argv(python, cache_dir=cache_dir))


def _make_core(
    flags: Flags,
    resources: Resources,
    attributes: list[dict[str, Any]],
    hostname: str,
    port: int,
    python: str,
) -> AgentCore:
    work_dir = os.path.abspath(flags.work_dir)
    config = CoreConfig(
        work_dir=work_dir,
        command_executor_argv=_command_executor_argv(python, work_dir),
        default_executor_argv=(python, "-S", "-I", DEFAULT_EXECUTOR),
        shutdown_grace_period=flags.executor_shutdown_grace_period,
        registration_timeout=flags.executor_registration_timeout,
        max_completed_executors_per_framework=flags.max_completed_executors_per_framework,
    )
    info = v1.AgentInfo(
        hostname=hostname,
        port=port,
        resources=codec.decode_obj(resources.to_json(), list[v1.Resource]),
        attributes=codec.decode_obj(attributes, list[v1.Attribute]),
        domain=codec.decode_obj(flags.domain, v1.DomainInfo) if flags.domain else None,
    )
    return AgentCore(
        config, info,
        new_container_id=lambda: str(uuid.uuid4()),
        new_uuid=lambda: uuid.uuid4().bytes,
    )


def _replace_agent_id(env: launcher.ExecutorEnv, agent_id: str) -> launcher.ExecutorEnv:
    return dataclasses.replace(env, agent_id=agent_id)

