"""The real command executor script against an in-test fake agent (aiohttp).

The fake agent implements ``POST /api/v1/executor``: SUBSCRIBE gets a chunked RecordIO
stream (SUBSCRIBED, then whatever the test queues), UPDATE calls are recorded and answered
202 (and, unless disabled, ACKNOWLEDGED on the stream).  The executor runs exactly as the
agent starts it: ``[sys.executable, "-S", "-I", command.py]`` in a new session.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import mesos.executor.command as command_module
from tests.integration.fake_agent import FRAMEWORK_ID, WAIT, FakeAgent

SCRIPT = str(Path(command_module.__file__).resolve())
SOURCE_ARGV = [sys.executable, "-S", "-I", SCRIPT]  # what docs/dev/contracts.md prescribes
EXECUTOR_ID = "exec-1"

pytestmark = pytest.mark.slow


@pytest.fixture
async def agent() -> AsyncIterator[FakeAgent]:
    fake = FakeAgent(EXECUTOR_ID)
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


class Executor:
    """The executor process, started the way the agent starts it (in a new session)."""

    def __init__(
        self,
        agent: FakeAgent,
        sandbox: Path,
        argv: list[str] | None = None,
        new_session: bool = True,
        **extra_env: str,
    ) -> None:
        sandbox.mkdir(parents=True, exist_ok=True)
        self.sandbox = sandbox
        self.stdout = open(sandbox / "stdout", "ab")  # noqa: SIM115 - closed in wait()
        self.stderr = open(sandbox / "stderr", "ab")  # noqa: SIM115
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv or SOURCE_ARGV,
            cwd=sandbox,
            env=executor_env(agent, sandbox, **extra_env),
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=self.stderr,
            start_new_session=new_session,
        )
        self.new_session = new_session
        self.rusage: Any = None

    async def wait(self, timeout: float = WAIT) -> int:
        """Reap the executor (os.wait4, for its rusage); kill it if it overstays."""
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + timeout
        try:
            while True:
                pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
                if pid:
                    self.rusage = rusage
                    self.proc.returncode = os.waitstatus_to_exitcode(status)
                    return self.proc.returncode
                if time.monotonic() > deadline:
                    raise TimeoutError("executor did not exit")
                await asyncio.sleep(0.01)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
                await loop.run_in_executor(None, self.proc.wait)
            self.stdout.close()
            self.stderr.close()

    def stderr_text(self) -> str:
        return (self.sandbox / "stderr").read_text()

    def peak_rss_kib(self) -> int:
        """VmHWM of the live executor.  (Its ru_maxrss from wait4 is useless here: a
        child forked or vforked from this big test process inherits its high-water mark.)"""
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")


@pytest.fixture
def executors() -> Any:
    started: list[Executor] = []

    def start(agent: FakeAgent, sandbox: Path, **kwargs: Any) -> Executor:
        executor = Executor(agent, sandbox, **kwargs)
        started.append(executor)
        return executor

    yield start
    for executor in started:
        # What the agent does once an executor is gone: kill what is left in its group.
        if executor.new_session:
            try:
                os.killpg(executor.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        if executor.proc.returncode is None and executor.proc.poll() is None:
            executor.proc.kill()
            executor.proc.wait(5)


def launch_event(task_id: str, value: str | None = None, **command: Any) -> dict[str, Any]:
    cmd: dict[str, Any] = {"shell": True, **command}
    if value is not None:
        cmd["value"] = value
    task = {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "resources": [],
        "command": cmd,
    }
    return {"type": "LAUNCH", "launch": {"task": task}}


def alive(pid: int) -> bool:
    """Whether pid is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


async def wait_for_file(path: Path, timeout: float = WAIT) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{path} never appeared")


def check_status(status: dict[str, Any], task_id: str) -> None:
    assert status["task_id"] == {"value": task_id}
    assert status["source"] == "SOURCE_EXECUTOR"
    assert status["executor_id"] == {"value": EXECUTOR_ID}
    assert isinstance(status["timestamp"], float)
    assert abs(status["timestamp"] - time.time()) < 60
    raw = base64.b64decode(status["uuid"], validate=True)
    assert len(raw) == 16
    uuid.UUID(bytes=raw)


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["source", "bytecode"])
async def test_task_finishes(agent: FakeAgent, executors: Any, tmp_path: Path, form: str) -> None:
    agent.on_subscribe = [
        launch_event(
            "task-1",
            'echo "out:$MESOS_TASK_ID:$FOO"; pwd > cwd.txt; echo err >&2',
            environment={"variables": [{"name": "FOO", "value": "bar"}]},
        )
    ]
    argv = SOURCE_ARGV if form == "source" else command_module.executor_argv()
    if form == "bytecode":
        assert argv[:3] == [sys.executable, "-S", "-I"]
        assert argv[3].endswith(".pyc")
    executor = executors(agent, tmp_path / "sandbox", argv=argv)
    assert await agent.states_until_terminal() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert await executor.wait() == 0
    for status in agent.updates:
        check_status(status, "task-1")
    assert len({s["uuid"] for s in agent.updates}) == 3
    assert agent.updates[-1]["message"] == "Command exited with status 0"
    subscribe = agent.subscribes[0]["subscribe"]
    assert subscribe == {"unacknowledged_tasks": [], "unacknowledged_updates": []}
    sandbox = executor.sandbox
    assert "out:task-1:bar" in (sandbox / "stdout").read_text()
    assert "err" in (sandbox / "stderr").read_text()
    assert (sandbox / "cwd.txt").read_text().strip() == str(sandbox)


async def test_task_fails(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.split_records = True  # also: records cut across many HTTP chunks
    agent.on_subscribe = [launch_event("task-f", "exit 3")]
    executor = executors(agent, tmp_path)
    assert await agent.states_until_terminal() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert agent.updates[-1]["message"] == "Command exited with status 3"
    assert await executor.wait() == 0


async def test_exec_without_shell(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [
        launch_event(
            "task-x",
            "printf",
            shell=False,
            arguments=["printf", "[%s]", "a b", "$HOME"],
        )
    ]
    executor = executors(agent, tmp_path)
    assert (await agent.states_until_terminal())[-1] == "TASK_FINISHED"
    assert await executor.wait() == 0
    assert "[a b][$HOME]" in (tmp_path / "stdout").read_text()


async def test_launch_failure(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [launch_event("task-n", "/nonexistent/binary", shell=False)]
    executor = executors(agent, tmp_path)
    assert await agent.states_until_terminal() == ["TASK_FAILED"]
    assert agent.updates[0]["message"].startswith("Failed to launch command")
    check_status(agent.updates[0], "task-n")
    assert await executor.wait() == 0


async def test_kill_reaches_grandchildren(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [
        launch_event(
            "task-k",
            "echo $$ > top.pid; sh -c 'echo $$ > mid.pid; sleep 100 & echo $! > bg.pid; sleep 100'",
        )
    ]
    executor = executors(agent, tmp_path)
    assert [(await agent.next_update())["state"] for _ in range(2)] == [
        "TASK_STARTING",
        "TASK_RUNNING",
    ]
    pids = [int(await wait_for_file(tmp_path / f"{n}.pid")) for n in ("top", "mid", "bg")]
    assert all(alive(pid) for pid in pids)
    started = time.monotonic()
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-k"}}})
    status = await agent.next_update()
    assert status["state"] == "TASK_KILLED"
    check_status(status, "task-k")
    assert status["message"].startswith("Command terminated with signal")
    assert time.monotonic() - started < 2.5  # SIGTERM worked, no escalation needed
    assert await executor.wait() == 0
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not [pid for pid in pids if alive(pid)]


async def test_kill_escalates_to_sigkill(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.capabilities = ["TASK_KILLING_STATE"]
    agent.on_subscribe = [launch_event("task-t", "trap '' TERM; echo $$ > top.pid; sleep 100")]
    executor = executors(agent, tmp_path)
    await agent.next_update()
    await agent.next_update()
    pid = int(await wait_for_file(tmp_path / "top.pid"))
    started = time.monotonic()
    kill = {
        "task_id": {"value": "task-t"},
        "kill_policy": {"grace_period": {"nanoseconds": 300_000_000}},
    }
    await agent.send({"type": "KILL", "kill": kill})
    assert (await agent.next_update())["state"] == "TASK_KILLING"
    status = await agent.next_update()
    elapsed = time.monotonic() - started
    assert status["state"] == "TASK_KILLED"
    assert "Killed" in status["message"]
    assert 0.25 <= elapsed < 3
    assert await executor.wait() == 0
    assert not alive(pid)


async def test_shutdown(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [launch_event("task-s", "echo $$ > top.pid; sleep 100")]
    executor = executors(agent, tmp_path)
    await agent.next_update()
    await agent.next_update()
    pid = int(await wait_for_file(tmp_path / "top.pid"))
    await agent.send({"type": "SHUTDOWN"})
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0
    assert not alive(pid)


async def test_second_launch_fails(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.on_subscribe = [launch_event("one", "sleep 100"), launch_event("two", "true")]
    executor = executors(agent, tmp_path)
    seen = [await agent.next_update() for _ in range(3)]
    assert sorted((s["task_id"]["value"], s["state"]) for s in seen) == [
        ("one", "TASK_RUNNING"),
        ("one", "TASK_STARTING"),
        ("two", "TASK_FAILED"),
    ]
    failed = next(s for s in seen if s["task_id"]["value"] == "two")
    assert "multiple tasks" in failed["message"]
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "one"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0


async def test_exits_without_ack(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    agent.auto_ack = False
    agent.on_subscribe = [launch_event("task-a", "true")]
    executor = executors(agent, tmp_path)
    assert (await agent.states_until_terminal())[-1] == "TASK_FINISHED"
    finished = time.perf_counter()
    assert await executor.wait() == 0
    assert 0.5 < time.perf_counter() - finished < 5


async def test_agent_disconnect_kills_task(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [launch_event("task-d", "echo $$ > top.pid; sleep 100")]
    executor = executors(agent, tmp_path, MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD="2secs")
    await agent.next_update()
    await agent.next_update()
    pid = int(await wait_for_file(tmp_path / "top.pid"))
    agent.end_stream()
    assert await executor.wait() != 0
    assert not alive(pid)
    assert [s["state"] for s in agent.updates] == ["TASK_STARTING", "TASK_RUNNING"]


async def test_checkpointed_executor_resubscribes(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.auto_ack = False
    agent.on_subscribe = [launch_event("task-r", "sleep 100")]
    executor = executors(
        agent, tmp_path, MESOS_CHECKPOINT="1", MESOS_SUBSCRIPTION_BACKOFF_MAX="100ms"
    )
    await agent.next_update()
    await agent.next_update()
    agent.subscribed.clear()
    agent.end_stream()
    await asyncio.wait_for(agent.subscribed.wait(), WAIT)
    resubscribe = agent.subscribes[1]["subscribe"]
    assert [t["task_id"]["value"] for t in resubscribe["unacknowledged_tasks"]] == ["task-r"]
    assert [u["status"]["state"] for u in resubscribe["unacknowledged_updates"]] == [
        "TASK_STARTING",
        "TASK_RUNNING",
    ]
    agent.auto_ack = True
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-r"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0


async def test_task_in_own_group_when_executor_is_not_a_group_leader(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    """Started outside a new session, the executor must not signal its parent's group."""
    agent.on_subscribe = [
        launch_event("task-g", "echo $$ > top.pid; sh -c 'sleep 100 & echo $! > bg.pid; wait'")
    ]
    executor = executors(agent, tmp_path, new_session=False)
    await agent.next_update()
    await agent.next_update()
    pids = [int(await wait_for_file(tmp_path / f"{n}.pid")) for n in ("top", "bg")]
    assert os.getpgid(pids[0]) == pids[0] != os.getpgid(0)
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-g"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not [pid for pid in pids if alive(pid)]


async def test_task_signalling_its_group_spares_the_executor(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [launch_event("task-0", "sleep 0.2; kill 0; sleep 5")]
    executor = executors(agent, tmp_path)
    assert await agent.states_until_terminal() == ["TASK_STARTING", "TASK_RUNNING", "TASK_FAILED"]
    assert agent.updates[-1]["message"].startswith("Command terminated with signal")
    assert await executor.wait() == 0


async def test_agent_killpg_of_executor_takes_the_task_along(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    """The agent destroys a container with killpg(executor pid, SIGKILL): nothing escapes."""
    agent.on_subscribe = [
        launch_event("task-p", "echo $$ > top.pid; sh -c 'sleep 100 & echo $! > bg.pid; wait'")
    ]
    executor = executors(agent, tmp_path)
    await agent.next_update()
    await agent.next_update()
    pids = [int(await wait_for_file(tmp_path / f"{n}.pid")) for n in ("top", "bg")]
    os.killpg(executor.proc.pid, signal.SIGKILL)
    assert await executor.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not [pid for pid in pids if alive(pid)]


async def _measure(
    agent: FakeAgent, executors: Any, sandbox: Path, argv: list[str], task_id: str
) -> tuple[float, float, int]:
    """(spawn->SUBSCRIBE, spawn->TASK_RUNNING) in seconds and the executor's peak RSS."""
    agent.auto_ack = False
    agent.on_subscribe = [launch_event(task_id, "true")]
    seen = len(agent.subscribe_times)
    executor = executors(agent, sandbox, argv=argv)
    statuses = [await agent.next_update() for _ in range(3)]
    assert [s["state"] for s in statuses] == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    rss = executor.peak_rss_kib()  # still alive: waiting for the terminal ack
    running_at = agent.update_times[agent.updates.index(statuses[1])]
    acknowledged = {"task_id": {"value": task_id}, "uuid": statuses[2]["uuid"]}
    await agent.send({"type": "ACKNOWLEDGED", "acknowledged": acknowledged})
    assert await executor.wait() == 0
    return (
        agent.subscribe_times[seen] - executor.started,
        running_at - executor.started,
        rss,
    )


async def test_startup_latency_and_memory(agent: FakeAgent, executors: Any, tmp_path: Path) -> None:
    """Spawn -> SUBSCRIBE and spawn -> TASK_RUNNING (median of 20) and peak RSS, for the
    script given as source (compiled at every start) and as its cached bytecode."""
    forms = {"source": SOURCE_ARGV, "bytecode": command_module.executor_argv()}
    results: dict[str, list[tuple[float, float, int]]] = {form: [] for form in forms}
    for run in range(20):
        for form, argv in forms.items():
            results[form].append(
                await _measure(agent, executors, tmp_path / f"{form}-{run}", argv, f"b-{run}")
            )
    for form, samples in results.items():
        subscribe_ms = statistics.median(s[0] for s in samples) * 1000
        running_ms = statistics.median(s[1] for s in samples) * 1000
        rss_kib = statistics.median(s[2] for s in samples)
        print(
            f"\ncommand executor ({form}): spawn->SUBSCRIBE median {subscribe_ms:.1f} ms, "
            f"spawn->TASK_RUNNING median {running_ms:.1f} ms, peak RSS median {rss_kib} KiB"
        )
        # Generous bounds for slow shared machines; typical numbers are ~10x lower.
        assert subscribe_ms < 500
        assert running_ms < 1000
        assert rss_kib < 64 * 1024
