"""Pure helpers and in-process state of the default executor (src/mesos/executor/default.py).

Nothing here spawns a task process; the real script against a fake agent is covered by
tests/integration/test_default_executor.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesos.executor import command as cx
from mesos.executor import default as dx

SCRIPT = Path(dx.__file__).resolve()


# -- sandboxes, kill policies, states, messages --------------------------------------------


def test_task_sandbox() -> None:
    assert dx.task_sandbox("/sb/run", "web") == "/sb/run/tasks/web"
    assert dx.task_sandbox("/sb/run/", "a.b-c_1") == "/sb/run/tasks/a.b-c_1"
    assert dx.task_sandbox("/", "t") == "/tasks/t"


@pytest.mark.parametrize("task_id", ["", ".", "..", "a/b", "/abs", "nul\0"])
def test_task_sandbox_rejects(task_id: str) -> None:
    with pytest.raises(ValueError):
        dx.task_sandbox("/sb", task_id)


def test_kill_grace_precedence() -> None:
    task_policy = {"kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000}}}
    event_policy = {"grace_period": {"nanoseconds": 250_000_000}}
    assert dx.kill_grace(None, {}) == dx.DEFAULT_KILL_GRACE == 3.0
    assert dx.kill_grace(None, task_policy) == 5.0
    assert dx.kill_grace(event_policy, task_policy) == 0.25
    assert dx.kill_grace({}, task_policy) == 5.0  # a policy without grace period
    assert dx.kill_grace({"grace_period": {"nanoseconds": 0}}, task_policy) == 0.0
    assert dx.kill_grace("junk", {"kill_policy": "junk"}) == 3.0


@pytest.mark.parametrize(
    ("status", "killing", "state"),
    [
        (0, False, "TASK_FINISHED"),
        (3 << 8, False, "TASK_FAILED"),
        (signal.SIGKILL, False, "TASK_FAILED"),
        (-1, False, "TASK_FAILED"),
        (signal.SIGTERM, True, "TASK_KILLED"),
        (0, True, "TASK_KILLED"),  # as in Mesos: a task being killed ends KILLED
        (-1, True, "TASK_KILLED"),
    ],
)
def test_task_state(status: int, killing: bool, state: str) -> None:
    assert dx.task_state(status, killing) == state


def test_exit_message() -> None:
    assert dx.exit_message(0) == "Command exited with status 0"
    assert dx.exit_message(3 << 8) == "Command exited with status 3"
    assert dx.exit_message(signal.SIGKILL) == "Command terminated with signal Killed"
    assert dx.exit_message(-1) == "Command terminated with unknown status"


def test_task_command_environment() -> None:
    environ = {
        b"PATH": b"/usr/bin:/bin",
        b"MESOS_SANDBOX": b"/sb",
        b"MESOS_DIRECTORY": b"/sb",
        b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": b"secret",
    }
    command = {
        "shell": True,
        "value": "echo hi",
        "environment": {
            "variables": [
                {"name": "FOO", "value": "bar"},
                {"name": "MESOS_SANDBOX", "value": "/elsewhere"},
            ]
        },
    }
    path, argv, env = dx.task_command(command, environ, "web", "/sb/tasks/web")
    assert (path, argv) == (b"/bin/sh", ["sh", "-c", "echo hi"])
    assert env[b"MESOS_SANDBOX"] == b"/sb/tasks/web"  # the task's own sandbox wins
    assert env[b"MESOS_DIRECTORY"] == b"/sb"
    assert env[b"MESOS_TASK_ID"] == b"web"
    assert env[b"FOO"] == b"bar"
    assert b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN" not in env
    assert environ[b"MESOS_SANDBOX"] == b"/sb"  # not modified in place


def test_task_command_argv() -> None:
    command = {"shell": False, "value": "sleep", "arguments": ["sleep", "1"]}
    path, argv, _env = dx.task_command(command, {b"PATH": b"/usr/bin:/bin"}, "t", "/x")
    assert path.endswith(b"/sleep")
    assert argv == ["sleep", "1"]
    with pytest.raises(cx.LaunchError):
        dx.task_command({"shell": True}, {}, "t", "/x")


def test_calls() -> None:
    status = cx.make_status("t", "TASK_RUNNING", "e")
    subscribe = dx.subscribe_call("f", "e", [{"task_id": {"value": "t"}}], [status])
    assert subscribe == {
        "type": "SUBSCRIBE",
        "framework_id": {"value": "f"},
        "executor_id": {"value": "e"},
        "subscribe": {
            "unacknowledged_tasks": [{"task_id": {"value": "t"}}],
            "unacknowledged_updates": [{"status": status}],
        },
    }
    update = dx.update_call("f", "e", status)
    assert update == {
        "type": "UPDATE",
        "framework_id": {"value": "f"},
        "executor_id": {"value": "e"},
        "update": {"status": status},
    }
    assert json.loads(cx.json_dumps(update)) == update


# -- the guard's bookkeeping and sweeps ------------------------------------------------


def test_guard_records() -> None:
    groups: set[int] = set()
    assert dx.guard_records(b"+10\n+11\n+1", groups) == b"+1"
    assert groups == {10, 11}
    assert dx.guard_records(b"+12\n-10\njunk\n+\n-x\n*5\n", groups) == b""
    assert groups == {11, 12}
    assert dx.guard_records(b"-99\n", groups) == b""
    assert groups == {11, 12}


def test_proc_stat_ids() -> None:
    stat = b"4242 (odd) name (x)) S 1 4240 4200 0 -1 4194560 0 0"
    assert dx.proc_stat_ids(stat) == (b"S", 4240, 4200)


def test_session_members_lists_this_process() -> None:
    assert os.getpid() in dx.session_members(os.getsid(0))
    assert dx.session_members(2**30) == []


def test_sweep_kills_a_process_group() -> None:
    child = subprocess.Popen(
        ["sh", "-c", "sleep 100 & sleep 100"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while len(dx.session_members(child.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(dx.session_members(child.pid)) >= 2  # sh and its sleeps
        dx.sweep({child.pid}, 0, set())
        assert child.wait(5) == -signal.SIGKILL
        deadline = time.monotonic() + 5
        while dx.session_members(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dx.session_members(child.pid) == []
    finally:
        for pid in [child.pid, *dx.session_members(child.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        child.wait(5)


# -- the script ------------------------------------------------------------------------


def test_script_runs_standalone_without_site_packages(tmp_path: Path) -> None:
    """As the agent runs it (-S -I, stdlib only), it finds command.py next to itself."""
    result = subprocess.run(
        [sys.executable, "-S", "-I", str(SCRIPT)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "default-executor[" in result.stderr
    assert "missing environment variable(s): MESOS_FRAMEWORK_ID" in result.stderr


# -- in-process state, with a fake sender ----------------------------------------------


class FakeSender:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.codes: list[int] = []  # answers to give, 202 once empty

    def post(self, body: bytes) -> tuple[int, bytes]:
        self.calls.append(json.loads(body))
        return (self.codes.pop(0) if self.codes else 202), b""

    def close(self) -> None:
        pass

    def states(self) -> list[tuple[str, str]]:
        return [
            (c["update"]["status"]["task_id"]["value"], c["update"]["status"]["state"])
            for c in self.calls
        ]


@pytest.fixture
def executor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dx.DefaultExecutor]:
    monkeypatch.chdir(tmp_path)  # _spawn changes directory and back
    environ = {
        b"PATH": b"/usr/bin:/bin",
        b"MESOS_FRAMEWORK_ID": b"fw",
        b"MESOS_EXECUTOR_ID": b"ex",
        b"MESOS_AGENT_ENDPOINT": b"127.0.0.1:1",
        b"MESOS_SANDBOX": str(tmp_path).encode(),
    }
    ex = dx.DefaultExecutor(cx.Config(environ), environ)
    ex.sandbox_root = str(tmp_path)
    ex.sender = FakeSender()  # type: ignore[assignment]
    left, right = socket.socketpair()
    ex.stream = left  # connected: updates are POSTed at once
    ex.subscribed = True
    yield ex
    left.close()
    right.close()


def sender(ex: dx.DefaultExecutor) -> FakeSender:
    assert isinstance(ex.sender, FakeSender)
    return ex.sender


def group(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": list(tasks)}}}


def unlaunchable(task_id: str) -> dict[str, Any]:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "a"},
        "command": {"shell": False, "value": "/nonexistent/binary"},
    }


def test_launch_failures_fail_tasks(executor: dx.DefaultExecutor, tmp_path: Path) -> None:
    executor._on_event(group(unlaunchable("one"), unlaunchable("two")))
    assert sender(executor).states() == [
        ("one", "TASK_STARTING"),
        ("two", "TASK_STARTING"),
        ("one", "TASK_FAILED"),
        ("two", "TASK_FAILED"),
    ]
    failed = sender(executor).calls[-1]["update"]["status"]
    assert failed["message"].startswith("Failed to launch command")
    assert (tmp_path / "tasks" / "one" / "stdout").exists()  # the sandbox was made
    assert os.getcwd() == str(tmp_path)
    assert executor.guard_pid is None  # nothing ran, nothing to guard
    executor._check_done()
    assert executor.exit_code is None and executor.exit_at is not None  # awaiting acks
    for call in sender(executor).calls[-2:]:
        status = call["update"]["status"]
        executor._on_event(
            {
                "type": "ACKNOWLEDGED",
                "acknowledged": {"task_id": status["task_id"], "uuid": status["uuid"]},
            }
        )
    executor._check_done()
    assert executor.exit_code == 0


def test_bad_task_id_fails_only_that_task(executor: dx.DefaultExecutor) -> None:
    executor._on_event(group(unlaunchable("../escape")))
    assert sender(executor).states() == [
        ("../escape", "TASK_STARTING"),
        ("../escape", "TASK_FAILED"),
    ]
    assert "cannot name a sandbox" in sender(executor).calls[-1]["update"]["status"]["message"]


def test_kill_of_unknown_task_is_ignored(executor: dx.DefaultExecutor) -> None:
    executor._on_event({"type": "KILL", "kill": {"task_id": {"value": "nope"}}})
    executor._on_event({"type": "MESSAGE", "message": {"data": ""}})
    executor._on_event({"type": "HEARTBEAT"})
    executor._on_event({"type": "SOMETHING_NEW"})
    assert sender(executor).calls == []
    executor._check_done()
    assert executor.exit_code is None


def test_shutdown_without_tasks_exits(executor: dx.DefaultExecutor) -> None:
    executor._on_event({"type": "SHUTDOWN"})
    executor._check_done()
    assert executor.exit_code == 0
    assert sender(executor).calls == []


def test_launch_event_shuts_down(executor: dx.DefaultExecutor) -> None:
    executor._on_event({"type": "LAUNCH", "launch": {"task": unlaunchable("single")}})
    assert executor.shutting_down
    executor._check_done()
    assert executor.exit_code == 0


def test_launch_while_shutting_down(executor: dx.DefaultExecutor) -> None:
    executor.shutting_down = True
    executor._on_event(group(unlaunchable("late")))
    assert sender(executor).states() == [("late", "TASK_KILLED")]


def test_update_delivery(executor: dx.DefaultExecutor) -> None:
    fake = sender(executor)
    fake.codes = [503]
    executor._send_update(cx.make_status("t", "TASK_RUNNING", "ex"))
    assert executor.retry_at is not None and len(executor.pending) == 1
    fake.codes = [400]
    executor._flush()  # rejected outright: dropped
    assert executor.pending == [] and executor.unacked == {}
    executor._send_update(cx.make_status("t", "TASK_RUNNING", "ex"))
    assert executor.pending == [] and len(executor.unacked) == 1  # accepted, unacked
    assert [c["type"] for c in fake.calls] == ["UPDATE"] * 3


def test_subscribe_body_carries_unacknowledged(executor: dx.DefaultExecutor) -> None:
    running = dx.Task({"task_id": {"value": "run"}}, "run", 0)
    running.pid = 1234567  # launched, never acknowledged
    acked = dx.Task({"task_id": {"value": "ack"}}, "ack", 0)
    acked.pid, acked.acknowledged = 1234568, True
    done = dx.Task({"task_id": {"value": "done"}}, "done", 0)
    done.pid, done.exited, done.terminal = 1234569, True, True
    executor.tasks = {t.task_id: t for t in (running, acked, done)}
    executor.stream = None  # disconnected: updates wait for the next SUBSCRIBE
    status = cx.make_status("done", "TASK_FINISHED", "ex")
    executor._send_update(status)
    body = json.loads(executor._subscribe_body())
    assert body["type"] == "SUBSCRIBE"
    assert body["subscribe"]["unacknowledged_tasks"] == [{"task_id": {"value": "run"}}]
    assert body["subscribe"]["unacknowledged_updates"] == [{"status": status}]
