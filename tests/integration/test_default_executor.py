"""The real default executor script (task groups) against an in-test fake agent (aiohttp).

The fake agent implements ``POST /api/v1/executor`` as tests/integration/
test_command_executor.py does: SUBSCRIBE gets a chunked RecordIO stream (SUBSCRIBED, then
whatever the test queues), UPDATE calls are recorded and answered 202 (and, unless
disabled, ACKNOWLEDGED on the stream).  The executor runs exactly as the agent starts it:
``[sys.executable, "-S", "-I", default.py]`` in a new session.  Every wait is bounded and
every process a test causes is killed by pid at the end.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import mesos.executor.default as default_module
from tests.integration.fake_agent import FRAMEWORK_ID, WAIT, FakeAgent

SCRIPT = str(Path(default_module.__file__).resolve())
ARGV = [sys.executable, "-S", "-I", SCRIPT]  # what the agent runs for DEFAULT executors
EXECUTOR_ID = "default-exec-1"

pytestmark = pytest.mark.slow


@pytest.fixture
async def agent() -> AsyncIterator[FakeAgent]:
    fake = FakeAgent(EXECUTOR_ID, executor_type="DEFAULT", container_id="c-1")
    await fake.start()
    yield fake
    await fake.stop()
    assert not fake.bad_calls


def executor_env(agent: FakeAgent, sandbox: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "MESOS_AGENT_ENDPOINT": agent.endpoint,
        "MESOS_FRAMEWORK_ID": FRAMEWORK_ID,
        "MESOS_EXECUTOR_ID": EXECUTOR_ID,
        "MESOS_DIRECTORY": str(sandbox),
        "MESOS_SANDBOX": str(sandbox),
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
        "MESOS_CHECKPOINT": "0",
        "MESOS_SLAVE_ID": "agent-1",
    }
    env.update(extra)
    return env


def alive(pid: int) -> bool:
    """Whether pid is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def kill_pid(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


class Executor:
    """The executor process, started the way the agent starts it (in a new session)."""

    def __init__(self, agent: FakeAgent, sandbox: Path, **extra_env: str) -> None:
        sandbox.mkdir(parents=True, exist_ok=True)
        self.sandbox = sandbox
        self.stdout = open(sandbox / "stdout", "ab")  # noqa: SIM115 - closed in close()
        self.stderr = open(sandbox / "stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ARGV,
            cwd=sandbox,
            env=executor_env(agent, sandbox, **extra_env),
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            start_new_session=True,
        )
        self.pids: list[int] = []  # task processes the test learnt about

    async def wait(self, timeout: float = WAIT) -> int:
        """Reap the executor; kill it if it overstays."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait(5)
                raise TimeoutError("executor did not exit")
            await asyncio.sleep(0.01)
        return self.proc.returncode

    def close(self) -> None:
        """Kill, by pid, the executor and everything left of its session and tasks."""
        pid = self.proc.pid
        if self.proc.poll() is None:
            kill_pid(pid)
            self.proc.wait(5)
        for member in default_module.session_members(pid):  # the executor's session
            kill_pid(member)
        for task_pid in self.pids:
            if alive(task_pid):
                kill_pid(task_pid)
        self.stdout.close()
        self.stderr.close()

    def task_dir(self, task_id: str) -> Path:
        return self.sandbox / "tasks" / task_id

    async def pid_file(self, task_id: str, name: str, timeout: float = WAIT) -> int:
        path = self.task_dir(task_id) / name
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if path.exists():
                text = path.read_text().strip()
                if text:
                    self.pids.append(int(text))
                    return int(text)
            await asyncio.sleep(0.01)
        raise TimeoutError(f"{path} never appeared")

    def stderr_text(self) -> str:
        return (self.sandbox / "stderr").read_text()


@pytest.fixture
def executors() -> Iterator[Any]:
    started: list[Executor] = []

    def start(agent: FakeAgent, sandbox: Path, **extra_env: str) -> Executor:
        executor = Executor(agent, sandbox, **extra_env)
        started.append(executor)
        return executor

    yield start
    for executor in started:
        executor.close()


def task_info(task_id: str, value: str | None = None, **extra: Any) -> dict[str, Any]:
    command: dict[str, Any] = {"shell": True}
    if value is not None:
        command["value"] = value
    command.update(extra.pop("command", {}))
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "resources": [],
        "command": command,
        **extra,
    }


def launch_group(*tasks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "LAUNCH_GROUP", "launch_group": {"task_group": {"tasks": list(tasks)}}}


def kill_event(task_id: str, grace_ns: int | None = None) -> dict[str, Any]:
    kill: dict[str, Any] = {"task_id": {"value": task_id}}
    if grace_ns is not None:
        kill["kill_policy"] = {"grace_period": {"nanoseconds": grace_ns}}
    return {"type": "KILL", "kill": kill}


def check_status(status: dict[str, Any], task_id: str) -> None:
    assert status["task_id"] == {"value": task_id}
    assert status["source"] == "SOURCE_EXECUTOR"
    assert status["executor_id"] == {"value": EXECUTOR_ID}
    assert isinstance(status["timestamp"], float)
    raw = base64.b64decode(status["uuid"], validate=True)
    assert len(raw) == 16
    uuid.UUID(bytes=raw)


async def all_gone(pids: list[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not any(alive(pid) for pid in pids)


async def session_empty(session: int, timeout: float = 5.0) -> bool:
    """Whether nothing (tasks, the guard) is left of an executor's session, in time."""
    deadline = time.monotonic() + timeout
    while default_module.session_members(session) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not default_module.session_members(session)


SLEEPER = "echo $$ > top.pid; sleep 100 & echo $! > bg.pid; wait"

# ---------------------------------------------------------------------------------------


async def test_group_of_two_finishes(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [
        launch_group(
            task_info(
                "web",
                'echo "out:$MESOS_TASK_ID:$FOO:$MESOS_SANDBOX"; pwd > cwd.txt; echo err >&2',
                command={"environment": {"variables": [{"name": "FOO", "value": "bar"}]}},
            ),
            task_info(
                "side",
                "printf",
                command={"shell": False, "arguments": ["printf", "[%s]", "a b", "$HOME"]},
            ),
        )
    ]
    executor = executors(agent, tmp_path / "sandbox")
    states = await agent.states(["web", "side"])
    assert states == {
        "web": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
        "side": ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"],
    }
    assert await executor.wait() == 0
    for status in agent.updates:
        check_status(status, status["task_id"]["value"])
    assert len({s["uuid"] for s in agent.updates}) == 6
    assert agent.last("web")["message"] == "Command exited with status 0"
    assert agent.subscribes[0]["subscribe"] == {
        "unacknowledged_tasks": [],
        "unacknowledged_updates": [],
    }
    # Each task has its own sandbox: cwd, MESOS_SANDBOX, stdout and stderr.
    web_dir = executor.task_dir("web")
    assert (web_dir / "stdout").read_text() == f"out:web:bar:{web_dir}\n"
    assert (web_dir / "stderr").read_text() == "err\n"
    assert (web_dir / "cwd.txt").read_text().strip() == str(web_dir)
    assert (executor.task_dir("side") / "stdout").read_text() == "[a b][$HOME]"
    assert "out:web" not in (executor.sandbox / "stdout").read_text()


async def test_failing_task_kills_its_group(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        launch_group(
            task_info("bad", "while [ ! -s ../good/bg.pid ]; do sleep 0.02; done; exit 3"),
            task_info("good", SLEEPER),
        )
    ]
    executor = executors(agent, tmp_path)
    pids = [await executor.pid_file("good", name) for name in ("top.pid", "bg.pid")]
    states = await agent.states(["bad", "good"])
    assert states == {
        "bad": ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"],
        "good": ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
    }
    assert agent.last("bad")["message"] == "Command exited with status 3"
    assert agent.last("good")["message"].startswith("Command terminated with signal")
    assert await executor.wait() == 0
    assert await all_gone(pids)
    assert await session_empty(executor.proc.pid)


async def test_launch_failure_fails_task_and_kills_group(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        launch_group(
            task_info("missing", "/nonexistent/binary", command={"shell": False}),
            task_info("sleeper", "echo $$ > top.pid; exec sleep 100"),
        )
    ]
    executor = executors(agent, tmp_path)
    states = await agent.states(["missing", "sleeper"])
    assert states == {
        "missing": ["TASK_STARTING", "TASK_FAILED"],
        "sleeper": ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
    }
    assert agent.last("missing")["message"].startswith("Failed to launch command")
    assert await executor.wait() == 0
    assert await all_gone([await executor.pid_file("sleeper", "top.pid")])


async def test_kill_one_task_spares_other_groups(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    """KILL takes the task and its group; a task of a later LAUNCH_GROUP keeps running."""
    agent.on_subscribe = [
        launch_group(task_info("a1", SLEEPER), task_info("a2", "exec sleep 100")),
    ]
    executor = executors(agent, tmp_path)
    first = [await executor.pid_file("a1", name) for name in ("top.pid", "bg.pid")]
    await agent.send(launch_group(task_info("b1", SLEEPER)))
    second = [await executor.pid_file("b1", name) for name in ("top.pid", "bg.pid")]
    started = time.monotonic()
    await agent.send(kill_event("a1"))
    states = await agent.states(["a1", "a2"])
    assert states["a1"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
    assert states["a2"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"]
    assert states["b1"] == ["TASK_STARTING", "TASK_RUNNING"]
    assert time.monotonic() - started < 2.5  # SIGTERM worked, no escalation needed
    assert agent.last("a1")["message"].startswith("Command terminated with signal")
    assert await all_gone(first)
    assert all(alive(pid) for pid in second)
    assert executor.proc.poll() is None
    await agent.send(kill_event("b1"))
    assert (await agent.states(["b1"]))["b1"] == ["TASK_KILLED"]
    assert await executor.wait() == 0
    assert await all_gone(second)


async def test_kill_escalates_to_sigkill(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.capabilities = ["TASK_KILLING_STATE"]
    agent.on_subscribe = [
        launch_group(
            task_info("stubborn", "trap '' TERM; echo $$ > top.pid; sleep 100"),
            task_info(
                "polite",
                "echo $$ > top.pid; exec sleep 100",
                kill_policy={"grace_period": {"nanoseconds": 5_000_000_000}},
            ),
        )
    ]
    executor = executors(agent, tmp_path)
    pids = [await executor.pid_file(t, "top.pid") for t in ("stubborn", "polite")]
    started = time.monotonic()
    await agent.send(kill_event("stubborn", grace_ns=300_000_000))
    states = await agent.states(["stubborn", "polite"])
    elapsed = time.monotonic() - started
    assert states["stubborn"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    assert states["polite"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    assert "Killed" in agent.last("stubborn")["message"]
    assert 0.25 <= elapsed < 3
    assert await executor.wait() == 0
    assert await all_gone(pids)


async def test_shutdown_kills_everything(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [
        launch_group(task_info("s1", SLEEPER), task_info("s2", "echo $$ > top.pid; sleep 100")),
    ]
    executor = executors(agent, tmp_path)
    pids = [await executor.pid_file("s1", name) for name in ("top.pid", "bg.pid")]
    pids.append(await executor.pid_file("s2", "top.pid"))
    await agent.send({"type": "SHUTDOWN"})
    states = await agent.states(["s1", "s2"])
    assert states["s1"][-1] == states["s2"][-1] == "TASK_KILLED"
    assert await executor.wait() == 0
    assert await all_gone(pids)


async def test_shutdown_without_tasks(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [{"type": "SHUTDOWN"}]
    executor = executors(agent, tmp_path)
    assert await executor.wait() == 0
    assert agent.updates == []


async def test_messages_are_ignored(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [
        {"type": "MESSAGE", "message": {"data": base64.b64encode(b"hi").decode()}},
        {"type": "HEARTBEAT"},
        launch_group(task_info("m", "sleep 0.2")),
        {"type": "MESSAGE", "message": {"data": ""}},
    ]
    executor = executors(agent, tmp_path)
    assert (await agent.states(["m"]))["m"] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert await executor.wait() == 0
    assert len(agent.updates) == 3


async def test_exits_without_ack(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.auto_ack = False
    agent.on_subscribe = [launch_group(task_info("x", "true"), task_info("y", "true"))]
    executor = executors(agent, tmp_path)
    await agent.states(["x", "y"])
    finished = time.monotonic()
    assert await executor.wait() == 0
    assert 0.5 < time.monotonic() - finished < 5


async def test_killed_executor_leaves_no_task_behind(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    """The agent destroys a container with killpg(executor pid, SIGKILL); the tasks, in
    process groups of their own, must go too (the executor's guard process sees to it)."""
    agent.on_subscribe = [launch_group(task_info("g1", SLEEPER), task_info("g2", SLEEPER))]
    executor = executors(agent, tmp_path)
    pids = [await executor.pid_file(t, n) for t in ("g1", "g2") for n in ("top.pid", "bg.pid")]
    assert all(os.getpgid(pid) != executor.proc.pid for pid in pids)
    os.killpg(executor.proc.pid, signal.SIGKILL)
    assert await executor.wait() == -signal.SIGKILL
    assert await all_gone(pids)
    assert await session_empty(executor.proc.pid)  # the guard is gone too


async def test_agent_disconnect_kills_tasks(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [launch_group(task_info("d", SLEEPER))]
    executor = executors(agent, tmp_path, MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD="2secs")
    pids = [await executor.pid_file("d", name) for name in ("top.pid", "bg.pid")]
    agent.end_stream()
    assert await executor.wait() != 0
    assert await all_gone(pids)
    assert [s["state"] for s in agent.updates] == ["TASK_STARTING", "TASK_RUNNING"]


async def test_checkpointed_executor_resubscribes(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.auto_ack = False
    agent.on_subscribe = [launch_group(task_info("r1", "sleep 100"), task_info("r2", "sleep 100"))]
    executor = executors(
        agent, tmp_path, MESOS_CHECKPOINT="1", MESOS_SUBSCRIPTION_BACKOFF_MAX="100ms"
    )
    assert len([await agent.next_update() for _ in range(4)]) == 4
    agent.subscribed.clear()
    agent.end_stream()
    await asyncio.wait_for(agent.subscribed.wait(), WAIT)
    resubscribe = agent.subscribes[1]["subscribe"]
    assert sorted(t["task_id"]["value"] for t in resubscribe["unacknowledged_tasks"]) == [
        "r1",
        "r2",
    ]
    updates = [
        (u["status"]["task_id"]["value"], u["status"]["state"])
        for u in resubscribe["unacknowledged_updates"]
    ]
    assert sorted(updates) == [
        ("r1", "TASK_RUNNING"),
        ("r1", "TASK_STARTING"),
        ("r2", "TASK_RUNNING"),
        ("r2", "TASK_STARTING"),
    ]
    agent.auto_ack = True
    await agent.send(kill_event("r2"))
    states = await agent.states(["r1", "r2"])
    assert states == {"r1": ["TASK_KILLED"], "r2": ["TASK_KILLED"]}
    assert await executor.wait() == 0


async def test_finished_task_leaves_its_group_running(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        launch_group(task_info("quick", "true"), task_info("slow", "sleep 0.5; echo done"))
    ]
    executor = executors(agent, tmp_path)
    states = await agent.states(["quick", "slow"])
    assert states["quick"][-1] == states["slow"][-1] == "TASK_FINISHED"
    assert await executor.wait() == 0
    assert (executor.task_dir("slow") / "stdout").read_text() == "done\n"


async def test_sigterm_shuts_down(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [launch_group(task_info("t", SLEEPER))]
    executor = executors(agent, tmp_path)
    pids = [await executor.pid_file("t", name) for name in ("top.pid", "bg.pid")]
    executor.proc.send_signal(signal.SIGTERM)
    assert (await agent.states(["t"]))["t"][-1] == "TASK_KILLED"
    assert await executor.wait() == 0
    assert await all_gone(pids)
    assert await session_empty(executor.proc.pid)


async def test_failing_health_check_kills_the_task_and_its_group(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    health_check = {
        "type": "COMMAND",
        # Runs in the task's own sandbox, with its environment.
        "command": {"value": 'echo "$MESOS_TASK_ID" >> checks.txt; test -e healthy'},
        "delay_seconds": 0.0,
        "interval_seconds": 0.1,
        "timeout_seconds": 5.0,
        "grace_period_seconds": 0.0,
        "consecutive_failures": 2,
    }
    agent.on_subscribe = [
        launch_group(
            task_info("sick", "sleep 100", health_check=health_check),
            task_info("other", SLEEPER),
        )
    ]
    executor = executors(agent, tmp_path)
    states = await agent.states(["sick", "other"])
    assert states == {
        "sick": ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLED"],
        "other": ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
    }
    sick = [s for s in agent.updates if s["task_id"]["value"] == "sick"]
    assert sick[2]["healthy"] is False
    assert sick[2]["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
    assert sick[3]["healthy"] is False
    assert "health check" in sick[3]["message"]
    assert "healthy" not in agent.last("other")
    assert (executor.task_dir("sick") / "checks.txt").read_text().split() == ["sick", "sick"]
    assert await executor.wait() == 0
    assert await session_empty(executor.proc.pid)


async def test_general_check_of_a_group_task(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    check = {
        "type": "COMMAND",
        "command": {"command": {"value": "exit 4"}},
        "delay_seconds": 0.0,
        "interval_seconds": 0.1,
    }
    agent.on_subscribe = [launch_group(task_info("checked", "sleep 100", check=check))]
    executor = executors(agent, tmp_path)
    statuses = [await agent.next_update() for _ in range(3)]
    assert [s["state"] for s in statuses] == ["TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING"]
    assert statuses[1]["check_status"] == {"type": "COMMAND", "command": {}}
    assert statuses[2]["check_status"] == {"type": "COMMAND", "command": {"exit_code": 4}}
    assert statuses[2]["reason"] == "REASON_TASK_CHECK_STATUS_UPDATED"
    await agent.send(kill_event("checked"))
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0
