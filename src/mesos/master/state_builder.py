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
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from mesos.master import operator_views, views
from mesos.master.service import Master
from mesos.master.state import Framework, Task
from mesos.v1 import codec

__all__ = ["FORMS", "SLICE_SECONDS", "WARM_EVERY", "Slicer", "TaskFragments", "encoded",
           "fragment", "get_state_json", "json_response", "state_json", "task_fragments",
           "warm", "warm_forever"]

# Longest stretch of building between two yields to the loop.
SLICE_SECONDS = 0.01

T = TypeVar("T")

log = logging.getLogger("mesos.master")

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


def _legacy_task(task: Task, memo: views.Memo | None = None) -> dict[str, Any]:
    return views.task_json(task, memo)


def _v1_task(task: Task, memo: views.Memo | None = None) -> dict[str, Any]:
    return operator_views.task_json(task)


# The JSON forms of a task: "legacy" for /master/state, "v1" for GET_STATE.
FORMS: dict[str, Callable[[Task, views.Memo | None], dict[str, Any]]] = {
    "legacy": _legacy_task, "v1": _v1_task}


def fragment(task: Task, form: str, memo: views.Memo | None = None) -> tuple[msgspec.Raw, bool]:
    """``task`` encoded in ``form`` (a key of :data:`FORMS`), and whether it was made
    afresh.

    Of 100,000 tasks few change between two reads of the state, and a task's JSON is
    most of what a build costs, so the encoded JSON is kept on the task
    (:attr:`Task.fragments`) with what it was made from. It is used again only
    while all of that is unchanged: the same state, executor, role, agent and
    framework, the same ``info`` and ``resources`` objects (the master replaces
    them, it never edits them), and the same statuses (the master only appends to
    that list, or trims it from the middle, and never edits a status once it is in
    the list; so its length and last element tell). That check is made on every
    use, whatever :func:`warm` did or did not see, so an answer is never staler than
    the task itself.
    """
    statuses = task.statuses
    key = (task.state, task.executor_id, task.role, task.agent_id, task.framework_id,
           len(statuses))
    last = statuses[-1] if statuses else None
    entry = task.fragments.get(form)
    if (entry is not None and entry[0] == key and entry[1] is last
            and entry[2] is task.info and entry[3] is task.resources):
        return entry[4], False
    raw = encoded(FORMS[form](task, memo))
    task.fragments[form] = (key, last, task.info, task.resources, raw)
    return raw, True


class TaskFragments:
    """How many of one build's tasks were encoded afresh (``misses``) and how many
    came as they were (``hits``), for one form of one master."""

    def __init__(self, form: str) -> None:
        self.form = form
        self.hits = 0
        self.misses = 0

    def begin(self) -> None:
        self.hits = self.misses = 0

    def get(self, task: Task, memo: views.Memo | None = None) -> msgspec.Raw:
        raw, fresh = fragment(task, self.form, memo)
        if fresh:
            self.misses += 1
        else:
            self.hits += 1
        return raw


_fragments: weakref.WeakKeyDictionary[Master, dict[str, TaskFragments]] = (
    weakref.WeakKeyDictionary())


def task_fragments(master: Master, kind: str) -> TaskFragments:
    """The counts of the master's last build of one JSON form of its tasks (``kind``:
    ``"legacy"`` for /master/state, ``"v1"`` for GET_STATE)."""
    caches = _fragments.setdefault(master, {})
    cache = caches.get(kind)
    if cache is None:
        cache = caches[kind] = TaskFragments(kind)
    return cache


# How often the background encoder looks for changed tasks. Changes within one period
# are encoded once.
WARM_EVERY = 1.0


async def warm(master: Master, slicer: Slicer | None = None) -> int:
    """Encode, in both forms, every task that came in or changed since the last call
    (what the frameworks' task maps noted, :attr:`TaskMap.changed`), a slice at a
    time, and adds up again what the agents' and frameworks' tasks use; the number
    of fragments encoded (a build may have made some already).

    Without it the first /master/state after a failover (100,000 tasks reported by
    re-registering agents) encoded every task while the caller waited: 1.9 s
    against 0.9 s once encoded (issue 7). This does that work as the tasks arrive,
    in the background and in slices, so the first answer costs what the next ones
    do. It only fills :attr:`Task.fragments`; whether one may be used is decided
    when it is (:func:`fragment`)."""
    slicer = slicer or Slicer()
    memo = views.Memo()
    tasks: list[Task] = []
    for framework in [*master.frameworks.values(), *master.completed_frameworks]:
        changed = framework.tasks.changed
        if changed:
            tasks.extend(changed)
            changed.clear()
    made = 0
    for task in tasks:
        for form in FORMS:
            made += fragment(task, form, memo)[1]
        await slicer.tick()
    # What the agents' and frameworks' tasks use in all is added up again after a
    # change only when asked (TaskMap.live_resources); ask now, not in the next build
    # (a few ms for 10,000 agents when nothing changed).
    for framework in list(master.frameworks.values()):
        framework.tasks.live_resources()
    for agent in list(master.agents.values()):
        agent.tasks.live_resources()
        await slicer.tick()
    return made


async def warm_forever(master: Master, every: float = WARM_EVERY) -> None:
    """:func:`warm` every ``every`` seconds, for as long as the master is served."""
    while True:
        await asyncio.sleep(every)
        try:
            await warm(master)
        except Exception:  # a bug here must not stop the master's loop
            log.exception("Encoding changed tasks in the background failed")


async def _framework(master: Master, framework: Framework, memo: views.Memo,
                     slicer: Slicer, fragments: TaskFragments) -> msgspec.Raw:
    def task(t: Task) -> msgspec.Raw:
        return fragments.get(t, memo)

    live = list(framework.tasks.values())
    used = framework.tasks.live_resources()  # kept as tasks change, not walked
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
        return fragments.get(t)

    get_tasks = {
        "tasks": await slicer.map(task, [t for f in frameworks for t in f.tasks.values()]),
        "unreachable_tasks": await slicer.map(
            task, [t for f in every for t in f.unreachable_tasks.values()]),
        "completed_tasks": await slicer.map(
            task, [t for f in every for t in f.completed_tasks]),
    }
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
