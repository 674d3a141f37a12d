"""Building the big state views without stalling the master's event loop (issue 7).

With 10,000 agents and 100,000 tasks ``/master/state`` is tens of megabytes of JSON.
Built in one go it holds the loop for seconds: no agent, scheduler or operator call is
answered meanwhile. Here it is built a slice at a time: every ~:data:`SLICE_SECONDS`
of work the builder yields to the loop, so other calls keep being answered. Each
agent, task and framework is encoded to JSON as soon as it is built (``msgspec``,
several times faster than :func:`json.dumps`) and spliced into the final document as
raw bytes, so the last step is a concatenation, not a second pass over everything.

The view is taken from snapshots of the master's collections (lists copied before
the first yield), so agents or tasks added or removed while it is built do not break
the iteration; an object changed meanwhile shows its state at the time its slice
was built, as Mesos' own view shows the state at the time the actor got the request.
The shapes are :mod:`mesos.master.views`' own (the same functions build both).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from mesos.master import operator_views, views
from mesos.master.service import Master
from mesos.master.state import Framework, Task
from mesos.resources import Resources
from mesos.v1 import codec

__all__ = ["SLICE_SECONDS", "Slicer", "TaskFragments", "encoded", "get_state_json",
           "json_response", "state_json", "task_fragments"]

# Longest stretch of building between two yields to the loop.
SLICE_SECONDS = 0.01
# A framework's tasks are added up this many at a time (a few ms of work).
_SUM_STEP = 2000

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def encoded(value: Any) -> msgspec.Raw:
    """``value`` as JSON, to be spliced into a larger document as it is."""
    return msgspec.Raw(_encoder.encode(value))


class Slicer:
    """Counts work done and yields to the event loop every :data:`SLICE_SECONDS`."""

    def __init__(self, seconds: float = SLICE_SECONDS) -> None:
        self.seconds = seconds
        self._until = time.perf_counter() + seconds
        self.yields = 0

    async def tick(self) -> None:
        if time.perf_counter() >= self._until:
            await asyncio.sleep(0)
            self.yields += 1
            self._until = time.perf_counter() + self.seconds

    async def map(self, build: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        """``[encoded(build(item)) for item in items]`` (``build`` may give
        :class:`msgspec.Raw` itself), yielding between slices."""
        out: list[Any] = []
        for item in list(items):
            value = build(item)
            out.append(value if isinstance(value, msgspec.Raw) else encoded(value))
            await self.tick()
        return out


class TaskFragments:
    """Encoded tasks kept from one build to the next.

    Of 100,000 tasks few change between two reads of the state, and a task's JSON is
    most of what a build costs. A fragment is reused only while everything its JSON is
    made of is unchanged: the same task object with the same state, executor, role,
    agent and framework, the same ``info`` and ``resources`` objects (the master
    replaces them, it never edits them), and the same statuses (the master only
    appends to that list, or trims it; so its length and last element tell). The entry
    holds those objects, so their ids cannot be reused while it is compared. Every
    build keeps only the tasks it saw: finished and removed tasks are let go.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[Any, ...]] = {}
        self._next: dict[int, tuple[Any, ...]] = {}
        self.hits = 0
        self.misses = 0

    def begin(self) -> None:
        self._next = {}
        self.hits = self.misses = 0

    def get(self, task: Task, build: Callable[[Task], Any]) -> msgspec.Raw:
        """``task``'s encoded JSON: the last build's, or ``build(task)`` encoded."""
        statuses = task.statuses
        key = (task.state, task.executor_id, task.role, task.agent_id, task.framework_id,
               len(statuses))
        last = statuses[-1] if statuses else None
        entry = self._entries.get(id(task))
        if (entry is not None and entry[0] is task and entry[1] == key and entry[2] is last
                and entry[3] is task.info and entry[4] is task.resources):
            self.hits += 1
        else:
            self.misses += 1
            entry = (task, key, last, task.info, task.resources, encoded(build(task)))
        self._next[id(task)] = entry
        raw: msgspec.Raw = entry[5]
        return raw

    def end(self) -> None:
        """Keep what this build saw (called once the build is complete)."""
        self._entries, self._next = self._next, {}


_fragments: weakref.WeakKeyDictionary[Master, dict[str, TaskFragments]] = (
    weakref.WeakKeyDictionary())


def task_fragments(master: Master, kind: str) -> TaskFragments:
    """The master's fragment cache for one JSON form of a task (``kind``: ``"legacy"``
    for /master/state, ``"v1"`` for GET_STATE), made on first use."""
    caches = _fragments.setdefault(master, {})
    cache = caches.get(kind)
    if cache is None:
        cache = caches[kind] = TaskFragments()
    return cache


async def _framework(master: Master, framework: Framework, memo: views.Memo,
                     slicer: Slicer, fragments: TaskFragments) -> msgspec.Raw:
    def build(t: Task) -> dict[str, Any]:
        return views.task_json(t, memo)

    def task(t: Task) -> msgspec.Raw:
        return fragments.get(t, build)

    live = list(framework.tasks.values())
    used = Resources.empty()
    for start in range(0, len(live), _SUM_STEP):
        used = used + memo.sum(t.resources for t in live[start:start + _SUM_STEP]
                               if not t.terminal)
        await slicer.tick()
    task_lists: dict[str, list[Any]] = {
        "tasks": await slicer.map(task, live),
        "unreachable_tasks": await slicer.map(task, framework.unreachable_tasks.values()),
        "completed_tasks": await slicer.map(task, framework.completed_tasks),
    }
    return encoded(views.framework_json(master, framework, memo=memo, used=used,
                                        task_lists=task_lists))


async def state_json(master: Master, slicer: Slicer | None = None) -> bytes:
    """``/master/state`` as JSON bytes, built a slice at a time."""
    slicer = slicer or Slicer()
    memo = views.Memo()
    fragments = task_fragments(master, "legacy")
    fragments.begin()
    agents = list(master.agents.values())
    frameworks = list(master.frameworks.values())
    completed = list(master.completed_frameworks)
    parts: dict[str, list[Any]] = {
        "slaves": await slicer.map(lambda a: views.agent_json(master, a, memo=memo), agents),
        "frameworks": [await _framework(master, f, memo, slicer, fragments)
                       for f in frameworks],
        "completed_frameworks": [await _framework(master, f, memo, slicer, fragments)
                                 for f in completed],
    }
    fragments.end()
    return _encoder.encode(views.state(master, parts))


async def get_state_json(master: Master, slicer: Slicer | None = None) -> bytes:
    """The operator API's whole answer to ``GET_STATE`` (``{"type": "GET_STATE",
    "get_state": ...}``) as JSON bytes, built a slice at a time from
    :mod:`mesos.master.operator_views`' own per-item functions."""
    slicer = slicer or Slicer()
    fragments = task_fragments(master, "v1")
    fragments.begin()
    frameworks = list(master.frameworks.values())
    completed = list(master.completed_frameworks)
    every = frameworks + completed

    def task(t: Task) -> msgspec.Raw:
        return fragments.get(t, operator_views.task_json)

    get_tasks = {
        "tasks": await slicer.map(task, [t for f in frameworks for t in f.tasks.values()]),
        "unreachable_tasks": await slicer.map(
            task, [t for f in every for t in f.unreachable_tasks.values()]),
        "completed_tasks": await slicer.map(
            task, [t for f in every for t in f.completed_tasks]),
    }
    fragments.end()
    get_executors = operator_views.get_executors(master)
    await slicer.tick()
    get_frameworks = {
        "frameworks": await slicer.map(
            lambda f: operator_views.framework_json(master, f), frameworks),
        "completed_frameworks": await slicer.map(
            lambda f: operator_views.framework_json(master, f), completed),
    }
    agents = await slicer.map(lambda a: operator_views.agent_json(master, a),
                              list(master.agents.values()))
    get_agents = {
        "agents": agents,
        "recovered_agents": await slicer.map(codec.to_builtins,
                                             list(master.recovered_agents.values())),
    }
    return _encoder.encode({"type": "GET_STATE", "get_state": {
        "get_tasks": get_tasks, "get_executors": get_executors,
        "get_frameworks": get_frameworks, "get_agents": get_agents}})


def json_response(request: web.Request, body: bytes, status: int = 200) -> web.Response:
    """As the master's other JSON answers: ``?jsonp=callback`` wraps it."""
    callback = request.query.get("jsonp")
    if callback:
        return web.Response(status=status, body=b"%s(%s);" % (callback.encode(), body),
                            content_type="text/javascript", charset="utf-8")
    return web.Response(status=status, body=body, content_type="application/json",
                        charset="utf-8")
