"""What the master knows: frameworks, agents, tasks and offers.

Plain records owned by :class:`mesos.master.service.Master` and changed only on its
event loop. Wire-typed parts (``FrameworkInfo``, ``TaskInfo``, ``TaskStatus``) are the
msgspec structs of :mod:`mesos.v1.mesos`; resources are :class:`mesos.resources.Resources`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from collections.abc import Iterable, Mapping
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

# The fields of a task its JSON views are made of: setting one marks the task changed
# (:attr:`TaskMap.changed`), so the state views' encoded copy of it is made again.
_SHOWN = frozenset({"info", "framework_id", "agent_id", "executor_id", "role", "resources",
                    "state", "statuses"})
# The fields :class:`TaskMap` counts by.
_COUNTED = frozenset({"state", "resources"})


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
    # The :class:`TaskMap` s holding this task (its framework's and its agent's), told
    # of every change of what they count or show.
    maps: list[TaskMap] = field(default_factory=list, init=False, repr=False)
    # The state views' encoded JSON of this task, by form ("legacy", "v1"), each with
    # what it was made from (:mod:`mesos.master.state_builder`). Kept on the task, so
    # it goes when the task goes.
    fragments: dict[str, tuple[Any, ...]] = field(default_factory=dict, init=False,
                                                  repr=False)

    def __setattr__(self, name: str, value: Any) -> None:
        maps = self.__dict__.get("maps")
        if not maps or name not in _SHOWN:
            object.__setattr__(self, name, value)
            return
        if name in _COUNTED:
            for m in maps:
                m.uncount(self)
            object.__setattr__(self, name, value)
            for m in maps:
                m.count(self)
        else:
            object.__setattr__(self, name, value)
        for m in maps:
            m.mark(self)

    @property
    def id(self) -> str:
        return self.info.task_id.value

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def latest_status(self) -> v1.TaskStatus | None:
        return self.statuses[-1] if self.statuses else None


# The scalars /metrics/snapshot reports as used (``master/<name>_used``).
USED_SCALARS = ("cpus", "mem", "disk", "gpus")


@functools.lru_cache(maxsize=4096)
def milli_scalars(resources: Resources) -> tuple[int, ...]:
    """``resources``' :data:`USED_SCALARS` in thousandths, the fixed point
    :class:`Resources` keeps them in, so that sums of them are exact. (Cached: a
    cluster's tasks come in a handful of shapes.)"""
    return tuple(round(resources.scalar(name) * 1000) for name in USED_SCALARS)


def _add(into: list[int], amounts: tuple[int, ...], sign: int) -> None:
    for i, amount in enumerate(amounts):
        into[i] += sign * amount


def sum_shapes(counts: Mapping[Resources, int]) -> Resources:
    """The total of ``count`` times each ``resources``: each shape added in
    log2(count) additions, not once per task."""
    total = Resources.empty()
    for resources, count in counts.items():
        while count:
            if count & 1:
                total = total + resources
            resources = resources + resources
            count >>= 1
    return total


class TaskMap(dict[str, Task]):
    """Tasks by id (a framework's ``tasks``, an agent's tasks of one framework) that
    keep count of themselves as tasks come, go and change.

    ``states`` counts the tasks in each state; ``live`` counts the non-terminal ones
    by resources (a cluster's tasks come in a handful of shapes) and
    :meth:`live_resources` is their total, added up again only after a change;
    ``used`` adds up their :data:`USED_SCALARS` (in thousandths), and so does the
    agent's :class:`AgentTasks` holding the map (``parent``). With 100,000 tasks
    ``/metrics/snapshot`` and the state views read these per framework and agent
    instead of walking every task (issue 7). Every way of putting a task in or
    taking it out is overridden here, and a task tells the maps holding it
    (:attr:`Task.maps`) when its ``state`` or ``resources`` are set, so the counts
    cannot drift from the contents (``tests/unit/test_task_counts.py`` holds them to
    a full walk).

    A task is counted by at most one map of each ``kind`` ("framework", "agent"):
    the last it was put in. A re-registering agent is a new :class:`Agent` whose maps
    take its tasks over while the old one's still hold them; without this every
    re-registration would leave one more map to tell of each change, for ever.

    ``agents`` counts the tasks held (whether or not counted here) by their
    ``agent_id`` (which a task never changes), so ``/master/state-summary`` names a
    framework's agents without walking its tasks.

    A map made with ``watch=True`` (a framework's) also notes in ``changed`` every
    task that came in or had a field its JSON shows set, for the state views'
    background encoder (:func:`mesos.master.state_builder.warm`), which empties it.
    """

    __slots__ = ("_live_sum", "agents", "changed", "kind", "live", "parent", "states", "used")

    def __init__(self, items: Mapping[str, Task] | Iterable[tuple[str, Task]] = (), *,
                 watch: bool = False, kind: str = "") -> None:
        super().__init__()
        self.kind = kind
        self.states: dict[str, int] = {}
        self.agents: dict[str, int] = {}
        self.live: dict[Resources, int] = {}
        self._live_sum: Resources | None = None
        self.used = [0] * len(USED_SCALARS)
        self.parent: AgentTasks | None = None
        self.changed: dict[Task, None] | None = {} if watch else None
        self.update(items)

    # -- counting (also called by Task.__setattr__)

    def _tally(self, task: Task, sign: int) -> None:
        left = self.states.get(task.state, 0) + sign
        if left:
            self.states[task.state] = left
        else:
            del self.states[task.state]
        if not task.terminal:
            resources = task.resources
            left = self.live.get(resources, 0) + sign
            if left:
                self.live[resources] = left
            else:
                del self.live[resources]
            self._live_sum = None
            amounts = milli_scalars(resources)
            _add(self.used, amounts, sign)
            if self.parent is not None:
                _add(self.parent.used, amounts, sign)
                self.parent.live_sum = None

    def live_resources(self) -> Resources:
        """What the non-terminal tasks here use, in all."""
        if self._live_sum is None:
            self._live_sum = sum_shapes(self.live)
        return self._live_sum

    def count(self, task: Task) -> None:
        self._tally(task, 1)

    def uncount(self, task: Task) -> None:
        self._tally(task, -1)

    def mark(self, task: Task) -> None:
        changed = self.changed
        if changed is None:
            return
        changed[task] = None
        if len(changed) > 2 * len(self) + 1024:
            # Nobody is emptying it (no background encoder runs): keep only the tasks
            # still here, so it cannot grow past twice the map.
            for gone in [t for t in changed if self.get(t.id) is not t]:
                del changed[gone]

    def _join(self, task: Task) -> None:
        self.agents[task.agent_id] = self.agents.get(task.agent_id, 0) + 1
        maps = task.maps
        if self.kind:
            for i, m in enumerate(maps):
                if m.kind == self.kind:
                    m.uncount(task)  # taken over: no longer counted there
                    del maps[i]
                    break
        maps.append(self)
        self.count(task)
        self.mark(task)

    def _leave(self, task: Task) -> None:
        left = self.agents[task.agent_id] - 1
        if left:
            self.agents[task.agent_id] = left
        else:
            del self.agents[task.agent_id]
        maps = task.maps
        for i, m in enumerate(maps):
            if m is self:
                del maps[i]
                self.uncount(task)
                return

    # -- every way in and out

    def __setitem__(self, key: str, task: Task) -> None:
        old = dict.get(self, key)
        if old is task:
            return
        if old is not None:
            self._leave(old)
        dict.__setitem__(self, key, task)
        self._join(task)

    def __delitem__(self, key: str) -> None:
        task = self[key]
        dict.__delitem__(self, key)
        self._leave(task)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            task = dict.pop(self, key)
            self._leave(task)
            return task
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, Task]:
        key, task = dict.popitem(self)
        self._leave(task)
        return key, task

    def clear(self) -> None:
        for task in list(self.values()):
            self._leave(task)
        dict.clear(self)

    def setdefault(self, key: str, default: Task) -> Task:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Task) -> None:
        for key, task in dict(*args, **kwargs).items():
            self[key] = task

    def __ior__(self, other: Any) -> TaskMap:  # type: ignore[override,misc]
        self.update(other)
        return self


class AgentTasks(dict[str, TaskMap]):
    """An agent's tasks: framework id -> :class:`TaskMap`, with ``used`` the sum of
    theirs (kept as they change), so ``/metrics/snapshot`` reads one total per agent.

    A plain dict put in (as ``agent.tasks.setdefault(framework_id, {})[task_id] =
    task`` does) is made a :class:`TaskMap` on the way, so an agent's tasks are
    always counted; a map taken out no longer counts here."""

    __slots__ = ("live_sum", "used")

    def __init__(self, items: Mapping[str, Mapping[str, Task]] = ()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.used = [0] * len(USED_SCALARS)
        # What live_resources() said, until a map here changes (None: add up again).
        self.live_sum: Resources | None = None
        self.update(items)

    def live_resources(self) -> Resources:
        """What the agent's non-terminal tasks use, in all."""
        if self.live_sum is None:
            total = Resources.empty()
            for tasks in self.values():
                total = total + tasks.live_resources()
            self.live_sum = total
        return self.live_sum

    def _adopt(self, tasks: Mapping[str, Task]) -> TaskMap:
        if not isinstance(tasks, TaskMap) or tasks.parent is not None or tasks.kind != "agent":
            tasks = TaskMap(tasks, kind="agent")
        tasks.parent = self
        _add(self.used, tuple(tasks.used), 1)
        self.live_sum = None
        return tasks

    def _disown(self, tasks: TaskMap) -> None:
        _add(self.used, tuple(tasks.used), -1)
        self.live_sum = None
        tasks.parent = None

    def __setitem__(self, key: str, tasks: Mapping[str, Task]) -> None:
        old = dict.get(self, key)
        if old is tasks:
            return
        if old is not None:
            self._disown(old)
        dict.__setitem__(self, key, self._adopt(tasks))

    def __delitem__(self, key: str) -> None:
        tasks = self[key]
        dict.__delitem__(self, key)
        self._disown(tasks)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            tasks = dict.pop(self, key)
            self._disown(tasks)
            return tasks
        if default:
            return default[0]
        raise KeyError(key)

    def popitem(self) -> tuple[str, TaskMap]:
        key, tasks = dict.popitem(self)
        self._disown(tasks)
        return key, tasks

    def clear(self) -> None:
        for tasks in list(self.values()):
            self._disown(tasks)
        dict.clear(self)

    def setdefault(self, key: str, default: Mapping[str, Task]) -> TaskMap:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Mapping[str, Task]) -> None:
        for key, tasks in dict(*args, **kwargs).items():
            self[key] = tasks

    def __ior__(self, other: Any) -> AgentTasks:  # type: ignore[override,misc]
        self.update(other)
        return self


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
    tasks: TaskMap = field(default_factory=lambda: TaskMap(watch=True, kind="framework"))
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
    tasks: AgentTasks = field(default_factory=AgentTasks)
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
