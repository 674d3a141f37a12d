"""The agent's records: frameworks, executors and tasks as the core keeps them.

Plain mutable records owned by :class:`mesos.agent.core.AgentCore` and changed only
through its ``handle``; the endpoints read them. Wire-typed parts are the msgspec
Structs of :mod:`mesos.v1.mesos`.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Literal

from mesos.v1 import mesos as v1

ExecutorState = Literal["REGISTERING", "RUNNING", "TERMINATING", "TERMINATED"]

MAX_COMPLETED_TASKS_PER_EXECUTOR = 200


@dataclass(eq=False)
class Task:
    info: v1.TaskInfo
    framework_id: str
    executor_id: str
    state: str = "TASK_STAGING"
    statuses: list[v1.TaskStatus] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.info.task_id.value


@dataclass(eq=False)
class QueuedLaunch:
    """Tasks waiting for their executor to subscribe: one task, or one task group."""

    tasks: list[Task]
    group: bool


@dataclass(frozen=True)
class Termination:
    """Why the agent is ending an executor: becomes the update of its live tasks."""

    state: str
    reason: str
    message: str


@dataclass(eq=False)
class Executor:
    info: v1.ExecutorInfo
    framework_id: str
    container_id: str
    directory: str
    command_executor: bool
    role: str | None
    state: ExecutorState = "REGISTERING"
    queued: list[QueuedLaunch] = field(default_factory=list)
    launched: dict[str, Task] = field(default_factory=dict)
    terminated: dict[str, Task] = field(default_factory=dict)
    completed: collections.deque[Task] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_COMPLETED_TASKS_PER_EXECUTOR)
    )
    pid: int | None = None
    exit_status: int | None = None
    termination: Termination | None = None
    # An event stream is open (LAUNCH and KILL wait while a RUNNING executor has none).
    connected: bool = False
    # Kills asked for while disconnected: task id -> kill policy, sent on re-subscribing.
    pending_kills: dict[str, v1.KillPolicy | None] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.info.executor_id.value

    def queued_tasks(self) -> list[Task]:
        return [t for launch in self.queued for t in launch.tasks]

    def find_task(self, task_id: str) -> Task | None:
        task = self.launched.get(task_id) or self.terminated.get(task_id)
        if task is not None:
            return task
        return next((t for t in self.queued_tasks() if t.id == task_id), None)

    def incomplete(self) -> bool:
        """Some task is queued, live, or waiting for its terminal acknowledgement."""
        return bool(self.queued or self.launched or self.terminated)

    def grace_period(self, default: float) -> float:
        grace = self.info.shutdown_grace_period
        return grace.nanoseconds / 1e9 if grace is not None else default


@dataclass(eq=False)
class Framework:
    info: v1.FrameworkInfo
    executors: dict[str, Executor] = field(default_factory=dict)
    completed_executors: collections.deque[Executor] = field(default_factory=collections.deque)
    state: Literal["RUNNING", "TERMINATING"] = "RUNNING"

    @property
    def id(self) -> str:
        assert self.info.id is not None
        return self.info.id.value

    def executor_of_task(self, task_id: str) -> Executor | None:
        for executor in self.executors.values():
            if executor.find_task(task_id) is not None:
                return executor
        return None

    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.info.capability_names()


def v1_task(
    task: Task,
    command_executor: bool,
    agent_id: v1.AgentID | None,
    head: v1.TaskStatus | None,
) -> v1.Task:
    """The task as a v1 ``Task`` (re-subscription). Command tasks carry no executor id.

    ``head`` is the update in flight to the master, if any; its state and uuid become
    ``status_update_state`` / ``status_update_uuid``, as in Mesos.
    """
    info = task.info
    return v1.Task(
        name=info.name,
        task_id=info.task_id,
        framework_id=v1.FrameworkID(value=task.framework_id),
        executor_id=None if command_executor else v1.ExecutorID(value=task.executor_id),
        agent_id=agent_id or info.agent_id,
        state=task.state,  # type: ignore[arg-type]
        resources=info.resources,
        statuses=task.statuses,
        status_update_state=head.state if head is not None else None,
        status_update_uuid=head.uuid if head is not None else None,
        labels=info.labels,
        discovery=info.discovery,
        container=info.container,
        health_check=info.health_check,
        check=info.check,
        kill_policy=info.kill_policy,
        user=info.command.user if info.command is not None else None,
        limits=info.limits,
    )
