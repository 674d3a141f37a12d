"""v1 Executor API messages (``mesos/v1/executor/executor.proto``).

``Call`` is what an executor POSTs to the agent's ``/api/v1/executor``; ``Event`` is one
record of its SUBSCRIBE stream. Nested proto messages are flattened into module-level
classes (``Call.Subscribe`` is :class:`Subscribe`, ``Event.Launch`` is :class:`Launch`).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from mesos.v1.mesos import (
    AgentInfo,
    ContainerID,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    MesosStruct,
    TaskGroupInfo,
    TaskID,
    TaskInfo,
    TaskStatus,
)

CallType = Literal["UNKNOWN", "SUBSCRIBE", "UPDATE", "MESSAGE", "HEARTBEAT"]
CALL_TYPES: frozenset[str] = frozenset(get_args(CallType))

EventType = Literal[
    "UNKNOWN",
    "SUBSCRIBED",
    "LAUNCH",
    "LAUNCH_GROUP",
    "KILL",
    "ACKNOWLEDGED",
    "MESSAGE",
    "ERROR",
    "SHUTDOWN",
    "HEARTBEAT",
]
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


def _list() -> Any:
    return msgspec.field(default_factory=list)


# --------------------------------------------------------------------------- calls


class Update(MesosStruct):
    """``Call.Update``; also the element of ``Subscribe.unacknowledged_updates``."""

    status: TaskStatus


class Subscribe(MesosStruct):
    unacknowledged_tasks: list[TaskInfo] = _list()
    unacknowledged_updates: list[Update] = _list()


class Message(MesosStruct):
    """``Call.Message`` / ``Event.Message``: opaque bytes between executor and framework."""

    data: bytes


class Call(MesosStruct):
    type: CallType
    executor_id: ExecutorID
    framework_id: FrameworkID
    subscribe: Subscribe | None = None
    update: Update | None = None
    message: Message | None = None


# --------------------------------------------------------------------------- events


class Subscribed(MesosStruct):
    executor_info: ExecutorInfo
    framework_info: FrameworkInfo
    agent_info: AgentInfo
    container_id: ContainerID | None = None


class Launch(MesosStruct):
    task: TaskInfo


class LaunchGroup(MesosStruct):
    task_group: TaskGroupInfo


class Kill(MesosStruct):
    task_id: TaskID
    kill_policy: KillPolicy | None = None


class Acknowledged(MesosStruct):
    task_id: TaskID
    uuid: bytes


class Error(MesosStruct):
    message: str


class Event(MesosStruct):
    type: EventType
    subscribed: Subscribed | None = None
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    kill: Kill | None = None
    acknowledged: Acknowledged | None = None
    message: Message | None = None
    error: Error | None = None
