"""The master <-> agent channel (``/api/v1/internal/agent``), defined once.

Not a public Mesos API: it mirrors Mesos' internal messages in the shape of the v1
APIs (a SUBSCRIBE stream of events plus separate POSTed calls). See
docs/dev/contracts.md §5.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from mesos.v1.mesos import (
    AgentID,
    AgentInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    MesosStruct,
    Resource,
    Task,
    TaskStatus,
)

AgentCallType = Literal["SUBSCRIBE", "STATUS_UPDATE", "EXECUTOR_MESSAGE", "EXITED_EXECUTOR", "PONG"]


class AgentSubscribe(MesosStruct):
    agent_info: AgentInfo
    resources: list[Resource] = msgspec.field(default_factory=list)
    frameworks: list[FrameworkInfo] = msgspec.field(default_factory=list)
    executors: list[ExecutorInfo] = msgspec.field(default_factory=list)
    tasks: list[Task] = msgspec.field(default_factory=list)
    version: str | None = None
    address_ip: str | None = None
    # Dynamic reservations and persistent volumes the agent checkpointed (Mesos'
    # ``checkpointed_resources``); its total is ``agent_info.resources`` with them on.
    checkpointed_resources: list[Resource] = msgspec.field(default_factory=list)


class StatusUpdate(MesosStruct):
    framework_id: FrameworkID
    status: TaskStatus


class ExecutorMessage(MesosStruct):
    framework_id: FrameworkID
    executor_id: ExecutorID
    data: bytes = b""


class ExitedExecutor(MesosStruct):
    framework_id: FrameworkID
    executor_id: ExecutorID
    status: int | None = None


class AgentCall(MesosStruct):
    type: AgentCallType
    agent_id: AgentID | None = None
    subscribe: AgentSubscribe | None = None
    status_update: StatusUpdate | None = None
    executor_message: ExecutorMessage | None = None
    exited_executor: ExitedExecutor | None = None
