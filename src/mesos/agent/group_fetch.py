"""Fetch the URIs of a task group's tasks before the executor hears of the group.

The command executor's URIs are fetched before its container starts (the task's
URIs are copied into its ExecutorInfo). The tasks of a task group run under the
default executor; in Mesos each is a nested container whose launch runs the fetcher
into that task's own sandbox, so a task starts with its files there. Here the default
executor runs each task as a local process in ``<executor sandbox>/tasks/<task id>``
(``mesos.executor.default``), so the agent does the nested launch's fetch itself: it
holds a LAUNCH_GROUP back until every task's ``CommandInfo.uris`` are in that task's
sandbox, and only then sends it.

The executor sandbox belongs to the executor's user by then, and that user's
processes run: anything in it (``tasks``, ``tasks/<id>``) may be a symlink planted to
make the agent, running as root, write elsewhere. Mesos avoids that by fetching as the
task's user. Here the fetcher writes into a fresh staging directory under the agent's
work directory that no task can reach, and the result is moved into the task's
sandbox by descriptor only: ``tasks`` and ``tasks/<id>`` are opened with
``O_NOFOLLOW|O_DIRECTORY`` relative to the sandbox's descriptor (a symlink or a
non-directory there fails the fetch), created ones are ``fchown``-ed, and each fetched
entry is ``rename``-d into the opened directory, which never follows a link at the
name it replaces (so a name already taken there, a volume's link say, fails the
fetch instead). The agent makes a group task's volume links the same way, through
:func:`open_task_sandbox` (``mesos.agent.volumes.link_task_volumes``). The staging
directory is under the work directory, as the sandboxes are: ``rename`` cannot cross
file systems, and a sandbox elsewhere would fail every fetch with EXDEV.

The default executor runs every task as its own user, so the fetched files and the
task sandbox are given to the executor's (container's) user; a task naming another
user is refused before its fetch (``AgentService._other_task_user``).

Events to one executor keep their order: while a LAUNCH_GROUP waits for its fetch,
later events to that executor (a KILL, another group) queue behind it, with these
exceptions, which would otherwise wait behind a download for no reason or reach the
wrong executor:

* SUBSCRIBED (a new stream) and SHUTDOWN drop whatever is held (the core has already
  accounted for those tasks: re-subscribing reports unknown STAGING tasks lost, a
  shutdown ends them) and are sent at once; so does :meth:`GroupFetchSender.forget`,
  called when the executor's stream closes or the executor ends.
* A KILL of a task of a held group cancels that group's fetch (if it is the one in
  flight) and drops the group; its tasks are reported TASK_KILLED
  (REASON_TASK_KILLED_DURING_LAUNCH), the whole group, as the default executor kills a
  whole group.
* A group is held for one container: if the executor's container changed (the old one
  died and a new executor with the same id subscribed) or the executor is ending when
  the fetch is done, the group is dropped rather than sent to the new one.

A fetch that fails, or takes longer than ``timeout`` (the agent's
``--executor_registration_timeout``), ends the executor as Mesos' default executor
ends when a child container fails to launch: the agent fails its container launch
(TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED, naming the URI and the cause), and the
group is never sent.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import pwd
import shutil
import stat
import tempfile
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesos.agent.events import SendToExecutor
from mesos.agent.fetcher import Fetcher, FetchError
from mesos.flags import format_duration
from mesos.v1 import codec
from mesos.v1 import mesos as v1

if TYPE_CHECKING:
    from mesos.agent.core import AgentCore

log = logging.getLogger(__name__)

__all__ = [
    "GroupFetchSender",
    "Target",
    "UnsafePathError",
    "executor_target",
    "file_owner",
    "open_subdir",
    "open_task_sandbox",
    "task_sandbox",
]

Key = tuple[str, str]  # (framework id, executor id)

# (framework id, executor id, task ids, state, reason, message): the agent reports
# these tasks' ends itself (they never reach the executor).
Report = Callable[[str, str, list[str], str, str, str], None]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def task_sandbox(executor_sandbox: str, task_id: str) -> str:
    """``<executor sandbox>/tasks/<task id>``, where the default executor runs the task
    (the same rule as ``mesos.executor.default.task_sandbox``)."""
    _check_task_id(task_id)
    return os.path.join(executor_sandbox, "tasks", task_id)


def _check_task_id(task_id: str) -> None:
    if not task_id or task_id in (".", "..") or "/" in task_id or "\0" in task_id:
        raise ValueError(f"task id {task_id!r} cannot name a sandbox directory")


@dataclass(frozen=True)
class Target:
    """Where an executor's tasks live: its sandbox, container and default user.

    ``user`` is None when the container does not run as a user of its own
    (``--switch_user=false``, or no user): nothing is chowned then.
    """

    directory: str
    container_id: str
    user: str | None


def executor_target(core: AgentCore, framework_id: str, executor_id: str,
                    switch_user: bool = True) -> Target | None:
    """The executor's sandbox, container and user (its command's, else its
    framework's), or None when it is gone or ending (a group for it is dropped)."""
    executor = core.executor(framework_id, executor_id)
    framework = core.frameworks.get(framework_id)
    if (executor is None or framework is None
            or executor.state in ("TERMINATING", "TERMINATED")):
        return None
    command = executor.info.command
    user = (command.user if command is not None else None) or framework.info.user or None
    return Target(executor.directory, executor.container_id, user if switch_user else None)


def _group_tasks(effect: SendToExecutor) -> list[v1.TaskInfo]:
    """The tasks of a LAUNCH_GROUP that have URIs to fetch (none for other events: a
    LAUNCH's URIs were fetched into its executor's sandbox before it started)."""
    if effect.event.type != "LAUNCH_GROUP":
        return []
    return [t for t in _launched(effect) if t.command is not None and t.command.uris]


def _launched(effect: SendToExecutor) -> list[v1.TaskInfo]:
    """The tasks a LAUNCH or LAUNCH_GROUP hands the executor (none for other events)."""
    event = effect.event
    if event.type == "LAUNCH_GROUP" and event.launch_group is not None:
        return list(event.launch_group.task_group.tasks)
    if event.type == "LAUNCH" and event.launch is not None:
        return [event.launch.task]
    return []


def _killed_task(effect: SendToExecutor) -> str | None:
    event = effect.event
    if event.type == "KILL" and event.kill is not None:
        return event.kill.task_id.value
    return None


def file_owner(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) of ``user`` when the agent is root and there is one to give files to."""
    if not user or os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise OSError(f"user '{user}' does not exist on this agent") from None
    return pw.pw_uid, pw.pw_gid


class UnsafePathError(OSError):
    """A name in a sandbox is a symbolic link, not a directory, or was swapped while
    the agent made it: the agent refuses to go through it."""


def open_subdir(parent_fd: int, name: str, shown: str,
                owner: tuple[int, int] | None) -> int:
    """``name`` in the directory ``parent_fd`` as an open directory, created (and
    given to ``owner``) if missing. A symlink or anything but a directory there is
    refused: it is never followed. The one helper for every directory the agent makes
    in a sandbox its user may be writing to (a task's, and the volumes' parents).

    Between ``mkdir`` and the ``O_NOFOLLOW`` open the sandbox's user can rename
    another directory onto the fresh name; it is given to ``owner`` only if it is
    still what ``mkdir`` made: owned by the agent and empty. Anything else is an
    OSError rather than a chown of the user's pick.
    """
    made = False
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        made = True
    except FileExistsError:
        pass
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(f"'{shown}' in the sandbox is a symbolic link or not a "
                          "directory; refusing to use it") from None
        raise
    if made and owner is not None:
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or os.listdir(fd):
                raise UnsafePathError(f"'{shown}' in the sandbox was replaced while it was made; "
                              "refusing to give it away")
            os.fchown(fd, *owner)
        except OSError:
            os.close(fd)
            raise
    return fd


Owners = tuple[tuple[int, int] | None, tuple[int, int] | None]


def open_task_sandbox(directory: str, task_id: str, owners: Owners) -> int:
    """The task's sandbox ``<directory>/tasks/<task id>`` as an open directory
    descriptor (the caller closes it), created if missing without following a link:
    a symlink or a non-directory at ``tasks`` or ``tasks/<id>`` is an OSError.

    ``owners`` are those of ``tasks`` (the executor's user) and of ``tasks/<id>`` (the
    task's), given to the directories this creates. Whatever is then made through the
    descriptor (fetched files, volume links) lands in that directory, whatever the
    task's user does to the names above it meanwhile.
    """
    _check_task_id(task_id)
    opened: list[int] = []
    try:
        opened.append(os.open(directory, _DIR_FLAGS))
        opened.append(open_subdir(opened[-1], "tasks", "tasks", owners[0]))
        opened.append(open_subdir(opened[-1], task_id, f"tasks/{task_id}", owners[1]))
    except BaseException:
        for fd in reversed(opened):
            os.close(fd)
        raise
    for fd in opened[:-1]:
        os.close(fd)
    return opened[-1]


def _install(directory: str, task_id: str, staged: str, owners: Owners) -> str:
    """Move what was fetched into ``staged`` into the task's sandbox, by descriptor
    (see :func:`open_task_sandbox` for ``owners``). Returns the task sandbox."""
    task_fd = open_task_sandbox(directory, task_id, owners)
    try:
        staged_fd = os.open(staged, _DIR_FLAGS)
        try:
            for name in sorted(os.listdir(staged_fd)):
                # rename(2) would replace what is there: a plain file (a task id used
                # again) may go, a volume's link or an empty mount point never.
                try:
                    there = os.lstat(name, dir_fd=task_fd)
                except FileNotFoundError:
                    pass
                else:
                    if not stat.S_ISREG(there.st_mode):
                        raise OSError(f"cannot move '{name}' into the task sandbox: a "
                                      "link or directory of that name is already there "
                                      "(a volume's?)")
                try:
                    os.rename(name, name, src_dir_fd=staged_fd, dst_dir_fd=task_fd)
                except OSError as exc:
                    raise OSError(f"cannot move '{name}' into the task sandbox: "
                                  f"{exc.strerror or exc}") from None
        finally:
            os.close(staged_fd)
    finally:
        os.close(task_fd)
    return task_sandbox(directory, task_id)


@dataclass
class _Queue:
    """What waits for one executor (one container) behind a fetch, and the drain."""

    container_id: str
    events: list[SendToExecutor]
    current: SendToExecutor | None = None  # the group whose fetch is in flight
    task: asyncio.Task[None] | None = None


@dataclass
class GroupFetchSender:
    """Sends events to executors in order, fetching a LAUNCH_GROUP's URIs first.

    ``send`` writes encoded bytes on the executor's stream; ``target`` finds the
    executor's current sandbox (None when it is gone); ``fail`` ends the executor's
    container with a message; ``report`` gives tasks that never reach the executor
    their terminal status; ``spawn`` runs a background coroutine the agent owns and
    returns its task; ``staging`` is a directory no task can reach, on the sandboxes'
    file system; ``check`` (optional) readies the executor's running container for
    the tasks of a LAUNCH or LAUNCH_GROUP as it arrives (their volumes) and says why
    they cannot go to it (None: they can); such tasks are failed, never sent.
    """

    send: Callable[[Key, bytes], None]
    fetcher: Callable[[], Awaitable[Fetcher]]
    target: Callable[[str, str], Target | None]
    fail: Callable[[str, str, str, str], None]
    spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]]
    report: Report
    staging: str
    timeout: float = 60.0
    check: Callable[[str, str, Sequence[v1.TaskInfo]], str | None] | None = None
    _held: dict[Key, _Queue] = field(default_factory=dict)

    def __call__(self, effect: SendToExecutor) -> None:
        key = (effect.framework_id, effect.executor_id)
        if self._refused(key, effect):
            return
        queue = self._held.get(key)
        kind = effect.event.type
        if queue is not None and kind in ("SUBSCRIBED", "SHUTDOWN"):
            self.forget(key, f"the executor was sent {kind}")
            queue = None
        if queue is not None:
            killed = _killed_task(effect)
            if killed is not None and self._kill_held(key, queue, killed):
                return
            queue.events.append(effect)
        elif _group_tasks(effect):
            target = self.target(*key)
            if target is None:
                log.warning("Dropping a task group for executor '%s' of framework %s: it "
                            "is gone or ending", key[1], key[0])
                return
            self._start(key, _Queue(target.container_id, [effect]))
        else:
            self.send(key, codec.encode(effect.event))

    def held(self, key: Key) -> bool:
        """Whether events for ``key`` wait behind a fetch."""
        return key in self._held

    def forget(self, key: Key, why: str) -> None:
        """Cancel the fetch for ``key`` and drop what is held: its stream or container
        is gone, and none of it may reach the next one."""
        queue = self._held.pop(key, None)
        if queue is None:
            return
        dropped = ([queue.current] if queue.current is not None else []) + queue.events
        log.warning("Dropping %d event(s) held for executor '%s' of framework %s behind a "
                    "fetch: %s", len(dropped), key[1], key[0], why)
        if queue.task is not None:
            queue.task.cancel()

    def _start(self, key: Key, queue: _Queue) -> None:
        self._held[key] = queue
        queue.task = self.spawn(self._drain(key, queue))

    def _refused(self, key: Key, effect: SendToExecutor) -> bool:
        """Fail the tasks of a launch the executor's container cannot take."""
        tasks = _launched(effect)
        if not tasks or self.check is None:
            return False
        why = self.check(key[0], key[1], tasks)
        if why is None:
            return False
        log.error("Failing task(s) %s of executor '%s' of framework %s: %s",
                  ", ".join(t.task_id.value for t in tasks), key[1], key[0], why)
        self.report(key[0], key[1], [t.task_id.value for t in tasks], "TASK_FAILED",
                    "REASON_CONTAINER_UPDATE_FAILED", why)
        return True

    def _kill_held(self, key: Key, queue: _Queue, task_id: str) -> bool:
        """A KILL of a task of a held group: drop the group (cancelling its fetch if it
        is in flight) and report its tasks killed. False if no held group has it."""
        def has(e: SendToExecutor | None) -> bool:
            return e is not None and task_id in {t.task_id.value for t in _launched(e)}

        if has(queue.current):
            group = queue.current
            assert group is not None and queue.task is not None
            queue.task.cancel()
            del self._held[key]
            if queue.events:  # what waited behind it goes on, in a drain of its own
                self._start(key, _Queue(queue.container_id, queue.events))
        else:
            group = next((e for e in queue.events if has(e)), None)
            if group is None:
                return False
            queue.events.remove(group)
        ids = [t.task_id.value for t in _launched(group)]
        own = group is queue.current
        why = ("its task group's URIs were being fetched" if own else
               "it waited behind another task group's fetch")
        log.info("Task(s) %s of executor '%s' of framework %s killed before delivery: %s",
                 ", ".join(ids), key[1], key[0], why)
        self.report(key[0], key[1], ids, "TASK_KILLED", "REASON_TASK_KILLED_DURING_LAUNCH",
                    f"Killed before delivery to the executor ({why})")
        return True

    async def _drain(self, key: Key, queue: _Queue) -> None:
        """Send what is held for ``key`` in order, fetching before each group; stop when
        the queue is forgotten (cancelled) or the executor's container changed."""
        try:
            while queue.events:
                effect = queue.events.pop(0)
                tasks = _group_tasks(effect)
                if tasks:
                    queue.current = effect
                    if not await self._fetch(key, queue, tasks):
                        return  # the executor is being ended: nothing more goes to it
                    queue.current = None
                    target = self.target(*key)
                    if target is None or target.container_id != queue.container_id:
                        log.warning("Dropping a task group fetched for container %s of "
                                    "executor '%s' of framework %s: that container is gone "
                                    "or ending", queue.container_id, key[1], key[0])
                        return
                self.send(key, codec.encode(effect.event))
        finally:
            if self._held.get(key) is queue:
                del self._held[key]

    async def _fetch(self, key: Key, queue: _Queue, tasks: Sequence[v1.TaskInfo]) -> bool:
        target = self.target(*key)
        if target is None or target.container_id != queue.container_id:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await self._fetch_group(target, tasks)
        except TimeoutError:
            cause = (f"fetching took longer than {format_duration(self.timeout)} "
                     "(--executor_registration_timeout)")
        except (FetchError, OSError, ValueError) as exc:
            cause = str(exc)
        else:
            return True
        # Every live task of the executor gets this message: it names the group whose
        # fetch failed, so those of other groups read why their executor ended.
        ids = ", ".join(f"'{t.task_id.value}'" for t in tasks)
        message = f"the URIs of task group [{ids}] could not be fetched: {cause}"
        log.error("Failed to fetch the URIs of a task group for executor '%s' of framework "
                  "%s: %s", key[1], key[0], message)
        self.fail(key[0], key[1], target.container_id, message)
        return False

    async def _fetch_group(self, target: Target, tasks: Sequence[v1.TaskInfo]) -> None:
        fetcher = await self.fetcher()
        executor_owner = await asyncio.to_thread(file_owner, target.user)
        for task in tasks:
            assert task.command is not None
            _check_task_id(task.task_id.value)
            # The default executor runs every task as its own user (a task naming
            # another is refused before this); --switch_user=false: as the agent.
            user = target.user
            owner = executor_owner
            await asyncio.to_thread(os.makedirs, self.staging, 0o700, True)
            staged = await asyncio.to_thread(
                tempfile.mkdtemp, prefix=f"{task.task_id.value[:40]}.", dir=self.staging)
            try:
                await fetcher.fetch(task.command.uris, staged, user=user)
                await asyncio.to_thread(_install, target.directory, task.task_id.value,
                                        staged, (executor_owner, owner))
            finally:
                # A cancelled fetch's leftovers go too (shielded: a second cancel while
                # this runs leaves the removal going on).
                await asyncio.shield(asyncio.ensure_future(
                    asyncio.to_thread(shutil.rmtree, staged, True)))
