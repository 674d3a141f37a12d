"""The master's v1 operator API against real processes: the SUBSCRIBE event stream,
DRAIN_AGENT / DEACTIVATE_AGENT / REACTIVATE_AGENT, logging levels, metrics (also
as Prometheus text), GET_ROLES, and bad input that is refused and changes nothing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler
from mesos.v1.recordio import Decoder
from tests.integration.test_master_recovery import ack_until, operator

pytestmark = pytest.mark.slow

FW: dict[str, Any] = {"user": "root", "name": "operator-test", "failover_timeout": 3600}


class OperatorSubscriber:
    """Reads the operator event stream into a queue (every event is also kept)."""

    def __init__(self, master: str) -> None:
        self.url = f"http://{master}/api/v1"
        self.session = aiohttp.ClientSession()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self.response: aiohttp.ClientResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self) -> dict[str, Any]:
        self.response = await self.session.post(
            self.url, json={"type": "SUBSCRIBE"}, headers={"Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(total=None))
        assert self.response.status == 200, await self.response.text()
        assert self.response.headers["Content-Type"].startswith("application/json")
        self._reader = asyncio.create_task(self._read(self.response))
        first = await self.next_any()
        assert first["type"] == "SUBSCRIBED", first
        return first

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        decoder = Decoder()
        try:
            async for chunk in response.content.iter_any():
                for record in decoder.feed(chunk):
                    item = json.loads(record)
                    self.seen.append(item)
                    await self.events.put(item)
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        await self.events.put({"type": "__CLOSED__"})

    async def next_any(self, timeout: float = 20.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def until(self, type_: str, match: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        """The next event of ``type_`` (for which ``match(event)`` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} event; seen {[e['type'] for e in self.seen]}")
            item = await self.next_any(left)
            if item["type"] == type_ and (match is None or match(item)):
                return item
            if item["type"] == "__CLOSED__":
                raise AssertionError(f"stream closed while waiting for {type_}")

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.response is not None:
            self.response.close()
        await self.session.close()


TASK_RES = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]


async def launch(s: RawScheduler, task_id: str, command: str = "sleep 600",
                 **extra: Any) -> dict[str, Any]:
    offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
    task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command}, "resources": TASK_RES, **extra}
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
    assert code == 202, text
    return offer


def task_updated(task_id: str, state: str) -> Any:
    def match(e: dict[str, Any]) -> bool:
        update = e["task_updated"]
        return bool(update["status"]["task_id"]["value"] == task_id and update["state"] == state)
    return match


async def test_subscribe_streams_state_then_events(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0, master_flags=["--heartbeat_interval=1secs"]) as c:
        sub = OperatorSubscriber(c.master_url)
        s = RawScheduler(c.master_url)
        try:
            first = await sub.subscribe()
            assert first["subscribed"]["heartbeat_interval_seconds"] == 1.0
            state = first["subscribed"]["get_state"]
            assert state["get_agents"]["agents"] == []
            assert state["get_frameworks"]["frameworks"] == []
            assert (await sub.next_any())["type"] == "HEARTBEAT"

            c.add_agent()
            added = await sub.until("AGENT_ADDED")
            agent_id = added["agent_added"]["agent"]["agent_info"]["id"]["value"]
            assert added["agent_added"]["agent"]["total_resources"]

            await s.subscribe(FW)
            fw = await sub.until("FRAMEWORK_ADDED")
            assert fw["framework_added"]["framework"]["framework_info"]["id"]["value"] == s.framework_id

            await launch(s, "t1")
            task = await sub.until("TASK_ADDED")
            assert task["task_added"]["task"]["task_id"]["value"] == "t1"
            assert task["task_added"]["task"]["agent_id"]["value"] == agent_id
            await ack_until(s, "t1", "TASK_RUNNING")
            running = await sub.until("TASK_UPDATED", task_updated("t1", "TASK_RUNNING"))
            assert running["task_updated"]["framework_id"]["value"] == s.framework_id
            assert running["task_updated"]["status"]["state"] == "TASK_RUNNING"

            code, text = await s.call({"type": "KILL", "framework_id": s.fw(),
                                       "kill": {"task_id": {"value": "t1"}}})
            assert code == 202, text
            await ack_until(s, "t1", "TASK_KILLED")
            await sub.until("TASK_UPDATED", task_updated("t1", "TASK_KILLED"))

            # Periodic heartbeats (every --heartbeat_interval) keep the stream alive.
            await sub.until("HEARTBEAT", timeout=10)

            framework_id = s.framework_id
            code, text = await operator(c.master_url, {
                "type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}})
            assert code == 200, text
            removed = await sub.until("FRAMEWORK_REMOVED")
            assert removed["framework_removed"]["framework_info"]["id"]["value"] == framework_id

            code, text = await operator(c.master_url, {
                "type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}})
            assert code == 200, text
            gone = await sub.until("AGENT_REMOVED")
            assert gone["agent_removed"]["agent_id"]["value"] == agent_id

            # The order a subscriber saw things in is the order they happened.
            types = [e["type"] for e in sub.seen if e["type"] != "HEARTBEAT"]
            order = ["SUBSCRIBED", "AGENT_ADDED", "FRAMEWORK_ADDED", "TASK_ADDED",
                     "TASK_UPDATED", "FRAMEWORK_REMOVED", "AGENT_REMOVED"]
            positions = [types.index(t) for t in order]
            assert positions == sorted(positions), types

            # A second subscriber starts from the state as it is now.
            late = OperatorSubscriber(c.master_url)
            try:
                snapshot = (await late.subscribe())["subscribed"]["get_state"]
                assert snapshot["get_agents"]["agents"] == []
                completed = snapshot["get_tasks"]["completed_tasks"]
                assert [t["task_id"]["value"] for t in completed] == ["t1"]
            finally:
                await late.close()
        finally:
            await s.close()
            await sub.close()


async def test_subscribe_refuses_non_json_accept(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        async with aiohttp.ClientSession() as http, http.post(
                f"http://{c.master_url}/api/v1", json={"type": "SUBSCRIBE"},
                headers={"Accept": "application/x-protobuf"}) as r:
            assert r.status == 406


async def test_drain_agent_kills_tasks_and_deactivates(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        sub = OperatorSubscriber(c.master_url)
        s = RawScheduler(c.master_url)
        try:
            await sub.subscribe()
            for body in (
                {"type": "DRAIN_AGENT"},
                {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "nope"}}},
                {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent_id},
                                                        "max_grace_period": {"seconds": -1}}},
                {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": agent_id},
                                                        "mark_gone": "yes"}},
                {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent_id}}},
                {"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": "nope"}}},
            ):
                code, text = await operator(c.master_url, body)
                assert code == 400, (body, text)
                assert text, body
            agents = (await operator(c.master_url, {"type": "GET_AGENTS"}))[1]
            assert agents["get_agents"]["agents"][0]["deactivated"] is False
            assert "drain_info" not in agents["get_agents"]["agents"][0]

            await s.subscribe(FW)
            await launch(s, "t1", kill_policy={"grace_period": {"nanoseconds": 60_000_000_000}})
            await ack_until(s, "t1", "TASK_RUNNING")
            code, text = await operator(c.master_url, {"type": "DRAIN_AGENT", "drain_agent": {
                "agent_id": {"value": agent_id}, "max_grace_period": {"seconds": 1}}})
            assert code == 200, text
            status = await ack_until(s, "t1", "TASK_KILLED", timeout=30)
            assert status["reason"] == "REASON_AGENT_DRAINING"
            updated = await sub.until(
                "AGENT_UPDATED",
                lambda e: e["agent_updated"]["agent"].get("drain_info", {}).get("state") == "DRAINED")
            assert updated["agent_updated"]["agent"]["deactivated"] is True

            def drained() -> dict[str, Any] | None:
                agent = c.get("/master/slaves")["slaves"][0]
                return agent if agent["id"] == agent_id else None

            wait_for(drained, 10, "the agent listed")
            result = (await operator(c.master_url, {"type": "GET_AGENTS"}))[1]
            listed = result["get_agents"]["agents"][0]
            assert listed["deactivated"] is True and listed["active"] is False
            assert listed["drain_info"]["state"] == "DRAINED"
            assert listed["drain_info"]["config"]["max_grace_period"] == {"nanoseconds": 1_000_000_000}

            # A deactivated agent is offered to nobody until it is reactivated.
            code, text = await operator(c.master_url, {
                "type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent_id}}})
            assert code == 200, text
            await s.call({"type": "REVIVE", "framework_id": s.fw()})
            offer = await s.next_event("OFFERS", timeout=30, skip=("HEARTBEAT", "UPDATE", "RESCIND"))
            assert offer["offers"]["offers"][0]["agent_id"]["value"] == agent_id
            listed = (await operator(c.master_url, {"type": "GET_AGENTS"}))[1]["get_agents"]["agents"][0]
            assert listed["deactivated"] is False and "drain_info" not in listed

            # DEACTIVATE_AGENT takes the outstanding offer back.
            code, text = await operator(c.master_url, {
                "type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": agent_id}}})
            assert code == 200, text
            rescind = await s.next_event("RESCIND", timeout=20, skip=("HEARTBEAT", "UPDATE", "OFFERS"))
            assert rescind["rescind"]["offer_id"] == offer["offers"]["offers"][0]["id"]
            listed = (await operator(c.master_url, {"type": "GET_AGENTS"}))[1]["get_agents"]["agents"][0]
            assert listed["deactivated"] is True

            # It stays deactivated across a master restart (it is in the registry).
            framework_id = s.framework_id
            await s.close()
            c.restart_master()
            wait_for(lambda: c.get("/master/slaves")["slaves"], 30, "the agent to re-register")
            listed = (await operator(c.master_url, {"type": "GET_AGENTS"}))[1]["get_agents"]["agents"][0]
            assert listed["deactivated"] is True
            s = RawScheduler(c.master_url)
            await s.subscribe({**FW, "id": {"value": framework_id}})
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()
            await sub.close()


async def test_drain_with_mark_gone(tmp_path: Path) -> None:
    fw = {**FW, "capabilities": [{"type": "PARTITION_AWARE"}]}
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(fw)
            await launch(s, "t1")
            await ack_until(s, "t1", "TASK_RUNNING")
            code, text = await operator(c.master_url, {"type": "DRAIN_AGENT", "drain_agent": {
                "agent_id": {"value": agent_id}, "max_grace_period": {"seconds": 0},
                "mark_gone": True}})
            assert code == 200, text
            status = await ack_until(s, "t1", "TASK_GONE_BY_OPERATOR", timeout=30)
            assert status["reason"] == "REASON_AGENT_DRAINING"
            wait_for(lambda: not c.get("/master/slaves")["slaves"], 30, "the drained agent gone")
            wait_for(lambda: not c.agents[0].alive(), 30, "the gone agent to exit")
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()


async def test_logging_level_metrics_and_roles(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        s = RawScheduler(c.master_url)
        try:
            code, body = await operator(c.master_url, {"type": "GET_LOGGING_LEVEL"})
            assert code == 200 and body["get_logging_level"]["level"] == 0
            for bad in ({"type": "SET_LOGGING_LEVEL"},
                        {"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1}},
                        {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
                            "level": -1, "duration": {"nanoseconds": 1}}},
                        {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
                            "level": 1, "duration": {"nanoseconds": "soon"}}}):
                code, text = await operator(c.master_url, bad)
                assert code == 400 and text, (bad, text)
            code, body = await operator(c.master_url, {"type": "GET_LOGGING_LEVEL"})
            assert body["get_logging_level"]["level"] == 0
            code, text = await operator(c.master_url, {"type": "SET_LOGGING_LEVEL", "set_logging_level": {
                "level": 2, "duration": {"nanoseconds": 2_000_000_000}}})
            assert code == 200, text
            code, body = await operator(c.master_url, {"type": "GET_LOGGING_LEVEL"})
            assert body["get_logging_level"]["level"] == 2

            async def level() -> int:
                return int((await operator(c.master_url, {"type": "GET_LOGGING_LEVEL"}))[1]
                           ["get_logging_level"]["level"])

            deadline = time.monotonic() + 30
            while await level() != 0:
                assert time.monotonic() < deadline, "the logging level never reverted"
                await asyncio.sleep(0.2)

            await s.subscribe({**FW, "role": "eng"})
            await launch(s, "t1")
            await ack_until(s, "t1", "TASK_RUNNING")
            code, text = await operator(c.master_url, {"type": "UPDATE_WEIGHTS", "update_weights": {
                "weight_infos": [{"role": "eng", "weight": 3}]}})
            assert code == 200, text
            code, text = await operator(c.master_url, {"type": "UPDATE_QUOTA", "update_quota": {
                "quota_configs": [{"role": "eng", "guarantees": {"cpus": {"value": 1}}}]}})
            assert code == 200, text
            code, body = await operator(c.master_url, {"type": "GET_ROLES"})
            assert code == 200
            roles = {r["name"]: r for r in body["get_roles"]["roles"]}
            eng = roles["eng"]
            assert eng["weight"] == 3.0
            assert eng["frameworks"] == [{"value": s.framework_id}]
            assert eng["quota"]["guarantee"] == {"cpus": {"value": 1.0}}
            assert eng["quota"]["consumed"]["cpus"]["value"] == pytest.approx(0.1)
            cpus = [r for r in eng["allocated"] if r["name"] == "cpus"]
            assert cpus and cpus[0]["scalar"]["value"] == pytest.approx(0.1)

            legacy = {r["name"]: r for r in c.get("/master/roles")["roles"]}["eng"]
            assert legacy["weight"] == 3.0 and legacy["frameworks"] == [s.framework_id]
            assert legacy["allocated"]["cpus"] == pytest.approx(0.1)
            assert legacy["quota"]["guarantee"] == {"cpus": 1.0}

            code, body = await operator(c.master_url, {"type": "GET_METRICS"})
            assert code == 200
            metrics = {m["name"]: m["value"] for m in body["get_metrics"]["metrics"]}
            assert metrics["master/tasks_running"] == 1.0
            assert metrics["master/slaves_active"] == 1.0
            code, text = await operator(c.master_url, {"type": "GET_METRICS",
                                                       "get_metrics": {"timeout": "1s"}})
            assert code == 400, text

            async with aiohttp.ClientSession() as http, \
                    http.get(f"http://{c.master_url}/metrics/prometheus") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("text/plain")
                text = await r.text()
            lines = text.splitlines()
            assert "# TYPE mesos_master_tasks_running gauge" in lines
            assert "mesos_master_tasks_running 1.0" in lines
            assert "# TYPE mesos_master_tasks_launched counter" in lines
            for line in lines:
                name = line.split()[2] if line.startswith("# TYPE") else line.split()[0]
                assert name.startswith("mesos_") and all(ch.isalnum() or ch == "_" for ch in name), line
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()


async def test_unknown_calls_and_bad_envelopes(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        code, text = await operator(c.master_url, {"type": "TEARDOWN"})
        assert code == 400 and "teardown" in text
        code, text = await operator(c.master_url, {"type": "TEARDOWN", "teardown": {
            "framework_id": {"value": "nope"}}})
        assert code == 400 and "nope" in text
        # Mesos answers 501 for the UNKNOWN call (GROW_VOLUME, once used here, is
        # implemented now: tests/integration/test_grow_shrink_volume.py).
        code, text = await operator(c.master_url, {"type": "UNKNOWN"})
        assert code == 501 and "UNKNOWN" in text, text


async def test_get_master_operations_and_the_older_quota_calls(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        code, body = await operator(c.master_url, {"type": "GET_MASTER"})
        assert code == 200
        info = body["get_master"]["master_info"]
        assert info["port"] == int(c.master_url.rsplit(":", 1)[1])
        assert body["get_master"]["start_time"] > 0
        code, body = await operator(c.master_url, {"type": "GET_OPERATIONS"})
        assert (code, body) == (200, {"type": "GET_OPERATIONS", "get_operations": {}})

        request = {"role": "eng", "guarantee": [
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 256}}]}
        code, _ = await operator(c.master_url, {"type": "SET_QUOTA", "set_quota": {
            "quota_request": request}})
        assert code == 200
        assert c.get("/master/quota")["configs"] == [{
            "role": "eng", "guarantees": {"mem": {"value": 256.0}},
            "limits": {"mem": {"value": 256.0}}}]
        code, text = await operator(c.master_url, {"type": "SET_QUOTA", "set_quota": {
            "quota_request": {"role": "eng", "guarantee": [{"name": "mem"}]}}})
        assert code == 400 and "guarantee[0]" in text
        code, text = await operator(c.master_url, {"type": "REMOVE_QUOTA", "remove_quota": {
            "role": "ops"}})
        assert code == 400 and "ops" in text
        assert len(c.get("/master/quota")["configs"]) == 1  # refused calls changed nothing
        code, _ = await operator(c.master_url, {"type": "REMOVE_QUOTA", "remove_quota": {
            "role": "eng"}})
        assert code == 200 and c.get("/master/quota")["configs"] == []


async def test_oldest_subscriber_is_dropped_past_the_limit(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0,
                 master_flags=["--max_operator_event_stream_subscribers=1"]) as c:
        first, second = OperatorSubscriber(c.master_url), OperatorSubscriber(c.master_url)
        try:
            await first.subscribe()
            await second.subscribe()
            await first.until("__CLOSED__")
            c.add_agent()
            added = await second.until("AGENT_ADDED")
            agent_id = c.wait_agents(1)[0]["id"]
            assert added["agent_added"]["agent"]["agent_info"]["id"]["value"] == agent_id
            assert not [e for e in first.seen if e["type"] == "AGENT_ADDED"]
        finally:
            await first.close()
            await second.close()
