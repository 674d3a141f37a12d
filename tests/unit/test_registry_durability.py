"""The master with a SQLite registry, in-process: nothing it acknowledges is lost to a
crash, recovered frameworks get their failover timeout, and the post-recovery removal
limit holds."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from mesos.errors import ValidationError
from mesos.master import operator_views, views
from mesos.master.registry import UpdateWeights
from mesos.master.service import Master
from tests.unit.test_master_core import (
    FakeStream,
    call,
    master,
    reconcile,
    register,
    reported,
    subscribe,
)
from tests.unit.test_registry_master import settle


async def until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    """Let the loop run until ``predicate()`` holds (bounded in time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def test_update_framework_is_in_the_registry_once_it_is_answered(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    fw = subscribe(m, FakeStream(), {"user": "u", "name": "n", "failover_timeout": 60})
    await settle(m)
    body = call({"type": "UPDATE_FRAMEWORK", "framework_id": {"value": fw.id}, "update_framework": {
        "framework_info": {"user": "u", "name": "renamed", "id": {"value": fw.id},
                           "failover_timeout": 120}}})
    assert body.update_framework is not None
    m.update_framework(fw, body.update_framework)
    await m.registrar.barrier()  # what the HTTP edge awaits before answering 200
    # A crash now (no orderly stop): the next master knows the updated framework.
    again = master(work)
    info = again.frameworks[fw.id].info
    assert (info.name, info.failover_timeout) == ("renamed", 120)
    await again.stop()
    await m.stop()


async def test_teardown_is_written_before_anything_is_torn_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    stream = FakeStream()
    fw = subscribe(m, stream, {"user": "u", "name": "n", "failover_timeout": 60})
    await settle(m)
    entered, release = threading.Event(), threading.Event()
    real_put = m.registrar.storage.put

    def slow_put(key: str, value: bytes, version: int) -> int:
        entered.set()
        release.wait(10)
        return real_put(key, value, version)

    monkeypatch.setattr(m.registrar.storage, "put", slow_put)
    request = asyncio.create_task(m.teardown(fw))
    assert await asyncio.to_thread(entered.wait, 10)
    # Mid-write: the framework is still there, its stream still open.
    assert fw.id in m.frameworks and not stream.closed
    release.set()
    await request
    assert fw.id not in m.frameworks and stream.closed
    assert [f.id for f in m.completed_frameworks] == [fw.id]
    # A crash right after the answer: the next master has no such framework.
    again = master(work)
    assert fw.id not in again.frameworks
    await again.stop()
    await m.stop()


async def test_a_cancelled_mark_gone_still_lands_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's request goes away while MarkAgentGone is being written: the write
    lands, the master applies it, and the next write still finds the store in step."""
    m = master(f"--work_dir={tmp_path}")
    agent = register(m, FakeStream())
    await settle(m)
    entered, release = threading.Event(), threading.Event()
    real_put = m.registrar.storage.put

    def slow_put(key: str, value: bytes, version: int) -> int:
        entered.set()
        release.wait(10)
        return real_put(key, value, version)

    monkeypatch.setattr(m.registrar.storage, "put", slow_put)
    request = asyncio.create_task(m.mark_gone(agent.id))
    assert await asyncio.to_thread(entered.wait, 10)
    request.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await request
    await until(lambda: agent.id not in m.agents, "the gone agent to be removed")
    assert agent.id in m.registrar.registry.gone
    assert await m.registrar.apply(UpdateWeights(weights={"eng": 2.0}))
    await m.stop()


async def test_tasks_back_from_an_unreachable_agent_are_reported_once_it_is_readmitted(
    tmp_path: Path,
) -> None:
    m = master(f"--work_dir={tmp_path}")
    fw_stream = FakeStream()
    fw = subscribe(m, fw_stream, {"user": "u", "name": "n",
                                  "capabilities": [{"type": "PARTITION_AWARE"}]})
    agent = register(m, FakeStream(), "A1", tasks=[reported("t1", fw.id, "A1", "TASK_RUNNING")])
    await settle(m)
    m.mark_unreachable(agent, "test")
    await settle(m)
    assert "t1" in fw.unreachable_tasks

    def back_updates() -> list[dict[str, Any]]:
        return [e for e in fw_stream.of("UPDATE")
                if e["update"]["status"].get("reason") == "REASON_AGENT_REREGISTERED"]

    register(m, FakeStream(), "A1", tasks=[reported("t1", fw.id, "A1", "TASK_RUNNING")])
    # The registry still says unreachable: the framework hears nothing yet.
    assert back_updates() == []
    await settle(m)
    assert [e["update"]["status"]["state"] for e in back_updates()] == ["TASK_RUNNING"]
    await m.stop()


async def _two_agents_then_restart(tmp_path: Path, *flags: str) -> tuple[Master, str, str]:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    first, second = register(m, FakeStream()), register(m, FakeStream())
    await settle(m)
    await m.stop()
    return master(work, "--agent_reregister_timeout=10ms", *flags), first.id, second.id


async def test_removal_limit_exceeded_exits_without_touching_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    again, first, second = await _two_agents_then_restart(
        tmp_path, "--recovery_agent_removal_limit=40%")
    exits: list[str] = []
    monkeypatch.setattr(again, "_removal_limit_exceeded", exits.append)
    register(again, FakeStream(), first)
    again.start()
    await until(lambda: bool(exits), "the removal limit to be checked")
    await settle(again)
    assert "limit exceeded" in exits[0] and second in exits[0]
    assert second in again.recovered_agents and not again.unreachable_agents
    assert set(again.registrar.registry.agents) == {first, second}
    await again.stop()


async def test_removal_within_the_limit_marks_agents_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    again, first, second = await _two_agents_then_restart(
        tmp_path, "--recovery_agent_removal_limit=50%")
    exits: list[str] = []
    monkeypatch.setattr(again, "_removal_limit_exceeded", exits.append)
    register(again, FakeStream(), first)
    again.start()
    await until(lambda: second in again.unreachable_agents, "the missing agent to be unreachable")
    assert exits == [] and second in again.registrar.registry.unreachable
    # Reconciling a task on it: TASK_UNREACHABLE to partition-aware frameworks,
    # TASK_LOST to the others.
    aware_stream, plain_stream = FakeStream(), FakeStream()
    aware = subscribe(again, aware_stream, {"user": "u", "name": "a",
                                            "capabilities": [{"type": "PARTITION_AWARE"}]})
    plain = subscribe(again, plain_stream, {"user": "u", "name": "p"})
    await settle(again)
    assert reconcile(again, aware, aware_stream, "t", second)["state"] == "TASK_UNREACHABLE"
    assert reconcile(again, plain, plain_stream, "t", second)["state"] == "TASK_LOST"
    await again.stop()


@pytest.mark.parametrize("value", ["50", "150%", "x%", "-1%"])
async def test_removal_limit_must_be_a_percentage(value: str) -> None:
    with pytest.raises(ValidationError, match="recovery_agent_removal_limit"):
        master(f"--recovery_agent_removal_limit={value}")


async def test_recovered_frameworks_that_do_not_come_back_are_torn_down(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    keep = subscribe(m, FakeStream(), {"user": "u", "name": "keep", "failover_timeout": 60})
    drop = subscribe(m, FakeStream(), {"user": "u", "name": "drop", "failover_timeout": 0.2})
    await settle(m)
    await m.stop()

    again = master(work)
    again.start()
    agent_stream = FakeStream()
    # The agent also runs a task of a framework the registry never had.
    register(again, agent_stream, "A1", tasks=[
        reported("k", keep.id, "A1", "TASK_RUNNING"), reported("d", drop.id, "A1", "TASK_RUNNING"),
        reported("x", "FW-X", "A1", "TASK_RUNNING")],
        frameworks=[{"user": "u", "name": "x", "id": {"value": "FW-X"}, "failover_timeout": 0.2}])
    stream = FakeStream()
    subscribe(again, stream, {"user": "u", "name": "keep", "id": {"value": keep.id},
                              "failover_timeout": 60})

    def completed() -> set[str]:
        return {f.id for f in again.completed_frameworks}

    await until(lambda: completed() == {drop.id, "FW-X"}, "both lapsed frameworks to be removed")
    await settle(again)
    shut = {e["shutdown_framework"]["framework_id"]["value"]
            for e in agent_stream.of("SHUTDOWN_FRAMEWORK")}
    assert shut == {drop.id, "FW-X"}
    assert list(again.frameworks) == [keep.id] and list(again.frameworks[keep.id].tasks) == ["k"]
    assert stream.of("SUBSCRIBED")
    assert set(again.registrar.registry.frameworks) == {keep.id}
    await again.stop()


async def test_recovered_agents_are_shown_as_mesos_shows_them(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    agent = register(m, FakeStream())
    await settle(m)
    await m.stop()
    again = master(work)
    state = views.state(again)
    assert state["slaves"] == [] and state["unreachable_slaves"] == 0
    assert state["recovered_slaves"] == [{"id": agent.id, "hostname": "h", "port": 5051,
                                          "attributes": {}}]
    agents = operator_views.get_agents(again)
    assert agents["agents"] == []
    assert [a["id"] for a in agents["recovered_agents"]] == [{"value": agent.id}]
    register(again, FakeStream(), agent.id)
    await settle(again)
    agents = operator_views.get_agents(again)
    assert agents["recovered_agents"] == []
    assert [a["agent_info"]["id"] for a in agents["agents"]] == [{"value": agent.id}]
    assert views.state(again)["recovered_slaves"] == []
    await again.stop()
