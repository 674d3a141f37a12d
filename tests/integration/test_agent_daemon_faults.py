"""A real ``mesos-agent`` when things go wrong: executors that lose their stream or
subscribe late, ids that are not path components, events that cannot be handled.

Uses the fake master and helpers of ``test_agent_daemon``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import aiohttp
import pytest

from mesos.agent import checkpoint
from tests.integration.test_agent_daemon import (
    AGENT_ID,
    FW,
    AgentProcess,
    Agents,
    EventReader,
    FakeMaster,
    agents,  # noqa: F401 - fixture
    b64,
    command_task,
    custom_task,
    master,  # noqa: F401 - fixture
    sandbox,
    wait_until,
)

pytestmark = pytest.mark.slow

IDS = {"framework_id": {"value": FW}, "executor_id": {"value": "manual"}}
ACCEPT = {"Accept": "application/json"}


def subscribe(tasks: list[Any] | None = None, updates: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "SUBSCRIBE", **IDS, "subscribe": {
        "unacknowledged_tasks": tasks or [], "unacknowledged_updates": updates or []}}


async def types(reader: EventReader, count: int) -> list[str | None]:
    out: list[str | None] = []
    for _ in range(count):
        event = await reader.next()
        out.append(None if event is None else event["type"])
    return out


async def test_a_resubscribing_executor_hands_over_what_was_not_acknowledged(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    # The agent starts a process that never subscribes; the test speaks for it.
    await master.run_task(custom_task("t", "manual", "sleep 100"))
    await wait_until(lambda: sandbox(agent, "manual").exists(), "the sandbox")
    url = agent.url + "/api/v1/executor"
    async with aiohttp.ClientSession() as session:
        first = await session.post(url, json=subscribe(), headers=ACCEPT)
        one = EventReader(first)
        assert await types(one, 1) == ["SUBSCRIBED"]
        task = (await one.next() or {})["launch"]["task"]
        first.close()
        await wait_until(lambda: "closed its event stream" in agent.log(), "the disconnection")
        # Meanwhile: a task for the disconnected executor waits for it.
        await master.run_task(custom_task("t2", "manual", "unused"))
        await wait_until(lambda: "Queued task 't2'" in agent.log(), "t2 queued")
        # Its update of 't' never got through (UPDATE failed); it comes with SUBSCRIBE.
        status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                  "source": "SOURCE_EXECUTOR", "uuid": b64(bytes(range(16)))}
        second = await session.post(url, json=subscribe([task], [{"status": status}]),
                                    headers=ACCEPT)
        two = EventReader(second)
        events = [await two.next() or {} for _ in range(3)]
        assert [e.get("type") for e in events] == ["SUBSCRIBED", "ACKNOWLEDGED", "LAUNCH"]
        assert events[1]["acknowledged"]["uuid"] == status["uuid"]
        assert events[2]["launch"]["task"]["task_id"] == {"value": "t2"}
        running = await master.wait_state("t", "TASK_RUNNING")
        assert running["uuid"] == status["uuid"] and running["agent_id"] == {"value": AGENT_ID}
        second.close()


async def test_a_task_the_resubscribing_executor_never_got_is_lost(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    await master.run_task(custom_task("t", "manual", "sleep 100"))
    await wait_until(lambda: sandbox(agent, "manual").exists(), "the sandbox")
    url = agent.url + "/api/v1/executor"
    async with aiohttp.ClientSession() as session:
        first = await session.post(url, json=subscribe(), headers=ACCEPT)
        assert await types(EventReader(first), 2) == ["SUBSCRIBED", "LAUNCH"]
        second = await session.post(url, json=subscribe(), headers=ACCEPT)  # names no task
        assert await types(EventReader(second), 1) == ["SUBSCRIBED"]
        lost = await master.wait_state("t", "TASK_LOST")
        assert lost["source"] == "SOURCE_AGENT"
        second.close()


async def test_subscribing_while_shut_down_gets_shutdown_and_the_stream_ends(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    task = custom_task("t", "manual", "sleep 100")
    task["executor"]["shutdown_grace_period"] = {"nanoseconds": 5 * 10**9}  # not killed soon
    await master.run_task(task)
    await wait_until(lambda: sandbox(agent, "manual").exists(), "the sandbox")
    url = agent.url + "/api/v1/executor"
    async with aiohttp.ClientSession() as session:
        first = await session.post(url, json=subscribe(), headers=ACCEPT)
        one = EventReader(first)
        assert await types(one, 2) == ["SUBSCRIBED", "LAUNCH"]
        await master.send("SHUTDOWN_EXECUTOR", IDS)
        assert await types(one, 1) == ["SHUTDOWN"]
        second = await session.post(url, json=subscribe(), headers=ACCEPT)
        assert second.status == 200
        assert await asyncio.wait_for(types(EventReader(second), 2), 2) == ["SHUTDOWN", None]


async def test_ids_that_are_not_one_path_component_are_refused(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    escape = agent.work_dir.parent / "escaped"
    bad = "../" * 12 + str(escape).lstrip("/")
    await master.run_task(command_task(bad, "echo hi"))
    error = await master.wait_state(bad, "TASK_ERROR")
    assert error["reason"] == "REASON_TASK_INVALID" and error["source"] == "SOURCE_AGENT"
    await master.run_task(custom_task("ok", "..", "echo hi"))
    await master.wait_state("ok", "TASK_ERROR")
    assert not escape.exists()
    assert not (agent.work_dir / "slaves" / AGENT_ID / "frameworks" / FW).exists()


async def test_an_event_the_agent_cannot_handle_does_not_stop_it(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    # No framework id: the agent cannot even report on the task.
    await master.send("RUN_TASK", {"framework_info": {"user": "u", "name": "n"},
                                   "task": command_task("orphan", "echo hi")})
    await master.run_task(command_task("fine", "echo hi"))
    await master.wait_state("fine", "TASK_FINISHED")
    assert agent.proc is not None and agent.proc.poll() is None
    assert master.updates("orphan") == []


async def test_subscribe_not_accepting_json_is_406_before_any_lookup(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    agent = await agents.start()
    body = {"type": "SUBSCRIBE", "framework_id": {"value": "nope"},
            "executor_id": {"value": "nope"}, "subscribe": {}}
    status, _ = await agent.post("/api/v1/executor", body,
                                 **{"Content-Type": "application/json", "Accept": "text/html"})
    assert status == 406


# ----------------------------------------------- an agent dying before its executor subscribed


def checkpointed_pid(agent: AgentProcess) -> tuple[int, int | None] | None:
    """The checkpointed (pid, start time) of executor 'manual', once written."""
    found = list((agent.work_dir / "meta" / "slaves" / AGENT_ID / "frameworks" / FW
                  / "executors" / "manual" / "runs").glob("*/pids/forked.pid"))
    if not found:
        return None
    parts = found[0].read_text().split()
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else None


def queued_task_checkpointed(agent: AgentProcess) -> bool:
    runs = (agent.work_dir / "meta" / "slaves" / AGENT_ID / "frameworks" / FW / "executors"
            / "manual" / "runs")
    return any(runs.glob("*/tasks/t/task.info"))


async def crash_while_queued(fake: FakeMaster, holder: Agents) -> tuple[int, int | None]:
    """Start 't' on an executor that does not subscribe yet, then SIGKILL the agent."""
    agent = await holder.start()
    await fake.run_task(custom_task("t", "manual", "sleep 100"), checkpoint=True)
    await wait_until(lambda: "Queued task 't'" in agent.log(), "t to be queued")
    pid = await wait_until(lambda: checkpointed_pid(agent), "the executor's pid checkpointed")
    await wait_until(lambda: queued_task_checkpointed(agent), "the queued task checkpointed")
    assert agent.proc is not None
    agent.proc.kill()
    agent.proc.wait(timeout=10)
    assert checkpoint.same_process(*pid)  # the executor lives on, in its own session
    return pid


def kill_executor(pid: tuple[int, int | None]) -> None:
    if checkpoint.same_process(*pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid[0], signal.SIGKILL)


async def test_a_task_queued_for_a_starting_executor_survives_an_agent_crash(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    pid = await crash_while_queued(master, agents)
    try:
        # The agent waits for its executors before it re-registers with the master.
        agent = await agents.start_unregistered("--executor_reregistration_timeout=30secs")
        await wait_until(lambda: "Recovering agent" in agent.log(), "the recovery")
        url = agent.url + "/api/v1/executor"
        async with aiohttp.ClientSession() as session:
            # The executor subscribes at last: the recovered task is sent to it.
            stream = await session.post(url, json=subscribe(), headers=ACCEPT)
            assert stream.status == 200, await stream.text()
            reader = EventReader(stream)
            events = [await reader.next() or {} for _ in range(2)]
            assert [e.get("type") for e in events] == ["SUBSCRIBED", "LAUNCH"]
            assert events[1]["launch"]["task"]["task_id"] == {"value": "t"}
            await wait_until(lambda: len(master.subscribes) >= 2, "the agent to re-register")
            tasks = master.subscribes[-1]["subscribe"]["tasks"]
            assert [(t["task_id"]["value"], t["state"]) for t in tasks] == [
                ("t", "TASK_STAGING")]
            status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                      "source": "SOURCE_EXECUTOR", "uuid": b64(bytes(range(16)))}
            update = {"type": "UPDATE", **IDS, "update": {"status": status}}
            async with session.post(url, json=update) as resp:
                assert resp.status == 202
            running = await master.wait_state("t", "TASK_RUNNING")
            assert running["agent_id"] == {"value": AGENT_ID}
            assert (await reader.next() or {}).get("type") == "ACKNOWLEDGED"
            stream.close()
    finally:
        kill_executor(pid)


async def test_a_queued_task_fails_when_its_executor_is_gone_after_the_crash(
    master: FakeMaster, agents: Agents  # noqa: F811
) -> None:
    pid = await crash_while_queued(master, agents)
    kill_executor(pid)
    await wait_until(lambda: not checkpoint.same_process(*pid), "the executor to die")
    agent = await agents.start()
    failed = await master.wait_state("t", "TASK_FAILED")
    assert failed["source"] == "SOURCE_AGENT"
    assert failed["reason"] == "REASON_EXECUTOR_TERMINATED"
    assert agent.proc is not None and agent.proc.poll() is None
