"""The agent service in-process: launches, executor streams, timers, the master link.

An :class:`Agent` is built from flags but never serves HTTP; executors' streams are
stand-ins, and executor processes are real where the test is about them. The master
link is tested against a small in-test master.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mesos.agent import api_operator, launcher
from mesos.agent.containerizer import Isolator, Limitation
from mesos.agent.events import Registered, RunTask, ShutdownExecutor
from mesos.agent.flags import FLAGS
from mesos.agent.master_link import MasterEvent, MasterLink, call
from mesos.agent.service import Agent
from mesos.flags import parse_flags
from mesos.resources import Resources
from mesos.v1 import mesos as v1
from mesos.v1 import recordio

pytestmark = pytest.mark.slow

FW = "fw-1"
WAIT = 10.0


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FakeStream:
    """Stands in for an executor's EventStream."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        self.events.append(json.loads(data))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    argv = ["--master=127.0.0.1:1", f"--work_dir={tmp_path / 'work'}",
            "--executor_shutdown_grace_period=2secs", "--launcher=posix"]
    made = Agent(parse_flags("mesos-agent", FLAGS, argv, {}),
                 resources=Resources.parse("cpus:1;mem:128"), attributes=[], hostname="h",
                 python=sys.executable)
    made.dispatch(Registered("S0"))
    try:
        yield made
    finally:
        for cid in made.containerizer.containers():
            await made.containerizer.destroy(cid)
        if made._watchers:
            await asyncio.wait(set(made._watchers), timeout=5)
        for handles in made._timers.values():
            for handle in handles:
                handle.cancel()


def framework() -> v1.FrameworkInfo:
    return v1.FrameworkInfo(user="u", name="f", id=v1.FrameworkID(value=FW))


def task(task_id: str, cmd: str, env: dict[str, str] | None = None) -> v1.TaskInfo:
    variables = [v1.Variable(name=k, value=v) for k, v in (env or {}).items()]
    command = v1.CommandInfo(value=cmd, environment=v1.Environment(variables=variables))
    executor = v1.ExecutorInfo(executor_id=v1.ExecutorID(value="ex"), command=command)
    return v1.TaskInfo(name=task_id, task_id=v1.TaskID(value=task_id),
                       agent_id=v1.AgentID(value="S0"), executor=executor)


def pending(agent: Agent, task_id: str) -> list[v1.TaskStatus]:
    return agent.updates.pending(FW, task_id)


# --------------------------------------------------------------------------- launching


async def test_a_launch_error_of_any_kind_fails_the_task(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(agent.containerizer, "launch", broken)
    agent.dispatch(RunTask(framework(), task("t", "sleep 30")))
    (failed,) = await wait_until(lambda: pending(agent, "t"), "the task's update")
    assert failed.state == "TASK_FAILED" and failed.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "unexpected" in (failed.message or "")


async def test_a_bad_environment_variable_fails_the_task(agent: Agent) -> None:
    # Popen raises ValueError (not OSError) for these.
    agent.dispatch(RunTask(framework(), task("t", "sleep 30", {"A=B": "x"})))
    (failed,) = await wait_until(lambda: pending(agent, "t"), "the task's update")
    assert failed.state == "TASK_FAILED" and failed.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "environment variable" in (failed.message or "")
    assert not agent.processes
    assert agent.containerizer.containers() == set()


async def test_an_executor_that_subscribes_while_being_started_is_kept(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_launch = agent.containerizer.launch
    stream = FakeStream()
    started: list[int] = []

    async def launch_and_subscribe(*args: Any, **kwargs: Any) -> Any:
        started.append(await real_launch(*args, **kwargs))
        # A quick executor: subscribed before the launch coroutine resumed.
        agent.executor_subscribed(FW, "ex", stream)  # type: ignore[arg-type]
        return started[-1]

    monkeypatch.setattr(agent.containerizer, "launch", launch_and_subscribe)
    agent.dispatch(RunTask(framework(), task("t", "sleep 30")))
    (pid,) = await wait_until(lambda: started, "the executor")
    cid = agent.core.executor(FW, "ex").container_id  # type: ignore[union-attr]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(agent.containerizer.wait(cid), 0.5)
    assert cid in agent.containerizer.containers(), "a healthy executor was killed"
    assert agent.containerizer.pid(cid) == pid
    executor = agent.core.executor(FW, "ex")
    assert executor is not None and executor.state == "RUNNING"
    assert [e["type"] for e in stream.events] == ["SUBSCRIBED", "LAUNCH"]


async def test_destroying_a_container_kills_the_whole_session(agent: Agent) -> None:
    """KILL_TASK's end: the executor and what it forked (the task) all go."""
    agent.dispatch(RunTask(framework(), task("t", "sleep 30 & sleep 30; wait")))
    executor = agent.core.executor(FW, "ex")
    assert executor is not None
    cid = executor.container_id
    await wait_until(lambda: len(agent.containerizer.pids(cid)) >= 3
                     if cid in agent.containerizer.containers() else False, "the processes")
    pids = agent.containerizer.pids(cid)
    agent._destroy(cid)
    await wait_until(lambda: cid not in agent.containerizer.containers(), "the destroy")
    assert [p for p in pids if os.path.exists(f"/proc/{p}") and not _zombie(p)] == []
    await wait_until(lambda: not agent.processes, "the executor's exit to be seen")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


async def test_no_timer_outlives_an_exited_container(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_wait = agent.containerizer.wait

    async def slow_wait(container_id: str) -> Any:
        termination = await real_wait(container_id)
        # The master shuts the executor down while its container is being destroyed.
        agent.dispatch(ShutdownExecutor(FW, "ex"))
        await asyncio.sleep(0.3)
        return termination

    monkeypatch.setattr(agent.containerizer, "wait", slow_wait)
    agent.dispatch(RunTask(framework(), task("t", "sleep 0.5")))
    await wait_until(lambda: agent.processes, "the executor")
    agent.executor_subscribed(FW, "ex", FakeStream())  # type: ignore[arg-type]
    await wait_until(lambda: not agent.processes, "the executor to exit")
    await wait_until(lambda: not agent._watchers, "its watcher")
    assert agent._timers == {}


class _OomSeen(Isolator):
    """An isolator whose container has already been OOM-killed (its notice pending)."""

    name = "test/oom-seen"

    def limitation_on_exit(self, container_id: str) -> Limitation | None:
        return Limitation({"mem": 32.0}, "Memory limit exceeded: test",
                          "REASON_CONTAINER_LIMITATION_MEMORY")


async def test_an_executor_reported_failure_takes_the_containers_limitation(
    agent: Agent,
) -> None:
    """The kernel's OOM kill can reach the executor before the isolator's notice
    ends the container: the executor's TASK_FAILED then carries the limitation."""
    agent.containerizer.isolators.append(_OomSeen())
    agent.dispatch(RunTask(framework(), task("t", "sleep 30")))
    await wait_until(lambda: agent.processes, "the executor")
    agent.executor_subscribed(FW, "ex", FakeStream())  # type: ignore[arg-type]
    status = v1.TaskStatus(task_id=v1.TaskID(value="t"), state="TASK_FAILED",
                           source="SOURCE_EXECUTOR", message="Command terminated with signal",
                           uuid=b"u" * 16)
    agent.executor_update(FW, "ex", status)
    (failed,) = await wait_until(lambda: pending(agent, "t"), "the task's update")
    assert failed.state == "TASK_FAILED" and failed.uuid == status.uuid
    assert failed.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert failed.source == "SOURCE_AGENT" and failed.message == "Memory limit exceeded: test"


async def test_container_usage_for_monitor_statistics_and_get_containers(agent: Agent) -> None:
    """/monitor/statistics lists the running executor's container with the
    containerizer's statistics; GET_CONTAINERS' provider asks the same."""
    agent.dispatch(RunTask(framework(), task("t", "sleep 30")))
    await wait_until(lambda: agent.processes, "the executor")
    (entry,) = await api_operator.statistics_json(agent)
    assert entry["executor_id"] == "ex" and entry["framework_id"] == FW
    assert entry["statistics"]["processes"] >= 1 and entry["statistics"]["timestamp"] > 0
    assert "cpus_user_time_secs" in entry["statistics"]

    # GET_CONTAINERS' default provider asks the same containerizer for an executor.
    executor = agent.core.executor(FW, "ex")
    assert executor is not None
    usage = await agent.container_usage(executor)
    assert usage["processes"] >= 1 and "cpus_user_time_secs" in usage


def test_subscribing_an_executor_that_is_gone_leaves_nothing(agent: Agent) -> None:
    stream = FakeStream()
    assert agent.executor_subscribed(FW, "nope", stream) is False  # type: ignore[arg-type]
    assert agent.streams == {}


# --------------------------------------------------------------------------- the master link


class SlowMaster:
    """SUBSCRIBE gets a stream of ``events``; other calls are answered after ``delay``."""

    def __init__(self, events: list[dict[str, Any]], delay: float = 0.0) -> None:
        self.events = events
        self.delay = delay
        self.calls: list[str] = []
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if body["type"] != "SUBSCRIBE":
            await asyncio.sleep(self.delay)
            self.calls.append(body["type"])
            return web.Response(status=202)
        response = web.StreamResponse(headers={"Mesos-Stream-Id": "s1"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for event in self.events:
            await response.write(recordio.encode(json.dumps(event).encode()))
        with contextlib.suppress(asyncio.CancelledError):
            await self.done.wait()
        return response


@contextlib.asynccontextmanager
async def linked(master: SlowMaster, on_event: Callable[[MasterEvent], None]
                 ) -> AsyncIterator[tuple[MasterLink, asyncio.Task[None]]]:
    app = web.Application()
    app.router.add_post("/api/v1/internal/agent", master.handle)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    link = MasterLink(f"127.0.0.1:{port}", subscribe_call=lambda: call("SUBSCRIBE", None),
                      on_event=on_event, on_disconnected=lambda: None,
                      backoff_factor=0.05)
    running = asyncio.get_running_loop().create_task(link.run())
    try:
        yield link, running
    finally:
        link.stop()
        master.done.set()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await runner.cleanup()


SUBSCRIBED = {"type": "SUBSCRIBED", "subscribed": {"agent_id": {"value": "S0"}}}


async def test_flush_waits_for_the_call_being_sent() -> None:
    master = SlowMaster([SUBSCRIBED], delay=0.5)
    async with linked(master, lambda event: None) as (link, _):
        await wait_until(lambda: link.connected, "the subscription")
        link.post(call("PONG", "S0"))
        await asyncio.sleep(0.1)  # taken off the queue: in flight now
        await link.flush(3.0)
        assert master.calls == ["PONG"]


async def test_a_failing_event_handler_does_not_stop_the_link() -> None:
    seen: list[str] = []

    def on_event(event: MasterEvent) -> None:
        seen.append(event.type)
        if event.type == "HEARTBEAT":
            raise KeyError("broken handler")

    master = SlowMaster([SUBSCRIBED, {"type": "HEARTBEAT"}, {"type": "PING"}])
    async with linked(master, on_event) as (link, running):
        await wait_until(lambda: "PING" in seen, "the event after the failing one")
        assert seen == ["SUBSCRIBED", "HEARTBEAT", "PING"]
        assert not running.done() and link.connected


# --------------------------------------------------------------------------- what is left


async def test_the_remains_of_a_reaped_session_are_killed_but_nothing_else() -> None:
    # The leader exits at once, leaving a process in its session.
    leader = await asyncio.create_subprocess_exec(
        "sh", "-c", "sleep 30 >/dev/null 2>&1 & echo $!", stdout=asyncio.subprocess.PIPE,
        start_new_session=True)
    assert leader.stdout is not None
    orphan = int((await leader.stdout.readline()).decode())
    await leader.wait()
    assert launcher.session_pids(leader.pid) == [orphan]
    assert launcher.kill_session_remains(leader.pid) >= 1
    await wait_until(lambda: not launcher.session_pids(leader.pid), "the orphan to die")
    # A live process with that pid is not a reaped leader (the pid was reused): untouched.
    other = await asyncio.create_subprocess_exec("sleep", "30", start_new_session=True)
    try:
        assert launcher.kill_session_remains(other.pid) == 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(other.wait(), 0.3)
        assert other.returncode is None
    finally:
        launcher.kill_session(other.pid)
        await other.wait()
