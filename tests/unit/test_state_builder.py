"""The sliced builders of /master/state and GET_STATE give what the plain views give,
stay current as tasks change (their per-task fragments are reused between builds),
and yield to the event loop while they build."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mesos.master import operator_views, state_builder, views
from mesos.master.service import Master
from tests.unit.test_master_core import (
    FakeStream,
    launch,
    master,
    register,
    reported,
    subscribe,
    task,
    update,
)


def plain_state(m: Master) -> Any:
    return json.loads(json.dumps(views.state(m)))


def plain_get_state(m: Master) -> Any:
    return json.loads(json.dumps({"type": "GET_STATE",
                                  "get_state": operator_views.get_state(m)}))


async def cluster() -> tuple[Master, Any, Any]:
    """Two agents, a framework with tasks launched through an offer, and tasks of a
    framework the master only knows from an agent's report."""
    m = master()
    agent = register(m, FakeStream(), res="cpus:8;mem:4096;ports:[31000-32000]")
    # (With a failover timeout: a recovered framework without one is removed as soon
    # as the loop runs, which the builders let it do.)
    other = {"user": "u", "name": "other", "id": {"value": "other-fw"},
             "failover_timeout": 3600.0}
    register(m, FakeStream(), frameworks=[other],
             tasks=[reported(f"r{n}", "other-fw", "", "TASK_RUNNING", cpus=0.5)
                    for n in range(5)])
    fw_stream = FakeStream()
    fw = subscribe(m, fw_stream, {"user": "u", "name": "n"})
    launch(m, fw, fw_stream, task("t1", agent.id), task("t2", agent.id, 2))
    return m, agent, fw


async def test_sliced_builds_equal_the_plain_views() -> None:
    m, agent, fw = await cluster()
    update(m, agent, fw, "t1", "TASK_RUNNING")
    assert json.loads(await state_builder.state_json(m)) == plain_state(m)
    assert json.loads(await state_builder.get_state_json(m)) == plain_get_state(m)
    state = json.loads(await state_builder.state_json(m))
    assert {t["id"] for f in state["frameworks"] for t in f["tasks"]} == {
        "t1", "t2", *(f"r{n}" for n in range(5))}


async def test_a_changed_task_is_rebuilt_not_served_from_the_last_build() -> None:
    m, agent, fw = await cluster()
    first = json.loads(await state_builder.state_json(m))
    await state_builder.get_state_json(m)
    update(m, agent, fw, "t1", "TASK_RUNNING")
    update(m, agent, fw, "t2", "TASK_FAILED")
    again = json.loads(await state_builder.state_json(m))
    assert again == plain_state(m)
    assert json.loads(await state_builder.get_state_json(m)) == plain_get_state(m)
    by_id = {t["id"]: t for f in again["frameworks"] for t in f["tasks"] + f["completed_tasks"]}
    assert by_id["t1"]["state"] == "TASK_RUNNING" and len(by_id["t1"]["statuses"]) == 1
    assert by_id["t2"]["state"] == "TASK_FAILED"
    assert again != first
    cache = state_builder.task_fragments(m, "legacy")
    assert cache.misses == 2 and cache.hits == 5  # only t1 and t2 were built again


async def test_the_builder_yields_to_the_loop_between_slices() -> None:
    m, _, _ = await cluster()
    ticks = 0
    stop = asyncio.Event()

    async def other_work() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    before = ticks
    # A zero slice: yield after every item, so the other task runs in between.
    slicer = state_builder.Slicer(seconds=0.0)
    body = await state_builder.state_json(m, slicer)
    stop.set()
    await other
    assert json.loads(body) == plain_state(m)
    assert slicer.yields >= len(m.agents)
    assert ticks - before >= slicer.yields


async def test_jsonp_wraps_the_body() -> None:
    class Request:
        query = {"jsonp": "cb"}

    response = state_builder.json_response(Request(), b'{"a":1}')  # type: ignore[arg-type]
    assert response.body == b'cb({"a":1});'
    assert response.content_type == "text/javascript"
