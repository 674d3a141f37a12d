"""Agent checkpoints: what a restarted agent needs to find its executors again.

Only frameworks with ``FrameworkInfo.checkpoint`` set are checkpointed. The layout
under ``--work_dir`` follows Mesos' ``slave/paths.hpp``::

    <work_dir>/meta/slaves/latest                      the agent id (text)
    <work_dir>/meta/slaves/<agent>/frameworks/<fw>/framework.info
        executors/<exec>/executor.info                 ExecutorInfo (JSON)
        executors/<exec>/runs/<container>/run.info     command executor?, role, sandbox
        executors/<exec>/runs/<container>/pids/forked.pid   "<pid> <start time>"
        executors/<exec>/runs/<container>/tasks/<task>/task.info
        executors/<exec>/runs/<container>/tasks/<task>/task.updates

Single files are written atomically: a temporary file is written and fsynced, then
renamed over the target, and the directory is fsynced. ``task.updates`` is the
task's status-update stream: one JSON line per update (``{"update": TaskStatus}``)
or acknowledgement (``{"ack": uuid}``), each appended and fsynced. A line cut short
by a crash can only be the last one; reading drops it.

The pid file holds the process's start time (field 22 of ``/proc/<pid>/stat``) too,
so a recovered agent does not take a recycled pid for its executor.

The running agent does not write on its event loop: :class:`WriteQueue` runs the
writes on one worker thread, in the order they were asked for, and holds back what
must follow them (acknowledging an update, forwarding it) until they are done.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

from mesos.errors import ValidationError
from mesos.v1 import codec
from mesos.v1 import mesos as v1

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "RecoveredExecutor",
    "RecoveredFramework",
    "RecoveredState",
    "RecoveredTask",
    "WriteQueue",
    "atomic_write",
    "process_start_time",
    "read_state",
    "same_process",
]


class CheckpointError(Exception):
    """A checkpoint could not be read back (refused under ``--strict``)."""


# ---------------------------------------------------------------------- paths


def meta_dir(work_dir: str) -> str:
    return os.path.join(work_dir, "meta")


def latest_path(work_dir: str) -> str:
    return os.path.join(meta_dir(work_dir), "slaves", "latest")


def agent_dir(work_dir: str, agent_id: str) -> str:
    return os.path.join(meta_dir(work_dir), "slaves", agent_id)


def framework_dir(work_dir: str, agent_id: str, framework_id: str) -> str:
    return os.path.join(agent_dir(work_dir, agent_id), "frameworks", framework_id)


def executor_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(framework_dir(work_dir, agent_id, framework_id), "executors",
                        executor_id)


def run_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str,
            container_id: str) -> str:
    return os.path.join(executor_dir(work_dir, agent_id, framework_id, executor_id), "runs",
                        container_id)


def task_dir(run: str, task_id: str) -> str:
    return os.path.join(run, "tasks", task_id)


# ---------------------------------------------------------------------- writing


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data`` so that a crash leaves the old or the new file."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)


def _append(path: str, line: bytes) -> None:
    directory = os.path.dirname(path)
    created = not os.path.exists(path)
    if created:
        os.makedirs(directory, exist_ok=True)
    with open(path, "ab") as f:
        f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())
    if created:
        _fsync_dir(directory)


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def same_process(pid: int, start_time: int | None) -> bool:
    """Whether ``pid`` is still the process that was checkpointed (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    rest = stat[stat.rfind(b")") + 2:].split()
    if not rest or rest[0] == b"Z":
        return False
    return start_time is None or process_start_time(pid) == start_time


class Checkpointer:
    """Writes one agent's checkpoints (all blocking file I/O)."""

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir

    def agent(self, agent_id: str) -> None:
        atomic_write(latest_path(self.work_dir), agent_id.encode())

    def forget_agent(self) -> None:
        """Remove ``latest``: the next agent started here registers as a new one."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(latest_path(self.work_dir))
            _fsync_dir(os.path.dirname(latest_path(self.work_dir)))

    def framework(self, agent_id: str, info: v1.FrameworkInfo) -> None:
        assert info.id is not None
        path = framework_dir(self.work_dir, agent_id, info.id.value)
        atomic_write(os.path.join(path, "framework.info"), codec.encode(info))

    def executor(self, agent_id: str, framework_id: str, info: v1.ExecutorInfo,
                 container_id: str, *, command_executor: bool, role: str | None,
                 directory: str) -> None:
        ex_dir = executor_dir(self.work_dir, agent_id, framework_id, info.executor_id.value)
        atomic_write(os.path.join(ex_dir, "executor.info"), codec.encode(info))
        run = os.path.join(ex_dir, "runs", container_id)
        record = {"command_executor": command_executor, "role": role, "directory": directory}
        atomic_write(os.path.join(run, "run.info"), json.dumps(record).encode())

    def pid(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
            pid: int) -> None:
        run = run_dir(self.work_dir, agent_id, framework_id, executor_id, container_id)
        start = process_start_time(pid)
        text = f"{pid} {start}" if start is not None else str(pid)
        atomic_write(os.path.join(run, "pids", "forked.pid"), text.encode())

    def task(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
             info: v1.TaskInfo) -> None:
        run = run_dir(self.work_dir, agent_id, framework_id, executor_id, container_id)
        atomic_write(os.path.join(task_dir(run, info.task_id.value), "task.info"),
                     codec.encode(info))

    def update(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
               status: v1.TaskStatus) -> None:
        run = run_dir(self.work_dir, agent_id, framework_id, executor_id, container_id)
        path = os.path.join(task_dir(run, status.task_id.value), "task.updates")
        _append(path, b'{"update":' + codec.encode(status) + b"}")

    def ack(self, agent_id: str, framework_id: str, executor_id: str, container_id: str,
            task_id: str, uuid: bytes) -> None:
        run = run_dir(self.work_dir, agent_id, framework_id, executor_id, container_id)
        path = os.path.join(task_dir(run, task_id), "task.updates")
        _append(path, json.dumps({"ack": base64.b64encode(uuid).decode()}).encode())

    def remove_run(self, agent_id: str, framework_id: str, executor_id: str,
                   container_id: str) -> None:
        """Forget one executor run (a later run of the same executor id keeps its own)."""
        ex_dir = executor_dir(self.work_dir, agent_id, framework_id, executor_id)
        shutil.rmtree(os.path.join(ex_dir, "runs", container_id), ignore_errors=True)
        with contextlib.suppress(OSError):  # only when no run is left
            os.rmdir(os.path.join(ex_dir, "runs"))
            os.remove(os.path.join(ex_dir, "executor.info"))
            os.rmdir(ex_dir)

    def remove_framework(self, agent_id: str, framework_id: str) -> None:
        shutil.rmtree(framework_dir(self.work_dir, agent_id, framework_id), ignore_errors=True)


class WriteQueue:
    """Checkpoint writes off the event loop, in order, and what waits for them.

    An fsync takes milliseconds (far more on a busy disk); done on the agent's event
    loop it would stall every executor stream and the master link meanwhile. Here
    :meth:`write` hands a blocking job to a single worker thread, so jobs run one at a
    time in the order they were queued (per file and across files), and :meth:`then`
    runs an action on the loop only once every job queued before it has completed:
    at once when nothing is outstanding, else in the order the actions were asked
    for. The agent routes its effects through :meth:`then`, so they happen in the
    order the core asked for them, each after the checkpoints it depends on are on
    disk (Mesos: an update is written before it is acknowledged or forwarded).

    An action that queues writes and actions itself has them run before the actions
    that were waiting behind it, as if the writes had been synchronous. A failed
    write is logged and counts as done: the agent goes on, as it did when writing
    on the loop.
    """

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._queued = 0  # jobs handed to the worker
        self._done = 0  # jobs finished (in queue order: one worker)
        # (jobs that must be done first, action), in the order asked for.
        self._waiting: collections.deque[tuple[int, Callable[[], None]]] = collections.deque()
        self._running = False  # an action is running from _release
        self._nested: list[tuple[int, Callable[[], None]]] = []
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def idle(self) -> bool:
        return self._done >= self._queued and not self._waiting

    def write(self, job: Callable[[], None], what: str) -> None:
        """Run ``job`` (blocking file I/O) on the worker thread after the jobs before it."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._queued += 1
        self._idle.clear()
        future = loop.run_in_executor(self._pool, _run_job, job, what)
        future.add_done_callback(self._finished)

    def then(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the loop once every write queued so far is done."""
        ready = self._done >= self._queued
        if self._running:
            if ready and not self._nested:
                action()
            else:
                self._nested.append((self._queued, action))
            return
        if ready and not self._waiting:
            action()
            return
        self._idle.clear()
        self._waiting.append((self._queued, action))

    async def drain(self, timeout: float) -> bool:
        """Wait (bounded) until every write and every held-back action is done."""
        if not self.idle:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        return self.idle

    def close(self) -> None:
        """Let the worker thread go (after the jobs already queued)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _finished(self, _future: object) -> None:
        self._done += 1
        self._release()

    def _release(self) -> None:
        while self._waiting and self._waiting[0][0] <= self._done:
            _, action = self._waiting.popleft()
            self._running = True
            try:
                action()
            except Exception:
                log.exception("A checkpoint-ordered action failed")
            finally:
                self._running = False
            # What it asked for comes before what was already waiting behind it.
            self._waiting.extendleft(reversed(self._nested))
            self._nested = []
        if self.idle:
            self._idle.set()


def _run_job(job: Callable[[], None], what: str) -> None:
    try:
        job()
    except OSError as exc:
        log.error("Failed to checkpoint %s: %s", what, exc)
    except Exception:
        log.exception("Failed to checkpoint %s", what)


# ---------------------------------------------------------------------- reading


@dataclass
class RecoveredTask:
    info: v1.TaskInfo
    updates: list[v1.TaskStatus] = field(default_factory=list)
    acknowledged: set[bytes] = field(default_factory=set)

    def unacknowledged(self) -> list[v1.TaskStatus]:
        return [u for u in self.updates if u.uuid not in self.acknowledged]


@dataclass
class RecoveredExecutor:
    info: v1.ExecutorInfo
    container_id: str
    directory: str
    command_executor: bool
    role: str | None
    pid: int | None = None
    start_time: int | None = None
    tasks: list[RecoveredTask] = field(default_factory=list)


@dataclass
class RecoveredFramework:
    info: v1.FrameworkInfo
    executors: list[RecoveredExecutor] = field(default_factory=list)


@dataclass
class RecoveredState:
    agent_id: str
    frameworks: list[RecoveredFramework] = field(default_factory=list)
    # What could not be read (skipped when not strict).
    errors: list[str] = field(default_factory=list)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _listdir(path: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(path) if not n.startswith("."))
    except FileNotFoundError:
        return []


def read_state(work_dir: str, *, strict: bool = True) -> RecoveredState | None:
    """The checkpointed state, or None when this work dir has no agent checkpointed.

    A checkpoint that cannot be read raises :class:`CheckpointError` when ``strict``,
    and is skipped (and named in ``errors``) otherwise.
    """
    try:
        agent_id = _read(latest_path(work_dir)).decode().strip()
    except FileNotFoundError:
        return None
    state = RecoveredState(agent_id)
    frameworks = os.path.join(agent_dir(work_dir, agent_id), "frameworks")
    for framework_id in _listdir(frameworks):
        try:
            state.frameworks.append(_read_framework(work_dir, agent_id, framework_id))
        except (OSError, ValueError, KeyError, ValidationError, msgspec.MsgspecError,
                CheckpointError) as exc:
            message = f"framework {framework_id}: {exc}"
            if strict:
                raise CheckpointError(message) from exc
            log.warning("Skipping checkpointed %s", message)
            state.errors.append(message)
    return state


def _read_framework(work_dir: str, agent_id: str, framework_id: str) -> RecoveredFramework:
    path = framework_dir(work_dir, agent_id, framework_id)
    info = codec.decode(_read(os.path.join(path, "framework.info")), v1.FrameworkInfo)
    framework = RecoveredFramework(info)
    for executor_id in _listdir(os.path.join(path, "executors")):
        executor = _read_executor(work_dir, agent_id, framework_id, executor_id)
        if executor is not None:
            framework.executors.append(executor)
    return framework


def _latest_run(runs: str) -> str | None:
    """The newest run of an executor: the one with the newest run.info."""
    candidates = [r for r in _listdir(runs)
                  if os.path.exists(os.path.join(runs, r, "run.info"))]
    if not candidates:
        return None
    return max(candidates, key=lambda r: os.stat(os.path.join(runs, r, "run.info")).st_mtime_ns)


def _read_executor(work_dir: str, agent_id: str, framework_id: str,
                   executor_id: str) -> RecoveredExecutor | None:
    path = executor_dir(work_dir, agent_id, framework_id, executor_id)
    if not os.path.exists(os.path.join(path, "executor.info")):
        return None  # the agent died before checkpointing it: nothing was started
    info = codec.decode(_read(os.path.join(path, "executor.info")), v1.ExecutorInfo)
    container_id = _latest_run(os.path.join(path, "runs"))
    if container_id is None:
        return None
    run = os.path.join(path, "runs", container_id)
    record = json.loads(_read(os.path.join(run, "run.info")))
    executor = RecoveredExecutor(info, container_id, record["directory"],
                                 bool(record["command_executor"]), record.get("role"))
    with contextlib.suppress(FileNotFoundError):
        parts = _read(os.path.join(run, "pids", "forked.pid")).split()
        executor.pid = int(parts[0])
        executor.start_time = int(parts[1]) if len(parts) > 1 else None
    for task_id in _listdir(os.path.join(run, "tasks")):
        executor.tasks.append(_read_task(task_dir(run, task_id)))
    return executor


def _read_task(path: str) -> RecoveredTask:
    task = RecoveredTask(codec.decode(_read(os.path.join(path, "task.info")), v1.TaskInfo))
    try:
        lines = _read(os.path.join(path, "task.updates")).split(b"\n")
    except FileNotFoundError:
        return task
    for number, line in enumerate(lines):
        if not line:
            continue
        try:
            record = json.loads(line)
            if "update" in record:
                task.updates.append(codec.decode_obj(record["update"], v1.TaskStatus))
            else:
                task.acknowledged.add(base64.b64decode(record["ack"]))
        except (ValueError, KeyError, ValidationError, msgspec.MsgspecError) as exc:
            if number >= len(lines) - 2:  # the last line, cut short by a crash
                log.warning("Dropping a torn record at the end of %s", path)
                break
            raise CheckpointError(f"{path}/task.updates line {number + 1}: {exc}") from exc
    return task


# ---------------------------------------------------------------------- resources
#
# <work_dir>/meta/resources/resources.info holds the agent's checkpointed resources
# (dynamic reservations and persistent volumes, as the master last sent them) as a
# JSON array of v1 Resource objects. It belongs to the machine rather than to one
# agent id, so an agent that restarts (even as a new agent) keeps its volumes.


def resources_path(work_dir: str) -> str:
    return os.path.join(meta_dir(work_dir), "resources", "resources.info")


def write_resources(work_dir: str, resources: list[dict[str, object]]) -> None:
    """Replace the checkpointed resources (atomically, fsynced)."""
    atomic_write(resources_path(work_dir), json.dumps(resources, sort_keys=True).encode())


def read_resources(work_dir: str) -> list[dict[str, object]]:
    """The checkpointed resources; none when nothing was ever checkpointed.
    A file that is not a JSON array raises CheckpointError."""
    try:
        data = _read(resources_path(work_dir))
    except FileNotFoundError:
        return []
    try:
        items = json.loads(data)
    except ValueError as exc:
        raise CheckpointError(f"Cannot parse {resources_path(work_dir)}: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise CheckpointError(f"{resources_path(work_dir)} is not a JSON array of resources")
    return items
