"""``mesos task ...``: list tasks, read or follow their sandbox logs, run a command in one."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from typing import Any

import click

from mesos.cli.mesos_cli.client import CliError, call_error
from mesos.cli.mesos_cli.context import Ctx, fmt_number, json_option, pass_ctx
from mesos.cli.mesos_cli.sandbox import (
    FileReader,
    find_task,
    is_terminal,
    list_tasks,
    locate_sandbox,
    sandbox_path,
)
from mesos.v1 import recordio

__all__ = ["task"]

FOLLOW_INTERVAL = 1.0  # seconds between polls of a followed file


@click.group()
def task() -> None:
    """Tasks, their sandboxes and logs."""


@task.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include tasks in a terminal state.")
@click.option("--framework", "framework_id", metavar="ID", help="Only this framework's tasks.")
@json_option
@pass_ctx
def list_cmd(ctx: Ctx, show_all: bool, framework_id: str | None) -> None:
    """List tasks (only those not yet terminal, unless --all)."""
    tasks = [t for t in list_tasks(ctx, framework_id) if show_all or not is_terminal(t)]
    if ctx.as_json:
        ctx.print_json(tasks)
        return
    rows = [[t["id"], t.get("name", ""), t["framework_id"], t.get("slave_id", ""),
             t.get("state", ""), fmt_number(t.get("resources", {}).get("cpus", 0.0)),
             fmt_number(t.get("resources", {}).get("mem", 0.0))] for t in tasks]
    ctx.print_table(["ID", "NAME", "FRAMEWORK", "AGENT", "STATE", "CPUS", "MEM (MB)"], rows,
                    "No tasks." if show_all else "No active tasks (--all shows finished ones).")


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _still_running(ctx: Ctx, task_: dict[str, Any]) -> bool:
    current = [t for t in list_tasks(ctx, task_["framework_id"], task_["id"])
               if not is_terminal(t)]
    return bool(current)


@task.command("logs")
@click.argument("task_id")
@click.option("--file", "name", default="stdout", show_default=True,
              help="Sandbox file to show: stdout, stderr, or any path inside the sandbox.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing what is appended until the task ends (or Ctrl-C).")
@click.option("--lines", "-n", type=click.IntRange(min=0), default=None,
              help="Start with only the last N lines.")
@click.option("--framework", "framework_id", metavar="ID",
              help="The task's framework, when its id is used by several.")
@pass_ctx
def logs(ctx: Ctx, task_id: str, name: str, follow: bool, lines: int | None,
         framework_id: str | None) -> None:
    """Print a file of the task's sandbox, read from its agent."""
    found = find_task(ctx, task_id, framework_id)
    sandbox = locate_sandbox(ctx, found)
    reader = FileReader(sandbox.agent, sandbox_path(sandbox, name))
    size = reader.size()
    offset = 0 if lines is None else reader.tail_start(size, lines)
    offset = reader.copy(offset, size, _write)
    if not follow:
        return
    try:
        while True:
            # Look at the task first: what it wrote before ending is read just after.
            running = _still_running(ctx, found)
            size = reader.size()
            if size < offset:  # truncated or replaced: start over
                offset = 0
            offset = reader.copy(offset, size, _write)
            if not running:
                return
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        click.get_current_context().exit(130)


def _exit_code(wait: Any) -> int:
    """The exit code for a WAIT_NESTED_CONTAINER answer (``exit_status`` is a wait status)."""
    status = (wait or {}).get("wait_nested_container", {}).get("exit_status")
    if not isinstance(status, int):
        return 1
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return 1


@task.command("exec", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.argument("task_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--framework", "framework_id", metavar="ID",
              help="The task's framework, when its id is used by several.")
@pass_ctx
def exec_cmd(ctx: Ctx, task_id: str, command: tuple[str, ...], framework_id: str | None) -> None:
    """Run COMMAND inside the task's container and stream its output.

    Uses the agent's LAUNCH_NESTED_CONTAINER_SESSION call; exits with the command's
    exit code.
    """
    if command and command[0] == "--":  # `mesos task exec TASK -- CMD ...`
        command = command[1:]
    if not command:
        raise click.UsageError("no command given after --")
    found = find_task(ctx, task_id, framework_id)
    if is_terminal(found):
        raise CliError(f"task {task_id} is {found.get('state')}; exec needs a running task")
    sandbox = locate_sandbox(ctx, found)
    parent = sandbox.executor.get("container")
    if not parent:
        raise CliError(f"the agent at {sandbox.agent.address} reports no container for task {task_id}")
    container_id = {"value": str(uuid.uuid4()), "parent": {"value": parent}}
    name = "LAUNCH_NESTED_CONTAINER_SESSION"
    call = {"type": name, "launch_nested_container_session": {
        "container_id": container_id,
        "command": {"shell": False, "value": command[0], "arguments": list(command)}}}
    head, body = sandbox.agent.stream(
        "POST", "/api/v1", json.dumps(call).encode(),
        {"Content-Type": "application/json", "Accept": "application/recordio",
         "Message-Accept": "application/json"})
    if not 200 <= head.status < 300:
        raise CliError(call_error("agent", sandbox.agent.address, name, head))
    decoder = recordio.Decoder()
    try:
        for piece in body:
            for record in decoder.feed(piece):
                _relay(json.loads(record))
    except (recordio.RecordIOError, ValueError) as exc:
        raise CliError(f"the agent's output stream is malformed: {exc}") from None
    wait = sandbox.agent.call({"type": "WAIT_NESTED_CONTAINER",
                               "wait_nested_container": {"container_id": container_id}})
    click.get_current_context().exit(_exit_code(wait))


def _relay(message: dict[str, Any]) -> None:
    """Write one ProcessIO DATA record to our stdout or stderr (CONTROL is ignored)."""
    if message.get("type") != "DATA":
        return
    data = message.get("data", {})
    out = sys.stderr if data.get("type") == "STDERR" else sys.stdout
    out.buffer.write(base64.b64decode(data.get("data", "")))
    out.flush()
