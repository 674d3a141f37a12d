"""What goes into the agent core (events) and what comes out of it (effects).

Frozen values, one class per kind. Events come from the master link, the executor
API, the process watcher and timers; effects are carried out by
:class:`mesos.agent.service.Agent`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesos.v1 import executor as ev1
from mesos.v1 import mesos as v1

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Registered:
    """The master accepted our subscription and named us."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class RunTask:
    framework_info: v1.FrameworkInfo
    task: v1.TaskInfo


@dataclass(frozen=True, slots=True)
class RunTaskGroup:
    framework_info: v1.FrameworkInfo
    executor: v1.ExecutorInfo
    tasks: list[v1.TaskInfo]


@dataclass(frozen=True, slots=True)
class KillTask:
    framework_id: str
    task_id: str
    kill_policy: v1.KillPolicy | None = None


@dataclass(frozen=True, slots=True)
class ShutdownExecutor:
    framework_id: str
    executor_id: str


@dataclass(frozen=True, slots=True)
class ShutdownFramework:
    framework_id: str


@dataclass(frozen=True, slots=True)
class ShutdownAll:
    """The agent is going away (SIGTERM, or the master's SHUTDOWN)."""


@dataclass(frozen=True, slots=True)
class UpdateFramework:
    framework_info: v1.FrameworkInfo


@dataclass(frozen=True, slots=True)
class FrameworkMessage:
    """Scheduler -> executor bytes, relayed by the master."""

    framework_id: str
    executor_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ExecutorSubscribed:
    """An executor's SUBSCRIBE call was accepted; its stream is open.

    A re-subscribing executor names the tasks it was given but has no acknowledged
    update of yet, and the updates it sent that were not acknowledged (ref §4.2).
    """

    framework_id: str
    executor_id: str
    unacknowledged_tasks: tuple[v1.TaskInfo, ...] = ()
    unacknowledged_updates: tuple[v1.TaskStatus, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecutorDisconnected:
    """The event stream of a subscribed executor broke (the process may live on)."""

    framework_id: str
    executor_id: str


@dataclass(frozen=True, slots=True)
class ExecutorUpdate:
    """A validated UPDATE call of an executor.

    ``limitation`` is (reason, message) of a limit the executor's container hit
    (e.g. an OOM kill): the kernel can kill the task before the containerizer ends
    the container, so the executor may report the death first; a TASK_FAILED then
    carries the limitation, as the agent's own update would.
    """

    framework_id: str
    executor_id: str
    status: v1.TaskStatus
    limitation: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ExecutorMessage:
    """Executor -> scheduler bytes (MESSAGE call)."""

    framework_id: str
    executor_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ExecutorStarted:
    framework_id: str
    executor_id: str
    container_id: str
    pid: int


@dataclass(frozen=True, slots=True)
class ExecutorLaunchFailed:
    framework_id: str
    executor_id: str
    container_id: str
    message: str


@dataclass(frozen=True, slots=True)
class RegistrationTimeout:
    framework_id: str
    executor_id: str
    container_id: str


@dataclass(frozen=True, slots=True)
class ReregistrationTimeout:
    """A recovered executor did not re-subscribe in time after an agent restart."""

    framework_id: str
    executor_id: str
    container_id: str


@dataclass(frozen=True, slots=True)
class ExecutorExited:
    """The executor's container is gone; ``status`` is its wait status (None: unknown).

    ``reason`` and ``message`` name the limit that ended the container, if one did
    (a TaskStatus reason such as REASON_CONTAINER_LIMITATION_MEMORY).
    """

    framework_id: str
    executor_id: str
    container_id: str
    status: int | None
    reason: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class UpdateAcknowledged:
    """The status-update manager saw the scheduler acknowledge an update."""

    framework_id: str
    task_id: str
    state: str


Event = (
    Registered
    | RunTask
    | RunTaskGroup
    | KillTask
    | ShutdownExecutor
    | ShutdownFramework
    | ShutdownAll
    | UpdateFramework
    | FrameworkMessage
    | ExecutorSubscribed
    | ExecutorDisconnected
    | ExecutorUpdate
    | ExecutorMessage
    | ExecutorStarted
    | ExecutorLaunchFailed
    | RegistrationTimeout
    | ReregistrationTimeout
    | ExecutorExited
    | UpdateAcknowledged
)

# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class LaunchExecutor:
    """Make the sandbox and start the executor's process; arm its registration timer."""

    framework_id: str
    executor_id: str
    container_id: str
    directory: str
    executor_info: v1.ExecutorInfo
    framework_info: v1.FrameworkInfo
    role: str | None
    command_executor: bool


@dataclass(frozen=True, slots=True)
class CheckpointTasks:
    """Checkpoint tasks the agent has taken on (framework permitting).

    Emitted when the tasks are accepted, whether they go to the executor now or wait
    for it to subscribe, so an agent that dies while the executor is still starting
    recovers them too (Mesos checkpoints a task before queueing or sending it).
    """

    framework_id: str
    executor_id: str
    container_id: str
    tasks: tuple[v1.TaskInfo, ...]


@dataclass(frozen=True, slots=True)
class SendToExecutor:
    framework_id: str
    executor_id: str
    event: ev1.Event


@dataclass(frozen=True, slots=True)
class CloseExecutorStream:
    framework_id: str
    executor_id: str


@dataclass(frozen=True, slots=True)
class ForwardStatus:
    """Hand an update to the status-update manager.

    ``ack_executor`` names the executor that sent it: it gets ACKNOWLEDGED once the
    manager has taken the update over.
    """

    framework_id: str
    status: v1.TaskStatus
    ack_executor: str | None = None


@dataclass(frozen=True, slots=True)
class ShutdownContainer:
    """SHUTDOWN was sent; kill the container if it is still there after ``grace``."""

    framework_id: str
    executor_id: str
    container_id: str
    grace: float


@dataclass(frozen=True, slots=True)
class DestroyContainer:
    """Kill every process of the container now (the containerizer's destroy)."""

    framework_id: str
    executor_id: str
    container_id: str


@dataclass(frozen=True, slots=True)
class UpdateContainer:
    """The executor's tasks changed: resize its container (Mesos' containerizer update)."""

    framework_id: str
    executor_id: str
    container_id: str


@dataclass(frozen=True, slots=True)
class ExitedExecutor:
    """Tell the master (EXITED_EXECUTOR)."""

    framework_id: str
    executor_id: str
    status: int | None


@dataclass(frozen=True, slots=True)
class ExecutorMessageToMaster:
    framework_id: str
    executor_id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FrameworksRemoved:
    """Frameworks the agent forgot: drop their status-update streams."""

    framework_ids: tuple[str, ...]


Effect = (
    LaunchExecutor
    | CheckpointTasks
    | SendToExecutor
    | CloseExecutorStream
    | ForwardStatus
    | ShutdownContainer
    | DestroyContainer
    | UpdateContainer
    | ExitedExecutor
    | ExecutorMessageToMaster
    | FrameworksRemoved
)
