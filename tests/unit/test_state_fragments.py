"""Tasks encoded ahead of time for the state views (``state_builder.warm``): the
first /master/state and GET_STATE after tasks arrive use them, and no change to a
task, agent or framework is ever answered from an older encoding."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

from mesos.master import state_builder
from mesos.master.service import Master
from mesos.master.state import Task
from mesos.v1 import mesos as v1
from tests.unit.test_master_core import FakeStream, call, register, reported, update
from tests.unit.test_state_builder import cluster, plain_get_state, plain_state


def all_tasks(m: Master) -> list[Task]:
    return [t for f in [*m.frameworks.values(), *m.completed_frameworks]
            for t in [*f.tasks.values(), *f.unreachable_tasks.values(), *f.completed_tasks]]


async def both_current(m: Master) -> tuple[Any, Any]:
    """Both sliced views, each checked against the plain (unencoded, uncached) one."""
    state = json.loads(await state_builder.state_json(m))
    assert state == plain_state(m)
    get_state = json.loads(await state_builder.get_state_json(m))
    assert get_state == plain_get_state(m)
    return state, get_state


def legacy_task(state: Any, task_id: str) -> Any:
    return next(t for f in state["frameworks"] + state["completed_frameworks"]
                for t in f["tasks"] + f["unreachable_tasks"] + f["completed_tasks"]
                if t["id"] == task_id)


async def test_after_warm_the_first_build_encodes_nothing() -> None:
    m, _, _ = await cluster()
    encoded = await state_builder.warm(m)
    assert encoded == 2 * len(all_tasks(m)) == 14
    # What each agent's tasks use is added up already, not left to the build.
    assert all(a.tasks.live_sum is not None for a in m.agents.values())
    await both_current(m)
    for kind in ("legacy", "v1"):
        counts = state_builder.task_fragments(m, kind)
        assert (counts.misses, counts.hits) == (0, 7)
    # Nothing changed since: the next warm has nothing to do.
    assert await state_builder.warm(m) == 0


async def test_changes_to_tasks_agents_and_frameworks_show_at_once() -> None:
    m, agent, fw = await cluster()
    await state_builder.warm(m)
    await both_current(m)

    # A status update (state and statuses change), with no warm in between.
    update(m, agent, fw, "t1", "TASK_RUNNING")
    state, get_state = await both_current(m)
    assert legacy_task(state, "t1")["state"] == "TASK_RUNNING"
    assert state_builder.task_fragments(m, "legacy").misses == 1

    # A status appended without its state being set (as a re-registration's
    # reconciliation may): the length of the statuses tells.
    t1 = fw.tasks["t1"]
    t1.statuses.append(v1.TaskStatus(task_id=t1.info.task_id, state="TASK_RUNNING",
                                     timestamp=123.0, healthy=True))
    state, _ = await both_current(m)
    assert legacy_task(state, "t1")["statuses"][-1]["healthy"] is True

    # Each field a task's JSON shows, set directly, one at a time.
    t2 = fw.tasks["t2"]
    for name, value in (("state", "TASK_STARTING"), ("role", "other-role"),
                        ("executor_id", "some-executor"), ("agent_id", "elsewhere"),
                        ("framework_id", "someone-else"),
                        ("resources", t1.resources),
                        ("info", v1.TaskInfo(name="renamed", task_id=t2.info.task_id,
                                            agent_id=t2.info.agent_id))):
        setattr(t2, name, value)
        state, get_state = await both_current(m)
        assert state_builder.task_fragments(m, "legacy").misses == 1, name
        assert state_builder.task_fragments(m, "v1").misses == 1, name
    shown = legacy_task(state, "t2")
    assert (shown["state"], shown["role"], shown["executor_id"], shown["name"]) == (
        "TASK_STARTING", "other-role", "some-executor", "renamed")
    t2.framework_id = fw.id
    t2.agent_id = agent.id

    # The agent goes away (its JSON is built afresh every time; its tasks change).
    agent_stream = agent.stream
    assert agent_stream is not None
    agent_stream.close()
    m.agent_stream_closed(agent.id, agent_stream)
    state, _ = await both_current(m)
    assert next(a for a in state["slaves"] if a["id"] == agent.id)["active"] is False

    # The framework is torn down: its tasks are killed and move to completed.
    m.remove_framework(fw, "test")
    state, get_state = await both_current(m)
    assert legacy_task(state, "t1")["state"] == "TASK_KILLED"
    assert fw.id in {f["id"] for f in state["completed_frameworks"]}
    # And whatever warm does meanwhile changes none of that.
    await state_builder.warm(m)
    assert await both_current(m) == (state, get_state)


async def test_a_change_between_warm_and_build_is_not_missed() -> None:
    m, agent, fw = await cluster()
    await state_builder.warm(m)
    update(m, agent, fw, "t2", "TASK_FAILED")  # noted as changed, not encoded yet
    state, _ = await both_current(m)
    assert legacy_task(state, "t2")["state"] == "TASK_FAILED"
    assert state_builder.task_fragments(m, "legacy").misses == 1
    assert await state_builder.warm(m) == 0  # the build encoded t2 already
    assert await both_current(m) == (state, json.loads(await state_builder.get_state_json(m)))


async def test_reregistered_tasks_are_encoded_in_the_background() -> None:
    """As after a failover: an agent re-registers with tasks of a framework the master
    has not seen; the background encoder picks them up without being asked."""
    m, _, _ = await cluster()
    other = {"user": "u", "name": "late", "id": {"value": "late-fw"},
             "failover_timeout": 3600.0}
    register(m, FakeStream(), frameworks=[other],
             tasks=[reported(f"late{n}", "late-fw", "", "TASK_RUNNING") for n in range(20)])
    late = list(m.frameworks["late-fw"].tasks.values())
    assert len(late) == 20 and not any(t.fragments for t in late)
    warmer = asyncio.create_task(state_builder.warm_forever(m, every=0.01))
    try:
        deadline = time.monotonic() + 30
        while (any(set(t.fragments) != {"legacy", "v1"} for t in late)
               and time.monotonic() < deadline):
            await asyncio.sleep(0.01)
    finally:
        warmer.cancel()
        await asyncio.gather(warmer, return_exceptions=True)
    assert all(set(t.fragments) == {"legacy", "v1"} for t in late)
    await both_current(m)
    assert state_builder.task_fragments(m, "legacy").misses == 0
    assert state_builder.task_fragments(m, "v1").misses == 0


async def test_kill_then_acknowledge_moves_the_task_and_shows_it() -> None:
    m, agent, fw = await cluster()
    await state_builder.warm(m)
    uid = update(m, agent, fw, "t1", "TASK_KILLED")
    ack = call({"type": "ACKNOWLEDGE", "framework_id": {"value": fw.id}, "acknowledge": {
        "agent_id": {"value": agent.id}, "task_id": {"value": "t1"},
        "uuid": base64.b64encode(uid).decode()}})
    assert ack.acknowledge is not None
    m.acknowledge(fw, ack.acknowledge)
    state, get_state = await both_current(m)
    framework = next(f for f in state["frameworks"] if f["id"] == fw.id)
    assert [t["id"] for t in framework["completed_tasks"]] == ["t1"]
    assert "t1" in {t["task_id"]["value"] for t in get_state["get_state"]["get_tasks"]
                    ["completed_tasks"]}
