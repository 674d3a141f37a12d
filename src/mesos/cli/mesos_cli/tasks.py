"""``mesos task ...``: list tasks, read or follow their sandbox logs, run a command in one."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import click

from mesos.cli.mesos_cli.client import AgentClient, CliError, call_error
from mesos.cli.mesos_cli.context import Ctx, fmt_number, json_option, pass_ctx
from mesos.cli.mesos_cli.sandbox import (
    FileReader,
    Sandbox,
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


def _running_container(ctx: Ctx, task_id: str, framework_id: str | None,
                       verb: str) -> tuple[Sandbox, str]:
    """The running task's sandbox and the id of its executor's container, which
    `exec` and `attach` work on; a clear error when the task has ended or the agent
    names no container."""
    found = find_task(ctx, task_id, framework_id)
    if is_terminal(found):
        raise CliError(f"task {task_id} is {found.get('state')}; {verb} needs a running task")
    sandbox = locate_sandbox(ctx, found)
    container = sandbox.executor.get("container")
    if not container:
        raise CliError(f"the agent at {sandbox.agent.address} reports no container for task {task_id}")
    return sandbox, str(container)


@task.command("exec", context_settings={"ignore_unknown_options": True,
                                        "allow_interspersed_args": False})
@click.option("--interactive", "-i", is_flag=True,
              help="Forward this command's stdin to COMMAND's (until EOF).")
@click.argument("task_id")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--framework", "framework_id", metavar="ID",
              help="The task's framework, when its id is used by several.")
@pass_ctx
def exec_cmd(ctx: Ctx, task_id: str, command: tuple[str, ...], framework_id: str | None,
             interactive: bool) -> None:
    """Run COMMAND inside the task's container and stream its output.

    Uses the agent's LAUNCH_NESTED_CONTAINER_SESSION call; exits with the command's
    exit code. COMMAND's stdin is empty, unless --interactive (-i, before TASK) sends
    ours through ATTACH_CONTAINER_INPUT while its output streams. Should the agent
    refuse that input, COMMAND is killed and exec exits 1, saying why.
    """
    if command and command[0] == "--":  # `mesos task exec TASK -- CMD ...`
        command = command[1:]
    if not command:
        raise click.UsageError("no command given after --")
    sandbox, parent = _running_container(ctx, task_id, framework_id, "exec")
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
    # The session runs (its stream is up): now its stdin can be attached. A refusal
    # kills the command (it would wait forever on a stdin nobody closes) and is our error.
    feeder = StdinFeeder(sandbox.agent, container_id)
    if interactive:
        if feeder.attach():
            feeder.start()
    else:
        feeder.close_input()  # the command reads EOF, as it always did
    decoder = recordio.Decoder()
    try:
        for piece in body:
            for record in decoder.feed(piece):
                _relay(json.loads(record))
    except (recordio.RecordIOError, ValueError) as exc:
        raise CliError(f"the agent's output stream is malformed: {exc}") from None
    if feeder.error is not None:  # said on stderr when it happened; the command was killed
        click.get_current_context().exit(1)
    wait = sandbox.agent.call({"type": "WAIT_NESTED_CONTAINER",
                               "wait_nested_container": {"container_id": container_id}})
    click.get_current_context().exit(_exit_code(wait))


INPUT_CHUNK = 65536  # bytes of our stdin per ATTACH_CONTAINER_INPUT record
INPUT_HEADERS = {"Content-Type": "application/recordio",
                 "Message-Content-Type": "application/json", "Accept": "application/json"}


def _input_record(container_id: dict[str, Any] | None, data: bytes | None = None) -> bytes:
    """One framed ATTACH_CONTAINER_INPUT record: the CONTAINER_ID one, or STDIN data
    (empty data is EOF)."""
    if container_id is not None:
        sub: dict[str, Any] = {"type": "CONTAINER_ID", "container_id": container_id}
    else:
        sub = {"type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
            "type": "STDIN", "data": base64.b64encode(data or b"").decode("ascii")}}}
    call = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": sub}
    return recordio.encode(json.dumps(call, separators=(",", ":")).encode())


class StdinFeeder:
    """Our stdin to a session's, through ATTACH_CONTAINER_INPUT.

    Input that does not get through would leave the command waiting on a stdin that
    never ends (and ``exec`` waiting on its output): so a refusal kills the command at
    once. A refusal that only raced the command's own exit (the kill finds it gone) is
    no failure. With -i the check that we may attach runs before any output is relayed,
    and the stream itself on a thread of its own while the main thread relays output.
    """

    def __init__(self, agent: AgentClient, container_id: dict[str, Any]) -> None:
        self.agent = agent
        self.container_id = container_id
        # Why input failed (said on stderr when it happened); exec then exits 1.
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="stdin", daemon=True)

    def _deliver(self, chunks: Iterable[bytes]) -> str | None:
        """Send one input stream; why it failed, or None (404: the command ended first)."""
        try:
            answer = self.agent.send_stream("/api/v1", chunks, INPUT_HEADERS)
        except CliError as exc:
            return str(exc)
        if answer.status in (200, 404):
            return None
        return call_error("agent", self.agent.address, "ATTACH_CONTAINER_INPUT", answer)

    def _refused(self, reason: str) -> str | None:
        """Kill the command whose input failed; the message to give, or None when it had
        ended already (the failure was a broken pipe or a 404 racing its exit)."""
        call = {"type": "KILL_NESTED_CONTAINER",
                "kill_nested_container": {"container_id": self.container_id}}
        try:
            answer = self.agent.request("POST", "/api/v1", json.dumps(call).encode(),
                                        {"Content-Type": "application/json",
                                         "Accept": "application/json"})
        except CliError as exc:
            return f"the command's stdin: {reason}; killing the command failed too: {exc}"
        if answer.status == 404:
            return None
        if not 200 <= answer.status < 300:
            return (f"the command's stdin: {reason}; killing the command failed too: "
                    + call_error("agent", self.agent.address, "KILL_NESTED_CONTAINER", answer))
        return f"the command's stdin: {reason} (the command was killed)"

    def close_input(self) -> None:
        """Send EOF at once (no input). Raises :class:`CliError` once the command is
        killed, if EOF did not get through."""
        reason = self._deliver([_input_record(self.container_id), _input_record(None, b"")])
        message = None if reason is None else self._refused(reason)
        if message is not None:
            raise CliError(message)

    def attach(self) -> bool:
        """Check that input can be attached: a stream of the CONTAINER_ID record alone, as
        the Mesos CLI sends first (stdin stays open after it). Whether to :meth:`start`;
        raises :class:`CliError` once the command is killed, if refused."""
        reason = self._deliver([_input_record(self.container_id)])
        if reason is None:
            return True
        message = self._refused(reason)
        if message is not None:
            raise CliError(message)
        return False  # it has ended already: nothing to feed

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        reason = self._deliver(self._records())
        message = None if reason is None else self._refused(reason)
        if message is not None:
            self.error = message
            sys.stderr.write(f"error: {message}\n")
            sys.stderr.flush()

    def _records(self) -> Iterator[bytes]:
        yield _input_record(self.container_id)
        fd = sys.stdin.fileno()
        while data := os.read(fd, INPUT_CHUNK):
            yield _input_record(None, data)
        yield _input_record(None, b"")  # EOF


@task.command("attach")
@click.argument("task_id")
@click.option("--framework", "framework_id", metavar="ID",
              help="The task's framework, when its id is used by several.")
@pass_ctx
def attach(ctx: Ctx, task_id: str, framework_id: str | None) -> None:
    """Print the task's output from now on, until it ends (or Ctrl-C).

    Uses the agent's ATTACH_CONTAINER_OUTPUT call on the task's container: stdout and
    stderr go to ours. `mesos task logs` prints what was written before.
    """
    sandbox, container = _running_container(ctx, task_id, framework_id, "attach")
    name = "ATTACH_CONTAINER_OUTPUT"
    call = {"type": name, "attach_container_output": {"container_id": {"value": container}}}
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
    except KeyboardInterrupt:
        click.get_current_context().exit(130)


def _relay(message: dict[str, Any]) -> None:
    """Write one ProcessIO DATA record to our stdout or stderr (CONTROL is ignored)."""
    if message.get("type") != "DATA":
        return
    data = message.get("data", {})
    out = sys.stderr if data.get("type") == "STDERR" else sys.stdout
    out.buffer.write(base64.b64decode(data.get("data", "")))
    out.flush()
