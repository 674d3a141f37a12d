"""Fetch the URIs of a task group's tasks before the executor hears of the group.

The command executor's URIs are fetched before its container starts (the task's
URIs are copied into its ExecutorInfo). The tasks of a task group run under the
default executor; in Mesos each is a nested container whose launch runs the fetcher
into that task's own sandbox, so a task starts with its files there. Here the default
executor runs each task as a local process in ``<executor sandbox>/tasks/<task id>``
(``mesos.executor.default``), so the agent does the nested launch's fetch itself: it
holds a LAUNCH_GROUP back until every task's ``CommandInfo.uris`` are in that task's
sandbox, and only then sends it.

Events to one executor keep their order: while a LAUNCH_GROUP waits for its fetch,
later events to that executor (a KILL, another group) queue behind it. A fetch that
fails ends the executor as Mesos' default executor ends when a child container fails
to launch: the agent fails its container launch (TASK_FAILED,
REASON_CONTAINER_LAUNCH_FAILED, naming the URI and the cause), and the group is never
sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mesos.agent.events import SendToExecutor
from mesos.agent.fetcher import Fetcher, FetchError
from mesos.v1 import codec
from mesos.v1 import mesos as v1

if TYPE_CHECKING:
    from mesos.agent.core import AgentCore

log = logging.getLogger(__name__)

__all__ = ["GroupFetchSender", "Target", "executor_target", "task_sandbox"]

Key = tuple[str, str]  # (framework id, executor id)


def task_sandbox(executor_sandbox: str, task_id: str) -> str:
    """``<executor sandbox>/tasks/<task id>``, where the default executor runs the task
    (the same rule as ``mesos.executor.default.task_sandbox``)."""
    if not task_id or task_id in (".", "..") or "/" in task_id or "\0" in task_id:
        raise ValueError(f"task id {task_id!r} cannot name a sandbox directory")
    return os.path.join(executor_sandbox, "tasks", task_id)


@dataclass(frozen=True)
class Target:
    """Where an executor's tasks live: its sandbox, container and default user."""

    directory: str
    container_id: str
    user: str | None


def executor_target(core: AgentCore, framework_id: str, executor_id: str) -> Target | None:
    """The executor's sandbox, container and user (its command's, else its
    framework's), or None when it is gone or ending."""
    executor = core.executor(framework_id, executor_id)
    framework = core.frameworks.get(framework_id)
    if executor is None or framework is None or executor.state == "TERMINATED":
        return None
    command = executor.info.command
    user = (command.user if command is not None else None) or framework.info.user or None
    return Target(executor.directory, executor.container_id, user)


def _group_tasks(effect: SendToExecutor) -> list[v1.TaskInfo]:
    """The tasks of a LAUNCH_GROUP that have URIs to fetch (none for other events)."""
    event = effect.event
    if event.type != "LAUNCH_GROUP" or event.launch_group is None:
        return []
    return [t for t in event.launch_group.task_group.tasks
            if t.command is not None and t.command.uris]


def _make_task_sandbox(directory: str, task_id: str, user: str | None) -> str:
    """Create the task's sandbox (and ``tasks/``) owned by ``user`` when the agent is
    root, so the executor running as that user can still use them."""
    sandbox = task_sandbox(directory, task_id)
    owner = None
    if user and os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise OSError(f"user '{user}' does not exist on this agent") from None
        owner = pw.pw_uid, pw.pw_gid
    for path in (os.path.dirname(sandbox), sandbox):
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue
        if owner is not None:
            os.chown(path, *owner)
    return sandbox


@dataclass
class GroupFetchSender:
    """Sends events to executors in order, fetching a LAUNCH_GROUP's URIs first.

    ``send`` writes encoded bytes on the executor's stream; ``target`` finds the
    executor's current sandbox (None when it is gone); ``fail`` ends the executor's
    container with a message; ``spawn`` runs a background coroutine the agent owns.
    """

    send: Callable[[Key, bytes], None]
    fetcher: Callable[[], Awaitable[Fetcher]]
    target: Callable[[str, str], Target | None]
    fail: Callable[[str, str, str, str], None]
    spawn: Callable[[Coroutine[Any, Any, None]], None]
    _held: dict[Key, list[SendToExecutor]] = field(default_factory=dict)

    def __call__(self, effect: SendToExecutor) -> None:
        key = (effect.framework_id, effect.executor_id)
        held = self._held.get(key)
        if held is not None:  # behind a fetch still in flight
            held.append(effect)
        elif _group_tasks(effect):
            self._held[key] = [effect]
            self.spawn(self._drain(key))
        else:
            self.send(key, codec.encode(effect.event))

    async def _drain(self, key: Key) -> None:
        """Send what is held for ``key`` in order, fetching before each group."""
        held = self._held[key]
        try:
            while held:
                effect = held.pop(0)
                tasks = _group_tasks(effect)
                if tasks and not await self._fetch(key, tasks):
                    return  # the executor is being ended: nothing more goes to it
                self.send(key, codec.encode(effect.event))
        finally:
            del self._held[key]

    async def _fetch(self, key: Key, tasks: Sequence[v1.TaskInfo]) -> bool:
        target = self.target(*key)
        if target is None:
            return False
        try:
            fetcher = await self.fetcher()
            for task in tasks:
                assert task.command is not None
                user = task.command.user or target.user
                sandbox = await asyncio.to_thread(
                    _make_task_sandbox, target.directory, task.task_id.value, user)
                await fetcher.fetch(task.command.uris, sandbox, user=user)
        except (FetchError, OSError, ValueError) as exc:
            log.error("Failed to fetch the URIs of a task group for executor '%s' of "
                      "framework %s: %s", key[1], key[0], exc)
            self.fail(key[0], key[1], target.container_id, str(exc))
            return False
        return True
