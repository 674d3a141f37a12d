"""Finding a task, its agent and its sandbox, and reading sandbox files over ``/files/read``.

The master knows which agent runs a task (``/master/tasks``, ``/master/slaves``); only
the agent knows the sandbox directory (its ``/state``). Files are read in pieces with
``offset``/``length``. ``/files/read`` answers text, not bytes, so offsets are kept in
bytes on this side: each read asks for no more than the file already holds (logs only
grow), so the answer holds exactly the bytes asked for, whatever its decoding.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import click

from mesos.cli.mesos_cli.client import AgentClient, CliError, address_of_pid
from mesos.cli.mesos_cli.context import Ctx
from mesos.v1.enums import TERMINAL_STATES

__all__ = ["CHUNK", "FileReader", "Sandbox", "find_task", "list_tasks", "locate_sandbox"]

PAGE = 1000          # tasks per /master/tasks request
MAX_PAGES = 10_000   # bound of the paging loop
CHUNK = 16_384       # bytes per /files/read (the agent caps one read at 16 pages)
REPLACEMENT = "\ufffd"


def list_tasks(ctx: Ctx, framework_id: str | None = None,
               task_id: str | None = None) -> list[dict[str, Any]]:
    """Every task the master has (live, unreachable and completed), oldest first."""
    out: list[dict[str, Any]] = []
    for page in range(MAX_PAGES):
        query = {"limit": str(PAGE), "offset": str(page * PAGE), "order": "asc"}
        if framework_id:
            query["framework_id"] = framework_id
        if task_id:
            query["task_id"] = task_id
        batch = ctx.master().get_json("/master/tasks", query)["tasks"]
        out.extend(batch)
        if len(batch) < PAGE:
            break
    return out


def is_terminal(task: dict[str, Any]) -> bool:
    return task.get("state") in TERMINAL_STATES


def find_task(ctx: Ctx, task_id: str, framework_id: str | None) -> dict[str, Any]:
    """The one task with this id: a live one before a finished one, the newest last."""
    matches = list_tasks(ctx, framework_id, task_id)
    if not matches:
        where = f" in framework {framework_id}" if framework_id else ""
        raise CliError(f"no task '{task_id}' is known to the master{where}")
    frameworks = sorted({t["framework_id"] for t in matches})
    if len(frameworks) > 1:
        raise CliError(f"task id '{task_id}' is used in frameworks {', '.join(frameworks)}; "
                       "choose one with --framework")
    live = [t for t in matches if not is_terminal(t)]
    return (live or matches)[-1]


@dataclass
class Sandbox:
    agent: AgentClient
    directory: str
    executor: dict[str, Any]


def _executors(state: dict[str, Any], framework_id: str) -> list[dict[str, Any]]:
    """The framework's executors on the agent, running ones first."""
    out: list[dict[str, Any]] = []
    for key in ("frameworks", "completed_frameworks"):
        for fw in state.get(key, []):
            if fw.get("id") == framework_id:
                out.extend(fw.get("executors", []))
                out.extend(fw.get("completed_executors", []))
    return out


def locate_sandbox(ctx: Ctx, task: dict[str, Any]) -> Sandbox:
    agent_id = task.get("slave_id", "")
    agents = ctx.master().get_json("/master/slaves", {"slave_id": agent_id})["slaves"]
    if not agents:
        raise CliError(f"agent {agent_id} of task {task['id']} is not registered with the "
                       "master, so its sandbox cannot be reached")
    agent = ctx.agent(address_of_pid(agents[0].get("pid", "")))
    state = agent.get_json("/state")
    for executor in _executors(state, task["framework_id"]):
        ids = {t.get("id") for key in ("tasks", "queued_tasks", "completed_tasks")
               for t in executor.get(key, [])}
        if task["id"] in ids and executor.get("directory"):
            return Sandbox(agent, executor["directory"], executor)
    raise CliError(f"agent {agent_id} at {agent.address} has no sandbox for task {task['id']} "
                   "(its executor has not started, or the sandbox was garbage collected)")


def sandbox_path(sandbox: Sandbox, name: str) -> str:
    """``name`` inside the sandbox; refuses absolute names and ones that climb out."""
    clean = posixpath.normpath(name)
    if posixpath.isabs(name) or clean == ".." or clean.startswith("../"):
        raise click.BadParameter(f"'{name}' is not a path inside the sandbox",
                                 param_hint="'--file'")
    return posixpath.join(sandbox.directory, clean)


class FileReader:
    """One sandbox file on one agent, read with byte offsets."""

    def __init__(self, agent: AgentClient, path: str) -> None:
        self.agent = agent
        self.path = path

    def _read(self, offset: int, length: int) -> tuple[str, int]:
        body = self.agent.get_json("/files/read", {"path": self.path, "offset": str(offset),
                                                   "length": str(length)})
        return str(body.get("data", "")), int(body.get("offset", 0))

    def size(self) -> int:
        """The file's size now (``offset=-1`` answers it with no data)."""
        return self._read(-1, -1)[1]

    def read(self, offset: int, length: int) -> str:
        return self._read(offset, length)[0]

    def copy(self, offset: int, end: int, write: Any) -> int:
        """Pass bytes ``[offset, end)`` to ``write`` as text; the new offset."""
        while offset < end:
            length = min(CHUNK, end - offset)
            write(self.read(offset, length))
            offset += length
        return offset

    def tail_start(self, size: int, lines: int) -> int:
        """Offset of the first of the last ``lines`` lines of a file of ``size`` bytes."""
        if lines <= 0:
            return size
        end = size
        wanted = lines  # newlines to pass, from the end, not counting a final one
        while end > 0:
            start = max(0, end - CHUNK)
            text = self.read(start, end - start)
            if end == size and text.endswith("\n"):
                text = text[:-1]
            count = text.count("\n")
            if count >= wanted:
                cut = len(text)
                for _ in range(wanted):
                    cut = text.rindex("\n", 0, cut)
                return start + _byte_length(text[: cut + 1])
            wanted -= count
            end = start
        return 0


def _byte_length(prefix: str) -> int:
    """Bytes a prefix of a read took on disk: a read that began inside a multi-byte
    character shows each stray byte as one U+FFFD (three bytes once encoded)."""
    stray = len(prefix) - len(prefix.lstrip(REPLACEMENT))
    stray = min(stray, 3)
    return len(prefix.encode("utf-8")) - 2 * stray
