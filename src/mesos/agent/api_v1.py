"""``POST /api/v1`` on the agent: the v1 Operator API (agent calls, JSON).

What is answered: the informational calls (GET_HEALTH, GET_FLAGS, GET_VERSION,
GET_METRICS, GET_LOGGING_LEVEL, SET_LOGGING_LEVEL), the sandbox files (LIST_FILES,
READ_FILE, the same paths and checks as ``/files``), the state (GET_STATE,
GET_FRAMEWORKS, GET_EXECUTORS, GET_TASKS, GET_AGENT, GET_CONTAINERS, and the empty
GET_OPERATIONS and GET_RESOURCE_PROVIDERS), and the nested containers of an
executor's container: LAUNCH_NESTED_CONTAINER_SESSION, LAUNCH_NESTED_CONTAINER and
LAUNCH_CONTAINER (with a parent), ATTACH_CONTAINER_OUTPUT, ATTACH_CONTAINER_INPUT (a
streaming request), WAIT_NESTED_CONTAINER / WAIT_CONTAINER, KILL_NESTED_CONTAINER /
KILL_CONTAINER and REMOVE_NESTED_CONTAINER / REMOVE_CONTAINER.

Status codes follow Mesos' agent: 405 for anything but POST, 400 without a
Content-Type, 415 for a body that is neither JSON nor RecordIO of JSON records
(protobuf is refused with a message saying so), 406 when the Accept header allows
neither JSON nor RecordIO, 400 for a body that does not parse or a call that does not
validate (an unknown ``type`` included: Mesos drops an unknown enum name and then finds
no type), 503 while the agent is recovering, and 501 for a call Mesos has but this
agent does not do yet, naming it.

A nested container here is a process started in its own session, in the parent
executor's sandbox and with the executor's environment, tracked by this module (not
by the core): the posix launcher has no namespaces to enter, so "inside the container"
means the same sandbox, environment and user. Its session ends when the command exits,
when the client goes away, when it is killed, or when its parent executor ends; the
exit status is kept (the last ``MAX_ENDED`` of them) for WAIT_NESTED_CONTAINER, until
REMOVE_NESTED_CONTAINER forgets it (and deletes its sandbox, if it has one). A
session's stdin is a pipe that ATTACH_CONTAINER_INPUT writes to (an empty DATA record
closes it), as Mesos' I/O switchboard does. LAUNCH_NESTED_CONTAINER starts the same kind
of process without a session: no stdin, its output in ``stdout``/``stderr`` of its own
sandbox (``containers/<id>`` in the parent's), and it lives until it exits, is killed,
or its parent ends.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiohttp import ClientPayloadError, StreamReader, web
from aiohttp.http_exceptions import HttpProcessingError

from mesos import __version__
from mesos.agent import api_operator, files, launcher, paths
from mesos.agent.keys import AGENT
from mesos.agent.state import Executor, Framework, v1_task
from mesos.http import responses
from mesos.http.files import file_info_v1
from mesos.v1 import codec, recordio
from mesos.v1 import mesos as v1

if TYPE_CHECKING:
    from mesos.agent.service import Agent

__all__ = [
    "CALLS",
    "USAGE",
    "AgentUsage",
    "ContainerView",
    "LoggingLevel",
    "NestedContainers",
    "ProcUsage",
    "UsageProvider",
    "add_routes",
    "glog_to_python",
    "operator_api",
]

log = logging.getLogger("mesos.agent.api")

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
RECORDIO = "application/recordio"

# Every agent call type of Mesos' v1 agent.proto.
CALLS = frozenset({
    "UNKNOWN", "GET_HEALTH", "GET_FLAGS", "GET_VERSION", "GET_METRICS", "GET_LOGGING_LEVEL",
    "SET_LOGGING_LEVEL", "LIST_FILES", "READ_FILE", "GET_STATE", "GET_CONTAINERS",
    "GET_FRAMEWORKS", "GET_EXECUTORS", "GET_OPERATIONS", "GET_TASKS", "GET_AGENT",
    "GET_RESOURCE_PROVIDERS", "LAUNCH_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER",
    "KILL_NESTED_CONTAINER", "REMOVE_NESTED_CONTAINER", "LAUNCH_NESTED_CONTAINER_SESSION",
    "ATTACH_CONTAINER_INPUT", "ATTACH_CONTAINER_OUTPUT", "LAUNCH_CONTAINER", "WAIT_CONTAINER",
    "KILL_CONTAINER", "REMOVE_CONTAINER", "ADD_RESOURCE_PROVIDER_CONFIG",
    "UPDATE_RESOURCE_PROVIDER_CONFIG", "REMOVE_RESOURCE_PROVIDER_CONFIG",
    "MARK_RESOURCE_PROVIDER_GONE", "PRUNE_IMAGES",
})
# The calls whose answer may be a stream (Accept: application/recordio).
STREAMING = frozenset({"LAUNCH_NESTED_CONTAINER_SESSION", "ATTACH_CONTAINER_OUTPUT"})

# Mesos' --http_heartbeat_interval default: CONTROL HEARTBEAT records on output streams.
HEARTBEAT_INTERVAL = 30.0
# How often a session checks that its parent executor is still there.
PARENT_POLL = 1.0
# How long a session's output may still come once its command has exited.
DRAIN_GRACE = 2.0
# Exit statuses of ended nested containers kept for WAIT_NESTED_CONTAINER.
MAX_ENDED = 1000
# How often ATTACH_CONTAINER_OUTPUT on an executor looks for new sandbox output.
TAIL_POLL = 0.25


class CallError(Exception):
    """A call refused with ``status``; the message is the body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _invalid(message: str) -> CallError:
    return CallError(400, f"Failed to validate agent::Call: {message}")


def _malformed(message: str) -> CallError:
    return CallError(400, f"Failed to convert JSON into Call protobuf: {message}")


# ---------------------------------------------------------------------- logging levels


def glog_to_python(verbosity: int, base: int) -> int:
    """The Python logging level for glog verbosity ``verbosity``.

    Verbosity 0 is the level the agent was started with (``--logging_level``); 1 is
    DEBUG; each step above lowers the threshold by one more (2 -> 9, 3 -> 8, ...,
    floored at 1), so higher verbosities let ever finer ``log.log(level, ...)`` calls
    through. A verbose level never hides what the base level showed.
    """
    if verbosity <= 0:
        return base
    return min(base, max(1, logging.DEBUG - (verbosity - 1)))


class LoggingLevel:
    """The process's glog-style verbosity, applied to the root logger.

    As libprocess: a level other than the original (0) is reverted after its
    duration; setting a new level replaces the pending revert. Process-wide, like
    glog's FLAGS_v.
    """

    def __init__(self) -> None:
        self.level = 0
        self._base: int | None = None
        self._revert: asyncio.TimerHandle | None = None

    def set(self, level: int, duration: float) -> None:
        root = logging.getLogger()
        if self._base is None:  # what --logging_level configured, before any change
            self._base = root.level
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        self.level = level
        root.setLevel(glog_to_python(level, self._base))
        log.info("Logging verbosity set to %d for %.3gs", level, duration)
        if level != 0:
            self._revert = asyncio.get_running_loop().call_later(duration, self._back)

    def _back(self) -> None:
        self._revert = None
        self.level = 0
        if self._base is not None:
            logging.getLogger().setLevel(self._base)
        log.info("Logging verbosity reverted to 0")


LOGGING = LoggingLevel()


# ---------------------------------------------------------------------- usage


@dataclasses.dataclass(frozen=True)
class ContainerView:
    """What a usage provider is told about one container."""

    container_id: tuple[str, ...]  # root first: (executor container, nested, ...)
    pid: int | None  # the first process of the container, when running
    cpus_limit: float | None
    mem_limit_bytes: int | None
    executor: Executor | None  # whose container it is; None for a nested one


class UsageProvider(Protocol):
    """Where GET_CONTAINERS gets ``resource_statistics`` (ResourceStatistics fields;
    None when there are none now). Swap it with ``add_routes(app, usage=...)``."""

    async def usage(self, agent: Agent, container: ContainerView) -> dict[str, Any] | None: ...


def _proc_table() -> dict[int, tuple[int, float, float, int, int]]:
    """pid -> (ppid, utime secs, stime secs, rss bytes, threads) of every process."""
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    table: dict[int, tuple[int, float, float, int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            continue
        rest = text[text.rfind(")") + 2:].split()
        if len(rest) < 22 or rest[0] == "Z":
            continue
        table[int(entry)] = (int(rest[1]), int(rest[11]) / ticks, int(rest[12]) / ticks,
                             int(rest[21]) * page, int(rest[17]))
    return table


def tree_statistics(root: int) -> dict[str, Any] | None:
    """Summed cpu times, rss, processes and threads of ``root`` and its descendants
    (blocking: scans /proc). None when ``root`` is gone."""
    table = _proc_table()
    if root not in table:
        return None
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, row in table.items():
        children[row[0]].append(pid)
    user = system = 0.0
    rss = threads = processes = 0
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        _, utime, stime, resident, nthreads = table[pid]
        user += utime
        system += stime
        rss += resident
        threads += nthreads
        processes += 1
        todo.extend(children.get(pid, []))
    return {"processes": processes, "threads": threads, "cpus_user_time_secs": user,
            "cpus_system_time_secs": system, "mem_rss_bytes": rss}


class ProcUsage:
    """Usage from /proc over the container's process tree, limits from its resources.

    A process that left the tree (``setsid`` + re-parented to init) is not counted:
    the posix blind spot that cgroups remove.
    """

    async def usage(self, agent: Agent, container: ContainerView) -> dict[str, Any] | None:
        out: dict[str, Any] = {"timestamp": time.time()}
        if container.pid is not None:
            tree = await asyncio.to_thread(tree_statistics, container.pid)
            if tree is not None:
                out.update(tree)
        if container.cpus_limit is not None:
            out["cpus_limit"] = container.cpus_limit
        if container.mem_limit_bytes is not None:
            out["mem_limit_bytes"] = container.mem_limit_bytes
        return out


class AgentUsage:
    """The default: an executor's container as the agent's containerizer measures it
    (the same numbers as ``/monitor/statistics``: posix isolators or cgroups), and a
    nested container, which the containerizer does not know, by its /proc tree."""

    def __init__(self) -> None:
        self.proc = ProcUsage()

    async def usage(self, agent: Agent, container: ContainerView) -> dict[str, Any] | None:
        if container.executor is None:
            return await self.proc.usage(agent, container)
        return await agent.container_usage(container.executor)


# The names of ResourceStatistics' integer fields (the others are doubles).
_INT_STATS = ("processes", "threads", "cpus_nr_periods", "cpus_nr_throttled")
_INT_SUFFIXES = ("_bytes", "_packets", "_errors", "_drops", "_counter")


def _statistics_json(stats: dict[str, Any]) -> dict[str, Any]:
    """Integer fields as JSON integers, as Mesos prints them (providers may give floats)."""
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, float) and value.is_integer() and (
                key in _INT_STATS or key.endswith(_INT_SUFFIXES)):
            value = int(value)
        out[key] = value
    return out


USAGE: web.AppKey[UsageProvider] = web.AppKey("agent_usage")


# ---------------------------------------------------------------------- nested containers


@dataclasses.dataclass(eq=False)
class Nested:
    """One nested container: a session of processes under an executor's container."""

    key: tuple[str, ...]
    framework_id: str
    executor_id: str
    process: asyncio.subprocess.Process
    done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    exit_status: int | None = None
    message: str | None = None
    # ATTACH_CONTAINER_OUTPUT clients: each gets every ProcessIO record, then None.
    listeners: list[asyncio.Queue[bytes | None]] = dataclasses.field(default_factory=list)
    # Launched by LAUNCH_NESTED_CONTAINER_SESSION: output streamed, stdin a pipe. False
    # for LAUNCH_NESTED_CONTAINER / LAUNCH_CONTAINER (output in files, no stdin).
    session: bool = True
    # Where ATTACH_CONTAINER_INPUT writes; None once closed (EOF sent, or the end).
    stdin: asyncio.StreamWriter | None = None
    # An ATTACH_CONTAINER_INPUT stream is open: Mesos allows one at a time.
    input_attached: bool = False
    # Without a session: its own sandbox, where its stdout and stderr files are.
    sandbox: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.key)

    def close_stdin(self) -> None:
        """Send EOF to the container's stdin (once; later calls do nothing)."""
        if self.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                self.stdin.close()
            self.stdin = None


class NestedContainers:
    """The agent's nested containers: running ones, and the last ended ones."""

    def __init__(self) -> None:
        # Set when the agent stops serving: output streams end instead of holding the
        # HTTP server's shutdown up.
        self.closing = asyncio.Event()
        self.live: dict[tuple[str, ...], Nested] = {}
        self.ended: collections.OrderedDict[tuple[str, ...], Nested] = collections.OrderedDict()
        # The watchers of containers launched without a session (kept from being
        # garbage-collected while they run).
        self.watchers: set[asyncio.Task[None]] = set()
        # Ids being launched right now, each with an event set once its launch is over
        # (launched or failed): a second launch of one is ALREADY_LAUNCHED, and WAIT,
        # KILL and REMOVE of one first wait for that.
        self.launching: dict[tuple[str, ...], asyncio.Event] = {}

    def running(self, key: tuple[str, ...]) -> bool:
        """Whether ``key`` runs or is being launched (a launch of it answers 202)."""
        return key in self.live or key in self.launching

    def find(self, key: tuple[str, ...]) -> Nested | None:
        return self.live.get(key) or self.ended.get(key)

    def begin_launch(self, key: tuple[str, ...]) -> None:
        """``key`` is being launched: what is kept of an earlier container of that id
        goes now, so a WAIT from here on is for the new one."""
        self.ended.pop(key, None)
        self.launching[key] = asyncio.Event()

    def end_launch(self, key: tuple[str, ...]) -> None:
        event = self.launching.pop(key, None)
        if event is not None:
            event.set()

    async def settled(self, key: tuple[str, ...]) -> None:
        """Return once ``key`` is not being launched (bounded by the launches' own end)."""
        while (event := self.launching.get(key)) is not None:
            await event.wait()

    def finish(self, nested: Nested) -> None:
        if self.live.get(nested.key) is nested:
            del self.live[nested.key]
        self.ended[nested.key] = nested
        nested.close_stdin()
        while len(self.ended) > MAX_ENDED:
            self.ended.popitem(last=False)
        for queue in nested.listeners:
            queue.put_nowait(None)
        nested.done.set()

    async def kill_all(self) -> None:
        """Kill every running nested container (the agent is going away). A launch under
        way sees ``closing`` once its process runs and kills it itself; the watchers of
        containers launched without a session are cancelled (each kills its container)
        and awaited, so none outlives the agent."""
        self.closing.set()
        pids = [n.process.pid for n in self.live.values() if n.process.returncode is None]
        for pid in pids:
            await asyncio.to_thread(launcher.kill_session, pid)
        watchers = list(self.watchers)
        for watcher in watchers:
            watcher.cancel()
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)


NESTED: web.AppKey[NestedContainers] = web.AppKey("agent_nested", NestedContainers)


def _process_io(kind: str, data: bytes) -> bytes:
    """One ProcessIO DATA record (framed), as Mesos' io switchboard sends it."""
    return codec.encode_record({"type": "DATA", "data": {
        "type": kind, "data": base64.b64encode(data).decode("ascii")}})


def _heartbeat(interval: float) -> bytes:
    return codec.encode_record({"type": "CONTROL", "control": {
        "type": "HEARTBEAT", "heartbeat": {"interval": {"nanoseconds": int(interval * 1e9)}}}})


# ---------------------------------------------------------------------- request parsing


def _accepts(header: str | None, media: str) -> bool:
    """Whether an Accept-style header allows ``media`` (absent allows everything)."""
    if not header:
        return True
    major = media.split("/")[0]
    for part in header.split(","):
        fields = [f.strip() for f in part.split(";")]
        if any(f.replace(" ", "") in ("q=0", "q=0.0") for f in fields[1:]):
            continue
        if fields[0] in (media, "*/*", f"{major}/*"):
            return True
    return False


def _sub(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The call's sub-message ``name``, required as Mesos' validation requires it."""
    sub = body.get(name)
    if sub is None:
        raise _invalid(f"Expecting '{name}' to be present")
    if not isinstance(sub, dict):
        raise _malformed(f"'{name}' must be a JSON object")
    return sub


def _int(value: Any, where: str, *, minimum: int | None = None) -> int:
    """A protobuf integer as JSON gives it: a number, or a numeric string."""
    if isinstance(value, bool):
        raise _malformed(f"'{where}' must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _malformed(f"'{where}' must be an integer, not {value!r}") from None
    if not isinstance(value, int):
        raise _malformed(f"'{where}' must be an integer")
    if minimum is not None and value < minimum:
        raise _malformed(f"'{where}' must be at least {minimum}, not {value}")
    return value


def _duration(obj: Any, where: str) -> float:
    """A DurationInfo ``{"nanoseconds": N}`` in seconds."""
    if not isinstance(obj, dict) or "nanoseconds" not in obj:
        raise _malformed(f"Missing required fields: {where}.nanoseconds")
    return _int(obj["nanoseconds"], f"{where}.nanoseconds") / 1e9


def _container_id(obj: Any, where: str) -> tuple[str, ...]:
    """A ContainerID as a root-first tuple of values, checked as Mesos checks it."""
    if not isinstance(obj, dict):
        raise _malformed(f"Missing required fields: {where}")
    value = obj.get("value")
    if not isinstance(value, str):
        raise _malformed(f"Missing required fields: {where}.value")
    problem = paths.id_error(value)
    if problem is None and any(c in ". " for c in value):
        problem = f"'ContainerID.value' '{value}' contains invalid characters"
    if problem is not None:
        raise _invalid(f"'{where}' is invalid: {problem}")
    parent = obj.get("parent")
    if parent is None:
        return (value,)
    return (*_container_id(parent, f"{where}.parent"), value)


def _nested_id(body: dict[str, Any], call: str) -> tuple[str, ...]:
    name = call.lower()
    key = _container_id(_sub(body, name).get("container_id"), f"{name}.container_id")
    if len(key) < 2:
        raise _invalid(f"Expecting '{name}.container_id.parent' to be present")
    return key


def _id_json(key: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"value": key[-1]}
    if len(key) > 1:
        out["parent"] = _id_json(key[:-1])
    return out


# ---------------------------------------------------------------------- views


def _ok(call: str, payload: Any = None) -> web.Response:
    body: dict[str, Any] = {"type": call}
    if payload is not None:
        body[call.lower()] = payload
    return web.Response(body=codec.encode(body), content_type=JSON)


def _compact(payload: dict[str, Any]) -> dict[str, Any]:
    """Leave out empty repeated fields, as Mesos' JSON does."""
    return {k: v for k, v in payload.items() if v != []}


def _all_frameworks(agent: Agent) -> list[Framework]:
    return [*agent.core.frameworks.values(), *agent.core.completed_frameworks]


def get_frameworks(agent: Agent) -> dict[str, Any]:
    core = agent.core
    return _compact({
        "frameworks": [{"framework_info": codec.to_builtins(f.info)}
                       for f in core.frameworks.values()],
        "completed_frameworks": [{"framework_info": codec.to_builtins(f.info)}
                                 for f in core.completed_frameworks],
    })


def get_executors(agent: Agent) -> dict[str, Any]:
    live: list[dict[str, Any]] = []
    completed: list[dict[str, Any]] = []
    for framework in _all_frameworks(agent):
        live.extend({"executor_info": codec.to_builtins(e.info)}
                    for e in framework.executors.values())
        completed.extend({"executor_info": codec.to_builtins(e.info)}
                         for e in framework.completed_executors)
    return _compact({"executors": live, "completed_executors": completed})


def get_tasks(agent: Agent) -> dict[str, Any]:
    """Queued (waiting for their executor), launched, terminated (awaiting the
    acknowledgement of their terminal update) and completed tasks, as v1 ``Task``; an
    update still unacknowledged shows as ``status_update_state``/``_uuid``, as in Mesos."""
    agent_id = agent.core.agent_info.id
    out: dict[str, list[dict[str, Any]]] = {
        "queued_tasks": [], "launched_tasks": [], "terminated_tasks": [], "completed_tasks": []}
    for framework in _all_frameworks(agent):
        for executor in [*framework.executors.values(), *framework.completed_executors]:
            cmd = executor.command_executor
            for name, tasks in (("queued_tasks", executor.queued_tasks()),
                                ("launched_tasks", list(executor.launched.values())),
                                ("terminated_tasks", list(executor.terminated.values())),
                                ("completed_tasks", list(executor.completed))):
                out[name].extend(codec.to_builtins(v1_task(
                    t, cmd, agent_id, agent.updates.head(t.framework_id, t.id)))
                    for t in tasks)
    return _compact(out)


def get_state(agent: Agent) -> dict[str, Any]:
    return {"get_tasks": get_tasks(agent), "get_executors": get_executors(agent),
            "get_frameworks": get_frameworks(agent)}


def get_agent(agent: Agent) -> dict[str, Any]:
    info: dict[str, Any] = codec.to_builtins(agent.core.agent_info)
    info["resources"] = agent.resources.to_json()
    info["port"] = agent.core.agent_info.port  # a defaulted field Mesos always prints
    return {"agent_info": info}


def _executor_pid(agent: Agent, executor: Executor) -> int | None:
    if executor.pid is not None:
        return executor.pid
    process = agent.processes.get(executor.container_id)
    if process is not None:
        return process.pid
    return agent.recovered_pids.get(executor.container_id)


def _live_executor(agent: Agent, container_id: str) -> Executor | None:
    for executor in agent.core.executors():
        if executor.container_id == container_id and executor.state != "TERMINATED":
            return executor
    return None


async def get_containers(agent: Agent, nested: NestedContainers, provider: UsageProvider,
                         show_nested: bool) -> dict[str, Any]:
    entries: list[tuple[dict[str, Any], ContainerView]] = []
    for executor in agent.core.executors():
        if executor.state == "TERMINATED":
            continue
        pid = _executor_pid(agent, executor)
        held = api_operator.container_resources(executor)
        mem = held.scalar("mem")
        view = ContainerView((executor.container_id,), pid, held.scalar("cpus") or None,
                             int(mem * 1024 * 1024) if mem else None, executor)
        status: dict[str, Any] = {"container_id": {"value": executor.container_id}}
        if pid is not None:
            status["executor_pid"] = pid
        entries.append(({
            "framework_id": {"value": executor.framework_id},
            "executor_id": {"value": executor.id},
            "executor_name": executor.info.name or "",
            "container_id": {"value": executor.container_id},
            "container_status": status,
        }, view))
    if show_nested:
        for child in list(nested.live.values()):
            cid = _id_json(child.key)
            entries.append(({"container_id": cid, "container_status": {
                "container_id": cid, "executor_pid": child.process.pid}},
                ContainerView(child.key, child.process.pid, None, None, None)))
    stats = await asyncio.gather(*(provider.usage(agent, view) for _, view in entries),
                                 return_exceptions=True)
    containers = []
    for (entry, view), usage in zip(entries, stats, strict=True):
        if isinstance(usage, BaseException):  # as Mesos: the entry, without statistics
            log.warning("Failed to get the usage of container %s: %s",
                        ".".join(view.container_id), usage)
        elif usage is not None:
            entry["resource_statistics"] = _statistics_json(usage)
        containers.append(entry)
    return _compact({"containers": containers})


def _list_files(real: str, requested: str) -> list[dict[str, Any]]:
    """A directory's entries, or the file itself (as Mesos' browse does)."""
    st = os.stat(real)
    if not stat.S_ISDIR(st.st_mode):
        return [file_info_v1(requested, st)]
    return [file_info_v1(p, s) for p, s in files.dir_entries(real, requested.rstrip("/"))]


def _read(real: str, offset: int, length: int) -> tuple[int, bytes]:
    size = os.stat(real).st_size
    data, _ = files.read_file(real, offset, length)
    return size, data


# ---------------------------------------------------------------------- handlers


# The largest ATTACH_CONTAINER_INPUT record taken (the Mesos CLI sends 1 KiB ones, ours
# 64 KiB ones): a record is decoded on the event loop, so it must stay small.
MAX_INPUT_RECORD = 1024 * 1024


class RecordReader:
    """The records of a streaming request's body (RecordIO), read as they arrive: an
    ATTACH_CONTAINER_INPUT body lasts as long as the client types."""

    def __init__(self, stream: StreamReader) -> None:
        self._stream = stream
        self._decoder = recordio.Decoder()
        self._ready: collections.deque[bytes] = collections.deque()

    async def next(self) -> bytes | None:
        """The next record; None where the body ends. Broken framing is a 400."""
        while not self._ready:
            try:
                piece = await self._stream.readany()
            except (OSError, ClientPayloadError, HttpProcessingError) as exc:
                # The client went away mid-body (reset, or chunked framing cut short):
                # the stream has ended, there is nobody left to answer.
                log.debug("A streaming request's body ended early: %s", exc)
                return None
            if not piece:
                if self._decoder.in_record:
                    raise CallError(400, "Failed to decode the request body: it ends inside "
                                         "a RecordIO record")
                return None
            try:
                self._ready.extend(self._decoder.feed(piece))
            except recordio.RecordIOError as exc:
                raise CallError(400, f"Failed to decode the request body: {exc}") from None
            if self._decoder.buffered > MAX_INPUT_RECORD:
                raise CallError(413, f"A request record is larger than {MAX_INPUT_RECORD} bytes")
        return self._ready.popleft()


@dataclasses.dataclass(frozen=True)
class Media:
    streaming: bool  # the answer may be RecordIO (Accept: application/recordio)
    # A streaming request (Content-Type: application/recordio): its records after the
    # first, which is the call itself.
    records: RecordReader | None = None


Handler = Callable[[web.Request, "Agent", dict[str, Any], Media], Awaitable[web.StreamResponse]]


async def _get_health(request: web.Request, agent: Agent, body: dict[str, Any],
                      media: Media) -> web.StreamResponse:
    return _ok("GET_HEALTH", {"healthy": True})


async def _get_flags(request: web.Request, agent: Agent, body: dict[str, Any],
                     media: Media) -> web.StreamResponse:
    flags = [{"name": k, "value": v} for k, v in sorted(agent.flags.as_dict().items())]
    return _ok("GET_FLAGS", _compact({"flags": flags}))


async def _get_version(request: web.Request, agent: Agent, body: dict[str, Any],
                       media: Media) -> web.StreamResponse:
    return _ok("GET_VERSION", {"version_info": {"version": __version__, **api_operator.BUILD}})


async def _get_metrics(request: web.Request, agent: Agent, body: dict[str, Any],
                       media: Media) -> web.StreamResponse:
    # Mesos requires 'get_metrics' (even empty); a snapshot here never waits, so a
    # missing one is let through and a timeout is only checked.
    sub = body.get("get_metrics")
    if sub is not None:
        if not isinstance(sub, dict):
            raise _malformed("'get_metrics' must be a JSON object")
        if sub.get("timeout") is not None and _duration(sub["timeout"], "get_metrics.timeout") < 0:
            raise _invalid("'get_metrics.timeout' must not be negative")
    metrics = [{"name": k, "value": v}
               for k, v in sorted(api_operator.metrics_json(agent).items())]
    return _ok("GET_METRICS", _compact({"metrics": metrics}))


async def _get_logging_level(request: web.Request, agent: Agent, body: dict[str, Any],
                             media: Media) -> web.StreamResponse:
    return _ok("GET_LOGGING_LEVEL", {"level": LOGGING.level})


async def _set_logging_level(request: web.Request, agent: Agent, body: dict[str, Any],
                             media: Media) -> web.StreamResponse:
    sub = _sub(body, "set_logging_level")
    if sub.get("level") is None:
        raise _malformed("Missing required fields: set_logging_level.level")
    level = _int(sub["level"], "set_logging_level.level", minimum=0)
    duration = _duration(sub.get("duration"), "set_logging_level.duration")
    if duration < 0:
        raise _invalid("'set_logging_level.duration' must not be negative")
    LOGGING.set(min(level, 2**32 - 1), duration)
    return web.Response(status=200)


def _files_path(sub: dict[str, Any], where: str) -> str:
    path = sub.get("path")
    if not isinstance(path, str):
        raise _malformed(f"Missing required fields: {where}.path")
    return path


async def _resolve(agent: Agent, path: str) -> str:
    try:
        return await asyncio.to_thread(
            files.resolve, agent.core.config.work_dir, agent.core.agent_id, path)
    except files.FilesError as exc:
        raise CallError(exc.status, str(exc)) from None


async def _list_files_call(request: web.Request, agent: Agent, body: dict[str, Any],
                           media: Media) -> web.StreamResponse:
    path = _files_path(_sub(body, "list_files"), "list_files")
    real = await _resolve(agent, path)
    try:
        infos = await asyncio.to_thread(_list_files, real, path)
    except OSError as exc:
        raise CallError(500, f"Failed to browse '{path}': {exc.strerror or exc}") from None
    return _ok("LIST_FILES", _compact({"file_infos": infos}))


async def _read_file_call(request: web.Request, agent: Agent, body: dict[str, Any],
                          media: Media) -> web.StreamResponse:
    sub = _sub(body, "read_file")
    path = _files_path(sub, "read_file")
    if sub.get("offset") is None:
        raise _malformed("Missing required fields: read_file.offset")
    offset = _int(sub["offset"], "read_file.offset", minimum=0)
    length = -1
    if sub.get("length") is not None:
        length = _int(sub["length"], "read_file.length", minimum=0)
    real = await _resolve(agent, path)
    try:
        size, data = await asyncio.to_thread(_read, real, offset, length)
    except files.FilesError as exc:
        raise CallError(exc.status, str(exc)) from None
    except OSError as exc:
        raise CallError(500, f"Failed to read '{path}': {exc.strerror or exc}") from None
    return _ok("READ_FILE", {"size": size, "data": base64.b64encode(data).decode("ascii")})


def _reader(fn: Callable[[Agent], dict[str, Any]], call: str) -> Handler:
    async def handle(request: web.Request, agent: Agent, body: dict[str, Any],
                     media: Media) -> web.StreamResponse:
        return _ok(call, fn(agent))
    return handle


async def _get_containers_call(request: web.Request, agent: Agent, body: dict[str, Any],
                               media: Media) -> web.StreamResponse:
    sub = body.get("get_containers")
    show_nested = False
    if isinstance(sub, dict):
        show_nested = sub.get("show_nested") in (True, "true")
    payload = await get_containers(agent, request.app[NESTED], request.app[USAGE], show_nested)
    return _ok("GET_CONTAINERS", payload)


async def _empty(request: web.Request, agent: Agent, body: dict[str, Any],
                 media: Media) -> web.StreamResponse:
    """GET_OPERATIONS / GET_RESOURCE_PROVIDERS: this agent has none of either."""
    return _ok(str(body["type"]), {})


def _no_tty(sub: dict[str, Any]) -> None:
    """A launch's ``container`` (ContainerInfo) asking for a tty is refused, as Mesos
    refuses a ContainerInfo it cannot honour: here stdin and stdout are pipes."""
    container = sub.get("container")
    if isinstance(container, dict) and container.get("tty_info") is not None:
        raise CallError(400, "The provided ContainerInfo is not supported: this agent "
                             "gives nested containers no tty ('tty_info' is set)")


def _command(sub: dict[str, Any], where: str) -> v1.CommandInfo:
    raw = sub.get("command")
    if raw is None:
        raise _invalid(f"Expecting '{where}.command' to be present")
    try:
        command = codec.decode_obj(raw, v1.CommandInfo)
    except Exception as exc:  # msgspec/codec validation: the message names the field
        raise _malformed(f"{where}.command: {exc}") from None
    if not command.value:
        raise _invalid(f"'{where}.command' is invalid: Expecting 'value' to be present")
    return command


def _session_env(agent: Agent, executor: Executor, command: v1.CommandInfo,
                 sandbox: str | None = None) -> dict[str, str]:
    """The executor's environment, plus the variables the command itself names;
    ``MESOS_SANDBOX`` is ``sandbox`` when given (the executor's otherwise)."""
    framework = agent.core.frameworks.get(executor.framework_id)
    info = framework.info if framework is not None else v1.FrameworkInfo(
        user="", name="", id=v1.FrameworkID(value=executor.framework_id))
    env = launcher.executor_environment(agent.executor_env, executor.info, info,
                                        sandbox or executor.directory, executor.role,
                                        os.environ)
    if command.environment is not None:
        for variable in command.environment.variables:
            if variable.type in (None, "VALUE") and variable.value is not None:
                env[variable.name] = variable.value
    return env


async def _spawn(command: v1.CommandInfo, cwd: str, env: dict[str, str],
                 stdin: int = asyncio.subprocess.PIPE, stdout: int = asyncio.subprocess.PIPE,
                 stderr: int = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    """Start ``command`` in a session of its own (pipes unless file descriptors are given)."""
    assert command.value is not None
    if command.shell:
        program, args, executable = "/bin/sh", ["-c", command.value], None
    else:
        argv = command.arguments or [command.value]
        program, args, executable = argv[0], argv[1:], command.value
    try:
        return await asyncio.create_subprocess_exec(
            program, *args, executable=executable, stdin=stdin, stdout=stdout,
            stderr=stderr, cwd=cwd, env=env, start_new_session=True)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CallError(400, f"Failed to launch container: {reason}: '{command.value}'") from None


async def _pump(stream: asyncio.StreamReader, kind: str,
                out: asyncio.Queue[bytes | None]) -> None:
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            break
        out.put_nowait(_process_io(kind, chunk))
    out.put_nowait(None)


async def _stream_response(request: web.Request, media: Media) -> web.StreamResponse:
    if media.streaming:
        headers = {"Content-Type": RECORDIO, "Message-Content-Type": JSON}
    else:
        headers = {"Content-Type": JSON}
    response = web.StreamResponse(status=200, headers=headers)
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


def _admit_launch(registry: NestedContainers, agent: Agent,
                  key: tuple[str, ...]) -> Executor | None:
    """What every nested launch checks first: the agent is not stopping and the parent
    is known; ``None`` when ``key`` runs already (Mesos' ALREADY_LAUNCHED). Otherwise
    ``key`` is marked as launching and its parent executor returned."""
    if registry.closing.is_set():
        raise CallError(503, "The agent is shutting down")
    if registry.running(key):
        return None
    executor = _parent_executor(agent, key)
    registry.begin_launch(key)
    return executor


async def _launch_session(request: web.Request, agent: Agent, body: dict[str, Any],
                          media: Media) -> web.StreamResponse:
    call = "launch_nested_container_session"
    key = _nested_id(body, "LAUNCH_NESTED_CONTAINER_SESSION")
    command = _command(body[call], call)
    _no_tty(body[call])
    registry = request.app[NESTED]
    executor = _admit_launch(registry, agent, key)
    if executor is None:
        return web.Response(status=202)  # Mesos: ALREADY_LAUNCHED
    try:
        process = await _spawn(command, executor.directory,
                               _session_env(agent, executor, command))
        # Its stdin stays open until an ATTACH_CONTAINER_INPUT sends EOF (or it ends),
        # as behind Mesos' I/O switchboard.
        nested = Nested(key, executor.framework_id, executor.id, process,
                        stdin=process.stdin)
        registry.live[key] = nested
    finally:
        registry.end_launch(key)
    if registry.closing.is_set():  # the agent began stopping while this one started
        await _abandon(registry, nested)
    log.info("Launched nested container %s (session %d) in the sandbox of executor '%s' of "
             "framework %s", nested.name, process.pid, executor.id, executor.framework_id)
    return await _run_session(request, agent, registry, nested, executor, media)


def _parent_executor(agent: Agent, key: tuple[str, ...]) -> Executor:
    """The running executor whose container is ``key``'s parent; 400 as Mesos when
    there is none (here only executor containers can be parents)."""
    executor = _live_executor(agent, key[0]) if len(key) == 2 else None
    if executor is None:
        raise CallError(400, f"Failed to launch container: Parent container "
                             f"{'.'.join(key[:-1])} does not exist" + (
                                 "" if len(key) == 2 else
                                 " (only executor containers can be parents here)"))
    return executor


# Why LAUNCH_CONTAINER without a parent is refused (a 501 naming it).
STANDALONE_REFUSAL = (
    "Standalone containers (LAUNCH_CONTAINER without 'container_id.parent') are not "
    "supported by this agent: its containers without an executor are nested ones, which "
    "take their sandbox, environment, user and lifetime from the parent executor; a "
    "standalone one would need its own sandbox, resource accounting, checkpointing and "
    "recovery, which this agent does not have. Launch it under an executor's container "
    "(set 'container_id.parent')")


@dataclasses.dataclass
class _Sandbox:
    """A nested container's sandbox as prepared for its launch."""

    directory: str
    created: bool  # by this launch (so a failed launch leaves nothing behind)
    out: int
    err: int

    def close(self) -> None:
        for fd in (self.out, self.err):
            with contextlib.suppress(OSError):
                os.close(fd)


def _nested_sandbox(parent: str, child: str) -> _Sandbox:
    """Create the sandbox of a container launched without a session (Mesos' place:
    ``containers/<id>`` in the parent's) and open its stdout and stderr for appending
    (blocking). The caller closes both descriptors."""
    directory = os.path.join(parent, "containers", child)
    created = not os.path.isdir(directory)
    os.makedirs(directory, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
    try:
        out = os.open(os.path.join(directory, "stdout"), flags, 0o644)
        try:
            err = os.open(os.path.join(directory, "stderr"), flags, 0o644)
        except OSError:
            os.close(out)
            raise
    except OSError:
        if created:
            _remove_sandbox(directory)
        raise
    return _Sandbox(directory, created, out, err)


def _remove_sandbox(directory: str) -> None:
    """Delete a nested container's sandbox (blocking), as Mesos' REMOVE does."""
    shutil.rmtree(directory, ignore_errors=True)


async def _prepare_sandbox(parent: str, child: str) -> _Sandbox:
    """:func:`_nested_sandbox` on a worker thread. Should the launch be cancelled
    meanwhile, the descriptors it opens are closed once it is done, not leaked."""
    prepare = asyncio.ensure_future(asyncio.to_thread(_nested_sandbox, parent, child))
    try:
        return await asyncio.shield(prepare)
    except asyncio.CancelledError:
        def close(done: asyncio.Future[_Sandbox]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result().close()

        prepare.add_done_callback(close)
        raise


async def _off_loop(fn: Callable[[int], object], pid: int) -> None:
    """``fn(pid)`` on a worker thread; on the loop itself where none can be had any
    more (the loop is shutting down)."""
    try:
        await asyncio.to_thread(fn, pid)
    except RuntimeError:
        fn(pid)


async def _abandon(registry: NestedContainers, nested: Nested) -> None:
    """A launch that completed once the agent had begun stopping (``kill_all`` did not
    see it): kill it, keep it as ended, and answer 503."""
    log.info("Destroying nested container %s: the agent is shutting down", nested.name)
    nested.message = "The agent is shutting down"
    await _off_loop(launcher.kill_session, nested.process.pid)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(_exited(nested.process), 10.0)
    if nested.process.returncode is not None:
        nested.exit_status = launcher.wait_status(nested.process.returncode)
    registry.finish(nested)
    raise CallError(503, "The agent is shutting down")


async def _launch_nested(request: web.Request, agent: Agent, body: dict[str, Any],
                         media: Media) -> web.StreamResponse:
    """LAUNCH_NESTED_CONTAINER, and LAUNCH_CONTAINER with a parent: start the command
    and answer once it runs (200; 202 for an id that runs already, as Mesos'
    ALREADY_LAUNCHED). A watcher takes it to its end for WAIT_NESTED_CONTAINER."""
    call = str(body["type"])
    name = call.lower()
    key = _container_id(_sub(body, name).get("container_id"), f"{name}.container_id")
    if len(key) < 2:
        if call == "LAUNCH_CONTAINER":
            raise CallError(501, STANDALONE_REFUSAL)
        raise _invalid(f"Expecting '{name}.container_id.parent' to be present")
    command = _command(body[name], name)
    _no_tty(body[name])
    registry = request.app[NESTED]
    executor = _admit_launch(registry, agent, key)
    if executor is None:
        return web.Response(status=202)  # Mesos: ALREADY_LAUNCHED
    try:
        try:
            prepared = await _prepare_sandbox(executor.directory, key[-1])
        except OSError as exc:
            raise CallError(500, f"Failed to launch container: cannot prepare its sandbox: "
                                 f"{exc.strerror or exc}") from None
        sandbox = prepared.directory
        try:
            process = await _spawn(command, sandbox,
                                   _session_env(agent, executor, command, sandbox),
                                   stdin=asyncio.subprocess.DEVNULL, stdout=prepared.out,
                                   stderr=prepared.err)
        except BaseException:
            if prepared.created:  # nothing ran in it: leave nothing behind
                await asyncio.to_thread(_remove_sandbox, sandbox)
            raise
        finally:
            prepared.close()
        nested = Nested(key, executor.framework_id, executor.id, process, session=False,
                        sandbox=sandbox)
        registry.live[key] = nested
    finally:
        registry.end_launch(key)
    if registry.closing.is_set():  # the agent began stopping while this one started
        await _abandon(registry, nested)
    log.info("Launched nested container %s (pid %d, sandbox %s) under executor '%s' of "
             "framework %s", nested.name, process.pid, sandbox, executor.id,
             executor.framework_id)
    watcher = asyncio.create_task(_watch(agent, registry, nested, executor))
    registry.watchers.add(watcher)
    watcher.add_done_callback(registry.watchers.discard)
    return web.Response(status=200)


async def _watch(agent: Agent, registry: NestedContainers, nested: Nested,
                 executor: Executor) -> None:
    """Follow a container launched without a session to its end: it is killed when its
    parent ends, and what it left in its session goes with it; then its exit status is
    kept for WAIT_NESTED_CONTAINER."""
    process = nested.process
    exited = asyncio.ensure_future(_exited(process))
    try:
        while not exited.done():
            await asyncio.wait({exited}, timeout=PARENT_POLL)
            if not exited.done():
                await _end_if_orphaned(agent, nested, executor)
        nested.exit_status = launcher.wait_status(exited.result())
    finally:
        try:
            if exited.done():  # what it left in its session goes with it
                await _off_loop(launcher.kill_session_remains, process.pid)
            else:  # cancelled: the agent is stopping, nothing outlives it
                exited.cancel()
                await _off_loop(launcher.kill_session, process.pid)
        finally:
            registry.finish(nested)
            log.info("Nested container %s ended with wait status %s", nested.name,
                     nested.exit_status)


async def _exited(process: asyncio.subprocess.Process) -> int:
    """The returncode once ``process`` has exited. ``Process.wait()`` also waits for its
    pipes to close, which a process that escaped the session can put off forever."""
    try:
        pidfd: int | None = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # no pidfd here, or already reaped
        pidfd = None
    if pidfd is not None:
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        try:
            await exited
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
    # asyncio's child watcher reaps it just after; without a pidfd, poll gently.
    delay = 0.01 if pidfd is not None else 0.1
    while process.returncode is None:
        await asyncio.sleep(delay)
    return process.returncode


async def _end_if_orphaned(agent: Agent, nested: Nested, executor: Executor) -> None:
    """Kill ``nested`` if its parent executor has ended (Mesos destroys the children
    of a destroyed container)."""
    if _live_executor(agent, executor.container_id) is not executor \
            and nested.process.returncode is None and nested.message is None:
        nested.message = "Parent container terminated"
        log.info("Destroying nested container %s: its parent ended", nested.name)
        await asyncio.to_thread(launcher.kill_session, nested.process.pid)


async def _run_session(request: web.Request, agent: Agent, registry: NestedContainers,
                       nested: Nested, executor: Executor, media: Media) -> web.StreamResponse:
    """Stream the session's output until it ends; whatever way this ends (client gone,
    parent gone, agent stopping), the session's processes do not outlive it."""
    process = nested.process
    assert process.stdout is not None and process.stderr is not None
    records: asyncio.Queue[bytes | None] = asyncio.Queue()
    pumps = [asyncio.create_task(_pump(process.stdout, "STDOUT", records)),
             asyncio.create_task(_pump(process.stderr, "STDERR", records))]

    async def reap() -> int:
        returncode = await _exited(process)
        # Anything it left in its session goes with it (and closes our pipes).
        await asyncio.to_thread(launcher.kill_session_remains, process.pid)
        return returncode

    waiter = asyncio.create_task(reap())
    interval = HEARTBEAT_INTERVAL
    if "http_heartbeat_interval" in agent.flags:
        interval = float(agent.flags.http_heartbeat_interval)
    response: web.StreamResponse | None = None
    try:
        response = await _stream_response(request, media)
        open_pumps = len(pumps)
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + interval
        next_check = loop.time() + PARENT_POLL
        drained_by: float | None = None
        while open_pumps:
            now = loop.time()
            if waiter.done():
                # A process that escaped the session may hold our pipes open: once the
                # command is gone, what is still to come gets DRAIN_GRACE, no more.
                drained_by = drained_by if drained_by is not None else now + DRAIN_GRACE
                if now >= drained_by:
                    break
            if now >= next_check:
                next_check = now + PARENT_POLL
                await _end_if_orphaned(agent, nested, executor)
            if now >= next_beat:
                await response.write(_heartbeat(interval))
                next_beat = now + interval
            try:
                wake = min(next_check, next_beat, drained_by or next_beat)
                record = await asyncio.wait_for(records.get(),
                                                timeout=max(0.01, wake - loop.time()))
            except TimeoutError:
                continue
            if record is None:
                open_pumps -= 1
                continue
            for queue in nested.listeners:
                queue.put_nowait(record)
            await response.write(record)
        nested.exit_status = launcher.wait_status(await waiter)
        await response.write_eof()
        return response
    except ConnectionResetError:
        # The client went away (aiohttp's ClientConnectionResetError is one): the session
        # ends with it, below; nobody is left to answer, and it is no server error.
        log.info("The client of nested container %s went away", nested.name)
        if response is None:
            raise
        return response
    finally:
        if not waiter.done():
            log.info("Destroying nested container %s: its session ended early", nested.name)
            await asyncio.to_thread(launcher.kill_session, process.pid)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(waiter), 10.0)
        if nested.exit_status is None and waiter.done() and not waiter.cancelled() \
                and waiter.exception() is None:
            nested.exit_status = launcher.wait_status(waiter.result())
        for pump in pumps:
            pump.cancel()
        registry.finish(nested)
        log.info("Nested container %s ended with wait status %s", nested.name, nested.exit_status)


def _wait_payload(nested: Nested) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if nested.exit_status is not None:
        out["exit_status"] = nested.exit_status
    if nested.message:
        out["message"] = nested.message
    return out


async def _wait(request: web.Request, agent: Agent, body: dict[str, Any],
                media: Media) -> web.StreamResponse:
    call = str(body["type"])
    key = _nested_id(body, call)
    registry = request.app[NESTED]
    await registry.settled(key)  # one being launched: its launch decides what to wait for
    nested = registry.find(key)
    if nested is None:
        raise CallError(404, f"Container {'.'.join(key)} cannot be found")
    await nested.done.wait()
    return _ok(call, _wait_payload(nested))


async def _kill(request: web.Request, agent: Agent, body: dict[str, Any],
                media: Media) -> web.StreamResponse:
    call = str(body["type"])
    key = _nested_id(body, call)
    sub = body[call.lower()]
    signum: int = signal.SIGKILL
    if sub.get("signal") is not None:
        signum = _int(sub["signal"], f"{call.lower()}.signal", minimum=1)
        if signum >= signal.NSIG:
            raise _invalid(f"'{call.lower()}.signal' {signum} is not a signal")
    registry = request.app[NESTED]
    await registry.settled(key)  # one being launched is killed once it runs
    nested = registry.live.get(key)
    if nested is None or nested.process.returncode is not None:
        raise CallError(404, f"Container '{'.'.join(key)}' cannot be found (or is already killed)")
    log.info("Sending signal %d to nested container %s", signum, nested.name)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(nested.process.pid, signum)
    return web.Response(status=200)


async def _remove(request: web.Request, agent: Agent, body: dict[str, Any],
                  media: Media) -> web.StreamResponse:
    """Forget an ended nested container and delete its sandbox, as Mesos removes its
    runtime state and sandbox; one still running (or being launched) is refused with
    Mesos' failure (a 500)."""
    call = str(body["type"])
    key = _nested_id(body, call)
    registry = request.app[NESTED]
    if registry.running(key):
        raise CallError(500, "Nested container has not terminated yet")
    ended = registry.ended.pop(key, None)
    if ended is not None and ended.sandbox is not None:
        await asyncio.to_thread(_remove_sandbox, ended.sandbox)
    return web.Response(status=200)


async def _attach_output(request: web.Request, agent: Agent, body: dict[str, Any],
                         media: Media) -> web.StreamResponse:
    key = _container_id(_sub(body, "attach_container_output").get("container_id"),
                        "attach_container_output.container_id")
    registry = request.app[NESTED]
    nested = registry.live.get(key)
    if nested is not None and nested.sandbox is not None:  # launched without a session
        found = nested
        return await _attach_files(request, registry, nested.sandbox,
                                   lambda: registry.live.get(key) is found, media)
    if nested is not None:
        return await _attach_nested(request, nested, media)
    executor = _live_executor(agent, key[0]) if len(key) == 1 else None
    if executor is None:
        raise CallError(404, f"Container {'.'.join(key)} cannot be found")
    return await _attach_files(
        request, registry, executor.directory,
        lambda: _live_executor(agent, executor.container_id) is executor, media)


async def _attach_nested(request: web.Request, nested: Nested,
                         media: Media) -> web.StreamResponse:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    nested.listeners.append(queue)
    try:
        response = await _stream_response(request, media)
        try:
            while (record := await queue.get()) is not None:
                await response.write(record)
            await response.write_eof()
        except ConnectionResetError:  # the client went away: no server error
            log.debug("An output client of nested container %s went away", nested.name)
        return response
    finally:
        nested.listeners.remove(queue)


_T = TypeVar("_T")


async def _before_end(work: Awaitable[_T], nested: Nested) -> tuple[bool, _T | None]:
    """``(True, result)`` of ``work``, or ``(False, None)`` once ``nested`` has ended
    first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    ended = asyncio.ensure_future(nested.done.wait())
    try:
        await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ended.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not task.cancelled():
            # Retrieved here whatever happens next, so that a failure of ``work`` when
            # this is itself cancelled is not logged as "never retrieved".
            task.exception()
    if task.cancelled():
        return False, None
    return True, task.result()


def _stdin_data(call: dict[str, Any]) -> bytes | None:
    """What one record after the first of an ATTACH_CONTAINER_INPUT stream gives stdin:
    bytes (empty: EOF), or None for a CONTROL HEARTBEAT. Checked as Mesos' I/O
    switchboard checks it, with its messages."""
    if call.get("type") != "ATTACH_CONTAINER_INPUT":
        raise _invalid(f"Expecting every record of the stream to be an ATTACH_CONTAINER_INPUT "
                       f"call, not {call.get('type')!r}")
    sub = _sub(call, "attach_container_input")
    if sub.get("type") != "PROCESS_IO":
        raise CallError(400, "Expecting 'attach_container_input.type' to be 'PROCESS_IO' "
                             f"instead of: '{sub.get('type')}'")
    io = sub.get("process_io")
    if not isinstance(io, dict):
        raise CallError(400, "Expecting 'attach_container_input.process_io' to be present")
    kind = io.get("type")
    if kind is None:
        raise CallError(400, "Expecting 'process_io.type' to be present")
    if kind == "CONTROL":
        control = io.get("control")
        if not isinstance(control, dict):
            raise CallError(400, "Expecting 'process_io.control' to be present")
        if control.get("type") is None:
            raise CallError(400, "Expecting 'process_io.control.type' to be present")
        if control["type"] == "HEARTBEAT":
            if not isinstance(control.get("heartbeat"), dict):
                raise CallError(400, "Expecting 'process_io.control.heartbeat' to be present")
            return None
        if control["type"] == "TTY_INFO":
            raise CallError(400, "Unable to set the window size: the container has no tty "
                                 "(its stdin is a pipe)")
        raise CallError(400, "'process_io.control.type' is unknown")
    if kind != "DATA":
        raise CallError(400, "'process_io.type' is unknown")
    data = io.get("data")
    if not isinstance(data, dict):
        raise CallError(400, "Expecting 'process_io.data' to be present")
    if data.get("type") is None:
        raise CallError(400, "Expecting 'process_io.data.type' to be present")
    if data["type"] != "STDIN":
        raise CallError(400, "Expecting 'process_io.data.type' to be 'STDIN'")
    if data.get("data") is None:
        raise CallError(400, "Expecting 'process_io.data.data' to be present")
    if not isinstance(data["data"], str):
        raise _malformed("'process_io.data.data' must be a base64 string")
    try:
        return base64.b64decode(data["data"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _malformed(f"'process_io.data.data' is not base64: {exc}") from None


def _no_stdin(name: str) -> CallError:
    # Mesos fails to attach to a container without an I/O switchboard: a 500.
    return CallError(500, f"Container {name} takes no input: only nested containers "
                          "launched with LAUNCH_NESTED_CONTAINER_SESSION have a stdin to "
                          "attach to here")


async def _attach_input(request: web.Request, agent: Agent, body: dict[str, Any],
                        media: Media) -> web.StreamResponse:
    """ATTACH_CONTAINER_INPUT: the first record names the container (CONTAINER_ID);
    the DATA records that follow are written to its stdin, an empty one closes it
    (EOF), HEARTBEATs are ignored. One stream at a time per container (409 as Mesos).
    The answer is 200, empty, once the stream ends or the container has ended; a
    stream that ends without an empty DATA record leaves stdin open for the next one
    (the Mesos CLI first opens and closes one to check it can attach)."""
    assert media.records is not None
    sub = _sub(body, "attach_container_input")
    if sub.get("type") != "CONTAINER_ID":
        raise _invalid("Expecting 'attach_container_input.type' to be 'CONTAINER_ID' in the "
                       f"first record of the stream, not '{sub.get('type')}'")
    key = _container_id(sub.get("container_id"), "attach_container_input.container_id")
    name = ".".join(key)
    nested = request.app[NESTED].live.get(key)
    if nested is None:
        if len(key) == 1 and _live_executor(agent, key[0]) is not None:
            raise _no_stdin(name)
        raise CallError(404, f"Container {name} cannot be found")
    if not nested.session:
        raise _no_stdin(name)
    if nested.input_attached:
        raise CallError(409, "Multiple input connections are not allowed")
    nested.input_attached = True
    try:
        while True:
            got, raw = await _before_end(media.records.next(), nested)
            if not got or raw is None:  # the container ended, or the stream did
                break
            try:
                record = json.loads(raw)
            except ValueError as exc:
                raise CallError(400, f"Failed to parse a record into JSON: {exc}") from None
            if not isinstance(record, dict):
                raise _malformed("Expecting a JSON object")
            data = _stdin_data(record)
            if data is None:
                continue
            if nested.done.is_set():  # it ended as this record came: nowhere to go
                break
            if not data:
                log.debug("EOF to the stdin of nested container %s", name)
                nested.close_stdin()
                continue
            if nested.stdin is None:  # Mesos' write to the closed descriptor fails: 500
                raise CallError(500, f"Failed writing to stdin: the stdin of container {name} "
                                     "was closed (an empty DATA record was sent)")
            writer = nested.stdin
            try:
                writer.write(data)
                got, _ = await _before_end(writer.drain(), nested)
            except OSError as exc:  # it closed its stdin, or is exiting
                if nested.process.returncode is not None or nested.done.is_set():
                    break
                raise CallError(500, f"Failed writing to stdin: {exc}") from None
            if not got:
                break
    finally:
        nested.input_attached = False
    return web.Response(status=200)


def _tail(path: str, offset: int) -> tuple[bytes, int]:
    """What was appended to ``path`` since ``offset`` (at most 64 KiB; blocking)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:  # truncated: start over
                offset = 0
            fh.seek(offset)
            data = fh.read(65536)
    except OSError:
        return b"", offset
    return data, offset + len(data)


async def _attach_files(request: web.Request, registry: NestedContainers, sandbox: str,
                        alive: Callable[[], bool], media: Media) -> web.StreamResponse:
    """A container's output from now on: what is appended to its sandbox's stdout and
    stderr, while ``alive()`` (an executor's, or a nested container's launched without
    a session, goes to those files, not through the agent)."""
    sources = {kind: os.path.join(sandbox, kind.lower()) for kind in ("STDOUT", "STDERR")}
    offsets = {}
    for kind, path in sources.items():
        try:
            offsets[kind] = (await asyncio.to_thread(os.stat, path)).st_size
        except OSError:
            offsets[kind] = 0
    response = await _stream_response(request, media)
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + HEARTBEAT_INTERVAL
    try:
        while True:
            running = alive()
            wrote = False
            for kind, path in sources.items():
                data, offsets[kind] = await asyncio.to_thread(_tail, path, offsets[kind])
                if data:
                    await response.write(_process_io(kind, data))
                    wrote = True
            if not running or registry.closing.is_set():
                break
            if not wrote:
                if loop.time() >= next_beat:
                    await response.write(_heartbeat(HEARTBEAT_INTERVAL))
                    next_beat = loop.time() + HEARTBEAT_INTERVAL
                await asyncio.sleep(TAIL_POLL)
        await response.write_eof()
    except ConnectionResetError:  # the client went away: no server error
        log.debug("An output client of %s went away", sandbox)
    return response


_HANDLERS: dict[str, Handler] = {
    "GET_HEALTH": _get_health,
    "GET_FLAGS": _get_flags,
    "GET_VERSION": _get_version,
    "GET_METRICS": _get_metrics,
    "GET_LOGGING_LEVEL": _get_logging_level,
    "SET_LOGGING_LEVEL": _set_logging_level,
    "LIST_FILES": _list_files_call,
    "READ_FILE": _read_file_call,
    "GET_STATE": _reader(get_state, "GET_STATE"),
    "GET_FRAMEWORKS": _reader(get_frameworks, "GET_FRAMEWORKS"),
    "GET_EXECUTORS": _reader(get_executors, "GET_EXECUTORS"),
    "GET_TASKS": _reader(get_tasks, "GET_TASKS"),
    "GET_AGENT": _reader(get_agent, "GET_AGENT"),
    "GET_CONTAINERS": _get_containers_call,
    "GET_OPERATIONS": _empty,
    "GET_RESOURCE_PROVIDERS": _empty,
    "LAUNCH_NESTED_CONTAINER_SESSION": _launch_session,
    "LAUNCH_NESTED_CONTAINER": _launch_nested,
    "LAUNCH_CONTAINER": _launch_nested,
    "ATTACH_CONTAINER_OUTPUT": _attach_output,
    "ATTACH_CONTAINER_INPUT": _attach_input,
    "WAIT_NESTED_CONTAINER": _wait,
    "WAIT_CONTAINER": _wait,
    "KILL_NESTED_CONTAINER": _kill,
    "KILL_CONTAINER": _kill,
    "REMOVE_NESTED_CONTAINER": _remove,
    "REMOVE_CONTAINER": _remove,
}


def _media(request: web.Request) -> Media | web.Response:
    """Mesos' header checks, in its order; a refusal, or how to answer."""
    if request.method != "POST":
        return web.Response(status=405, text="Expecting POST", headers={"Allow": "POST"})
    content_type = request.headers.get("Content-Type")
    if content_type is None:
        return responses.bad_request("Expecting 'Content-Type' to be present")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == PROTOBUF:
        return responses.text(415, "Protobuf requests are not supported by this agent; send "
                                   f"the call as {JSON}")
    message_type = request.headers.get("Message-Content-Type")
    if media_type == RECORDIO:  # a streaming request: ATTACH_CONTAINER_INPUT
        if message_type is None:
            return responses.bad_request("Expecting 'Message-Content-Type' to be set for "
                                         "streaming requests")
        message_media = message_type.split(";")[0].strip().lower()
        if message_media == PROTOBUF:
            return responses.text(415, "Protobuf records are not supported by this agent; "
                                       f"send them as {JSON} (Message-Content-Type)")
        if message_media != JSON:
            return responses.text(415, f"Expecting 'Message-Content-Type' of {JSON}")
    elif media_type != JSON:
        return responses.text(415, f"Expecting 'Content-Type' of {JSON} or {RECORDIO}")
    elif message_type is not None:
        return responses.text(415, "Expecting 'Message-Content-Type' to be not set for "
                                   "non-streaming requests")
    accept = request.headers.get("Accept")
    if _accepts(accept, JSON):
        streaming = False
    elif _accepts(accept, RECORDIO):
        streaming = True
    elif _accepts(accept, PROTOBUF):
        return responses.text(406, f"Protobuf responses are not supported by this agent; "
                                   f"accept {JSON}")
    else:
        return responses.text(406, f"Expecting 'Accept' to allow {JSON} or {RECORDIO}")
    message_accept = request.headers.get("Message-Accept")
    if streaming:
        if not _accepts(message_accept, JSON):
            return responses.text(406, f"Expecting 'Message-Accept' to allow {JSON}")
    elif message_accept is not None:
        return responses.text(406, "Expecting 'Message-Accept' to be not set for "
                                   "non-streaming responses")
    return Media(streaming=streaming,
                 records=RecordReader(request.content) if media_type == RECORDIO else None)


async def operator_api(request: web.Request) -> web.StreamResponse:
    media = _media(request)
    if isinstance(media, web.Response):
        return media
    agent = request.app[AGENT]
    if agent.recovering:
        return responses.text(503, "Agent has not finished recovery")
    if media.records is not None:  # the first record is the call
        try:
            raw = await media.records.next()
        except CallError as exc:
            return responses.text(exc.status, str(exc))
        if raw is None:
            return responses.bad_request("Received EOF while reading request body")
    else:
        raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError as exc:
        return responses.bad_request(f"Failed to parse body into JSON: {exc}")
    if not isinstance(body, dict):
        return responses.bad_request("Failed to convert JSON into Call protobuf: "
                                     "Expecting a JSON object")
    call = body.get("type")
    if call is None or call not in CALLS:
        suffix = f" ('{call}' is not a call type)" if call is not None else ""
        return responses.bad_request(f"Failed to validate agent::Call: Expecting 'type' to be "
                                     f"present{suffix}")
    if media.records is not None and call != "ATTACH_CONTAINER_INPUT":
        return responses.text(415, f"Streaming 'Content-Type' {RECORDIO} is not supported "
                                   f"for {call} call")
    if media.records is None and call == "ATTACH_CONTAINER_INPUT":
        return responses.text(415, f"Expecting 'Content-Type' to be {RECORDIO} for {call} "
                                   "call")
    if media.streaming and call not in STREAMING:
        return responses.text(406, f"Streaming response is not supported for {call} call")
    handler = _HANDLERS.get(call)
    if handler is None:
        return responses.text(501, f"Agent call {call} is not supported by this agent yet")
    try:
        return await handler(request, agent, body, media)
    except CallError as exc:
        return responses.text(exc.status, str(exc))


async def _kill_nested(app: web.Application) -> None:
    await app[NESTED].kill_all()


def add_routes(app: web.Application, usage: UsageProvider | None = None) -> None:
    """Serve the v1 operator API at ``/api/v1`` and ``/slave(1)/api/v1``.

    Idempotent: a second call changes nothing (except ``usage``, when given). Running
    nested containers are killed when the application shuts down.
    """
    if usage is not None:
        app[USAGE] = usage
    if NESTED in app:
        return
    if USAGE not in app:
        app[USAGE] = AgentUsage()
    app[NESTED] = NestedContainers()
    # On shutdown, before the server waits for open requests: sessions and output
    # streams must end for it to stop promptly.
    app.on_shutdown.append(_kill_nested)
    for prefix in ("", "/slave(1)"):
        app.router.add_route("*", f"{prefix}/api/v1", operator_api)
