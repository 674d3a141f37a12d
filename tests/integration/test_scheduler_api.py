"""The v1 Scheduler HTTP API of a real master, with real agents and executors."""

from __future__ import annotations

import base64
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

FW = {"user": "root", "name": "api-test"}


def res(cpus: float = 0.1, mem: float = 32) -> list[dict[str, Any]]:
    return [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]


def launch(offer: dict[str, Any], task_id: str, command: str, **resources: float) -> dict[str, Any]:
    return {
        "type": "LAUNCH",
        "launch": {"task_infos": [{
            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command}, "resources": res(**resources),
        }]},
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("cluster")
    with Cluster(work, agents=1, master_flags=["--heartbeat_interval=300ms"]) as c:
        yield c


@pytest.fixture
async def sched(cluster: Cluster) -> AsyncIterator[RawScheduler]:
    client = RawScheduler(cluster.master_url)
    yield client
    if client.framework_id and client.stream_id:
        await client.call({"type": "TEARDOWN", "framework_id": client.fw()})
    await client.close()


async def first_offer(s: RawScheduler) -> dict[str, Any]:
    event = await s.next_event("OFFERS", timeout=10)
    offers = event["offers"]["offers"]
    assert offers
    return offers[0]


async def wait_state(s: RawScheduler, task_id: str, state: str, timeout: float = 15) -> dict[str, Any]:
    """Acknowledge updates until ``task_id`` reaches ``state``."""
    while True:
        event = await s.next_event("*", timeout=timeout)
        if event["type"] != "UPDATE":
            continue
        status = event["update"]["status"]
        if "uuid" in status:
            code, _ = await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
            assert code == 202
        if status["task_id"]["value"] == task_id and status["state"] == state:
            return status


async def test_subscribe_streams_subscribed_then_heartbeats(sched: RawScheduler) -> None:
    subscribed = await sched.subscribe(FW)
    assert sched.response is not None
    assert sched.response.headers.get("Transfer-Encoding") == "chunked"
    info = subscribed["subscribed"]
    assert info["heartbeat_interval_seconds"] == pytest.approx(0.3)
    assert info["master_info"]["address"]["ip"] == "127.0.0.1"
    assert uuid.UUID(sched.stream_id or "")
    # The first HEARTBEAT comes right after SUBSCRIBED, then one per interval.
    assert sched.seen[1]["type"] == "HEARTBEAT"
    await sched.next_event("HEARTBEAT", timeout=3, skip=("OFFERS",))


async def test_command_task_runs_to_finished_with_reliable_updates(sched: RawScheduler, cluster: Cluster) -> None:
    await sched.subscribe(FW)
    offer = await first_offer(sched)
    code, text = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "t1", "echo out; echo err >&2")]}})
    assert code == 202, text
    status = await wait_state(sched, "t1", "TASK_FINISHED")
    assert status["source"] == "SOURCE_EXECUTOR"
    assert len(base64.b64decode(status["uuid"])) == 16
    sandboxes = list(cluster.work_dir.glob("agent0/slaves/*/frameworks/*/executors/t1/runs/latest"))
    assert len(sandboxes) == 1
    assert (sandboxes[0] / "stdout").read_text().strip().endswith("out")
    assert "err" in (sandboxes[0] / "stderr").read_text()


async def test_bad_requests_get_precise_errors(sched: RawScheduler, cluster: Cluster) -> None:
    base = f"http://{cluster.master_url}/api/v1/scheduler"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as r:
            assert r.status == 405
        async with http.post(base, data=b"{}", skip_auto_headers=["Content-Type"]) as r:
            assert r.status == 400
            assert "Content-Type" in await r.text()
        async with http.post(base, data=b"{}", headers={"Content-Type": "text/plain"}) as r:
            assert r.status == 415
        async with http.post(base, data=b"{not json", headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400
            assert "Failed to convert JSON" in await r.text()
        async with http.post(base, json={"type": "FLY"}) as r:
            assert r.status == 400
            assert "type" in await r.text()
        async with http.post(base, json={"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}) as r:
            assert r.status == 400
            assert "user" in await r.text()
    await sched.subscribe(FW)
    fw = sched.fw()
    assert (await sched.call({"type": "REVIVE", "framework_id": fw}, stream_id=None))[0] == 400
    code, text = await sched.call({"type": "REVIVE", "framework_id": fw}, stream_id=str(uuid.uuid4()))
    assert code == 400 and "stream ID" in text
    code, text = await sched.call({"type": "REVIVE", "framework_id": {"value": "not-a-framework"}})
    assert code == 400 and "Framework cannot be found" in text
    code, text = await sched.call({"type": "KILL", "framework_id": fw})
    assert code == 400 and "kill" in text
    code, text = await sched.call({"type": "ACKNOWLEDGE", "framework_id": fw, "acknowledge": {
        "agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": base64.b64encode(b"short").decode()}})
    assert code == 400 and "uuid" in text


async def test_launch_outside_the_offer_is_refused_and_changes_nothing(sched: RawScheduler, cluster: Cluster) -> None:
    await sched.subscribe(FW)
    offer = await first_offer(sched)
    before = cluster.state()
    too_big = launch(offer, "big", "true", cpus=1000)
    code, text = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [too_big]}})
    assert code == 400, text
    assert "resources" in text and "task_infos[0]" in text
    for bad_id in ("../escape", "..", "a/b", ""):
        code, text = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
            "offer_ids": [offer["id"]], "operations": [launch(offer, bad_id, "true")]}})
        assert code == 400 and "task_id" in text, (bad_id, text)
    ops = [launch(offer, "dup", "true"), launch(offer, "dup", "true")]
    code, text = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": ops}})
    assert code == 400 and "already exists" in text
    after = cluster.state()
    mine = next(f for f in after["frameworks"] if f["id"] == sched.framework_id)
    assert mine["tasks"] == []
    assert [o["id"] for o in mine["offers"]] == [offer["id"]["value"]]
    assert len(before["slaves"]) == len(after["slaves"])
    # The untouched offer still works.
    code, text = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "ok", "true")]}})
    assert code == 202, text
    await wait_state(sched, "ok", "TASK_FINISHED")


async def test_stale_offer_is_202_and_task_lost(sched: RawScheduler) -> None:
    await sched.subscribe(FW)
    offer = await first_offer(sched)
    body = {"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "a", "true")]}}
    assert (await sched.call(body))[0] == 202
    body["accept"]["operations"] = [launch(offer, "b", "true")]
    assert (await sched.call(body))[0] == 202
    status = await wait_state(sched, "b", "TASK_LOST")
    assert status["reason"] == "REASON_INVALID_OFFERS"
    assert "uuid" not in status


async def test_kill_reconcile_and_messages(sched: RawScheduler) -> None:
    await sched.subscribe(FW)
    offer = await first_offer(sched)
    code, _ = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "sleeper", "sleep 60")]}})
    assert code == 202
    await wait_state(sched, "sleeper", "TASK_RUNNING")
    # Implicit reconciliation returns the running task, from the master, without a uuid.
    assert (await sched.call({"type": "RECONCILE", "framework_id": sched.fw(), "reconcile": {}}))[0] == 202
    status = await wait_state(sched, "sleeper", "TASK_RUNNING")
    assert status["reason"] == "REASON_RECONCILIATION" and "uuid" not in status
    # Explicit reconciliation of an unknown task: TASK_LOST for a non-partition-aware framework.
    assert (await sched.call({"type": "RECONCILE", "framework_id": sched.fw(), "reconcile": {
        "tasks": [{"task_id": {"value": "nope"}}]}}))[0] == 202
    status = await wait_state(sched, "nope", "TASK_LOST")
    assert status["source"] == "SOURCE_MASTER"
    assert (await sched.call({"type": "KILL", "framework_id": sched.fw(), "kill": {
        "task_id": {"value": "sleeper"}}}))[0] == 202
    await wait_state(sched, "sleeper", "TASK_KILLED")


async def test_decline_filter_and_revive(sched: RawScheduler) -> None:
    await sched.subscribe(FW)
    offer = await first_offer(sched)
    code, _ = await sched.call({"type": "DECLINE", "framework_id": sched.fw(), "decline": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 3600}}})
    assert code == 202
    with pytest.raises(TimeoutError):
        await sched.next_event("OFFERS", timeout=1.0)
    assert (await sched.call({"type": "REVIVE", "framework_id": sched.fw()}))[0] == 202
    await first_offer(sched)
    assert (await sched.call({"type": "SUPPRESS", "framework_id": sched.fw(), "suppress": {"roles": ["*"]}}))[0] == 202
    code, text = await sched.call({"type": "SUPPRESS", "framework_id": sched.fw(), "suppress": {"roles": ["other"]}})
    assert code == 400 and "other" in text


async def test_update_framework(sched: RawScheduler, cluster: Cluster) -> None:
    await sched.subscribe(FW)
    info = {**FW, "id": sched.fw(), "name": "renamed"}
    code, text = await sched.call({"type": "UPDATE_FRAMEWORK", "framework_id": sched.fw(),
                                   "update_framework": {"framework_info": info}})
    assert code == 200, text
    names = [f["name"] for f in cluster.state()["frameworks"] if f["id"] == sched.framework_id]
    assert names == ["renamed"]
    code, text = await sched.call({"type": "UPDATE_FRAMEWORK", "framework_id": sched.fw(),
                                   "update_framework": {"framework_info": {**info, "user": "other"}}})
    assert code == 400 and "user" in text


async def test_failover_within_timeout_keeps_tasks(cluster: Cluster) -> None:
    first = RawScheduler(cluster.master_url)
    await first.subscribe({**FW, "failover_timeout": 60})
    offer = await first_offer(first)
    await first.call({"type": "ACCEPT", "framework_id": first.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "keep", "sleep 60")]}})
    await wait_state(first, "keep", "TASK_RUNNING")
    framework_id = first.fw()
    await first.close()
    second = RawScheduler(cluster.master_url)
    try:
        await second.subscribe({**FW, "failover_timeout": 60, "id": framework_id})
        assert second.fw() == framework_id
        tasks = [t for f in cluster.state()["frameworks"] if f["id"] == framework_id["value"] for t in f["tasks"]]
        assert [(t["id"], t["state"]) for t in tasks] == [("keep", "TASK_RUNNING")]
    finally:
        await second.call({"type": "TEARDOWN", "framework_id": second.fw()})
        await second.close()
    completed = {f["id"] for f in cluster.state()["completed_frameworks"]}
    assert framework_id["value"] in completed


async def test_failover_timeout_expiry_kills_tasks(cluster: Cluster) -> None:
    s = RawScheduler(cluster.master_url)
    await s.subscribe({**FW, "failover_timeout": 0.5})
    offer = await first_offer(s)
    await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [launch(offer, "doomed", "sleep 60")]}})
    await wait_state(s, "doomed", "TASK_RUNNING")
    framework_id = s.fw()["value"]
    await s.close()
    def removed() -> bool:
        state = cluster.state()
        return any(f["id"] == framework_id for f in state["completed_frameworks"])

    wait_for(removed, 10, "the framework to be removed after its failover timeout")
    state = cluster.state()
    done = next(f for f in state["completed_frameworks"] if f["id"] == framework_id)
    assert [t["state"] for t in done["completed_tasks"]] == ["TASK_KILLED"]
    # Its executor is gone from the agent too.
    agent_state = f"http://127.0.0.1:{cluster.agent_ports[0]}/state"
    wait_for(lambda: not any(f["id"] == framework_id for f in http_json(agent_state)["frameworks"]),
             10, "the agent to shut the framework down")


async def test_resubscribe_replaces_old_stream(cluster: Cluster) -> None:
    a = RawScheduler(cluster.master_url)
    await a.subscribe({**FW, "failover_timeout": 30})
    b = RawScheduler(cluster.master_url)
    try:
        await b.subscribe({**FW, "failover_timeout": 30, "id": a.fw()})
        error = await a.next_event("ERROR", timeout=5, skip=("HEARTBEAT", "OFFERS"))
        assert error["error"]["message"] == "Framework failed over"
        # The old stream id no longer works.
        code, _ = await a.call({"type": "REVIVE", "framework_id": a.fw()})
        assert code == 400
    finally:
        await b.call({"type": "TEARDOWN", "framework_id": b.fw()})
        await a.close()
        await b.close()


async def test_offer_timeout_rescinds(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1, master_flags=["--offer_timeout=300ms"]) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = await first_offer(s)
            rescind = await s.next_event("RESCIND", timeout=5)
            assert rescind["rescind"]["offer_id"] == offer["id"]
        finally:
            await s.close()


@pytest.mark.parametrize("partition_aware", [False, True])
async def test_silent_agent_is_marked_unreachable(tmp_path: Path, partition_aware: bool) -> None:
    flags = ["--agent_ping_timeout=200ms", "--max_agent_ping_timeouts=3"]
    with Cluster(tmp_path, agents=1, master_flags=flags) as c:
        s = RawScheduler(c.master_url)
        info: dict[str, Any] = dict(FW)
        if partition_aware:
            info["capabilities"] = [{"type": "PARTITION_AWARE"}]
        try:
            await s.subscribe(info)
            offer = await first_offer(s)
            await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "operations": [launch(offer, "cut", "sleep 60")]}})
            await wait_state(s, "cut", "TASK_RUNNING")
            agent = c.agents[0]
            agent.signal(signal.SIGSTOP)
            expected = "TASK_UNREACHABLE" if partition_aware else "TASK_LOST"
            status = await wait_state(s, "cut", expected, timeout=10)
            assert status["source"] == "SOURCE_MASTER"
            failure = [e for e in s.seen if e["type"] == "FAILURE"]
            assert failure == [] or failure[0]["failure"]["agent_id"] == offer["agent_id"]
            assert c.get("/metrics/snapshot")["master/slaves_unreachable"] == 1.0
        finally:
            c.agents[0].signal(signal.SIGCONT)
            await s.close()


async def test_operator_endpoints_answer(cluster: Cluster) -> None:
    version = cluster.get("/version")
    assert all(part.isdigit() for part in version["version"].split("."))
    snapshot = cluster.get("/metrics/snapshot")
    for key in ("master/elected", "master/uptime_secs", "master/slaves_active", "master/cpus_total",
                "master/tasks_running", "master/frameworks_active"):
        assert key in snapshot
    assert snapshot["master/cpus_total"] == 4.0
    summary = cluster.get("/master/state-summary")
    assert len(summary["slaves"]) == 1
    assert cluster.get("/master/tasks")["tasks"] is not None
    state, master_state = cluster.get("/state"), cluster.get("/master/state")
    assert state["id"] == master_state["id"] and set(state) == set(master_state)
    assert master_state["leader"] == master_state["pid"]
    assert len(master_state["slaves"]) == 1


async def test_a_call_for_another_framework_is_refused(cluster: Cluster) -> None:
    mine, theirs = RawScheduler(cluster.master_url), RawScheduler(cluster.master_url)
    try:
        await mine.subscribe(FW)
        await theirs.subscribe({**FW, "name": "other"})
        # My stream id with their framework id: refused, and their framework is untouched.
        code, text = await mine.call({"type": "TEARDOWN", "framework_id": theirs.fw()})
        assert code == 400 and "stream ID" in text
        active = {f["id"] for f in cluster.state()["frameworks"]}
        assert theirs.framework_id in active
    finally:
        for s in (mine, theirs):
            await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()
