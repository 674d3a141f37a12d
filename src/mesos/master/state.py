"""What the master knows: frameworks, agents, tasks and offers.

Plain records owned by :class:`mesos.master.service.Master` and changed only on its
event loop. Wire-typed parts (``FrameworkInfo``, ``TaskInfo``, ``TaskStatus``) are the
msgspec structs of :mod:`mesos.v1.mesos`; resources are :class:`mesos.resources.Resources`.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field
from typing import Any

from mesos.http.streaming import EventStream
from mesos.resources import Resources
from mesos.v1 import mesos as v1
from mesos.v1.enums import TERMINAL_STATES, TaskState

# The order Mesos' endpoints count task states in.
TASK_STATES = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_KILLED",
    "TASK_FAILED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)


@dataclass(eq=False)
class Task:
    """A task the master launched, with the statuses it has seen for it."""

    info: v1.TaskInfo
    framework_id: str
    agent_id: str
    executor_id: str  # "" for command tasks (the agent names their executor)
    role: str
    resources: Resources
    state: TaskState = "TASK_STAGING"
    statuses: list[v1.TaskStatus] = field(default_factory=list)
    # The latest update the scheduler was sent and has not yet acknowledged.
    unacked_uuid: bytes | None = None
    resources_recovered: bool = False

    @property
    def id(self) -> str:
        return self.info.task_id.value

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def latest_status(self) -> v1.TaskStatus | None:
        return self.statuses[-1] if self.statuses else None


@dataclass(eq=False)
class Offer:
    id: str
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    expiry: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Framework:
    id: str
    info: v1.FrameworkInfo
    registered_time: float
    stream: EventStream | None = None
    stream_id: str | None = None
    active: bool = True
    recovered: bool = False
    reregistered_time: float | None = None
    unregistered_time: float | None = None
    failover_timer: asyncio.TimerHandle | None = None
    suppressed_roles: set[str] = field(default_factory=set)
    tasks: dict[str, Task] = field(default_factory=dict)
    unreachable_tasks: dict[str, Task] = field(default_factory=dict)
    completed_tasks: collections.deque[Task] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )
    offers: dict[str, Offer] = field(default_factory=dict)
    # agent id -> executor id -> ExecutorInfo
    executors: dict[str, dict[str, v1.ExecutorInfo]] = field(default_factory=dict)

    @property
    def connected(self) -> bool:
        return self.stream is not None and not self.stream.closed

    @property
    def capabilities(self) -> set[str]:
        return {c.type for c in self.info.capabilities if c.type}

    @property
    def roles(self) -> list[str]:
        if "MULTI_ROLE" in self.capabilities:
            return list(self.info.roles)
        return [self.info.role or "*"]

    @property
    def partition_aware(self) -> bool:
        return "PARTITION_AWARE" in self.capabilities

    def send(self, event: bytes) -> None:
        if self.stream is not None:
            self.stream.send(event)


@dataclass(eq=False)
class Agent:
    id: str
    info: v1.AgentInfo
    pid: str
    total: Resources
    version: str
    registered_time: float
    reregistered_time: float | None = None
    stream: EventStream | None = None
    stream_id: str | None = None
    active: bool = True
    # Pings: the master counts pings the agent did not answer.
    pings_unanswered: int = 0
    pong_since_ping: bool = True
    # framework id -> task id -> Task (non-terminal and terminal-unacknowledged tasks)
    tasks: dict[str, dict[str, Task]] = field(default_factory=dict)
    # framework id -> executor id -> ExecutorInfo
    executors: dict[str, dict[str, v1.ExecutorInfo]] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)
    # (framework id, status) for tasks found again on an agent that was unreachable,
    # sent once its re-admission is durable.
    reregistered_updates: list[tuple[str, v1.TaskStatus]] = field(default_factory=list)

    @property
    def connected(self) -> bool:
        return self.stream is not None and not self.stream.closed

    def send(self, event: bytes) -> None:
        if self.stream is not None:
            self.stream.send(event)

    def all_tasks(self) -> list[Task]:
        return [t for by_id in self.tasks.values() for t in by_id.values()]


@dataclass
class UnreachableAgent:
    id: str
    info: v1.AgentInfo
    time: float


@dataclass
class Counters:
    """Monotonic counters for ``/metrics/snapshot``."""

    values: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def inc(self, name: str, by: float = 1.0) -> None:
        self.values[name] += by

    def snapshot(self) -> dict[str, Any]:
        return dict(self.values)
