"""A master killed with SIGKILL and started again on the same work dir recovers its
registry: weights and quota, frameworks, and the agents it expects back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

FW: dict[str, Any] = {"user": "root", "name": "recovery-test", "failover_timeout": 3600}


async def operator(master: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"http://{master}/api/v1", json=body) as r:
        text = await r.text()
        return r.status, (await r.json() if r.content_type == "application/json" and text else text)


async def ack_until(s: RawScheduler, task_id: str, state: str, timeout: float = 20) -> dict[str, Any]:
    while True:
        event = await s.next_event("*", timeout=timeout)
        if event["type"] != "UPDATE":
            continue
        status = event["update"]["status"]
        if "uuid" in status:
            await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
        if status["task_id"]["value"] == task_id and status["state"] == state:
            return status


async def test_weights_and_quota_survive_a_restart(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        code, _ = await operator(c.master_url, {"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "eng", "weight": 2.5}]}})
        assert code == 200
        code, text = await operator(c.master_url, {"type": "UPDATE_QUOTA", "update_quota": {
            "quota_configs": [{"role": "eng", "guarantees": {"cpus": {"value": 2}},
                               "limits": {"cpus": {"value": 3}}}]}})
        assert code == 200, text
        assert (tmp_path / "master" / "registry.sqlite").exists()
        c.restart_master()
        _, weights = await operator(c.master_url, {"type": "GET_WEIGHTS"})
        assert weights["get_weights"]["weight_infos"] == [{"role": "eng", "weight": 2.5}]
        _, quota = await operator(c.master_url, {"type": "GET_QUOTA"})
        assert quota["get_quota"]["status"]["configs"] == [{
            "role": "eng", "guarantees": {"cpus": {"value": 2.0}}, "limits": {"cpus": {"value": 3.0}}}]


async def test_a_resubscribing_framework_keeps_its_running_task(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        first = RawScheduler(c.master_url)
        second = RawScheduler(c.master_url)
        try:
            await first.subscribe(FW)
            offer = (await first.next_event("OFFERS"))["offers"]["offers"][0]
            task = {"name": "t1", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                    "command": {"value": "sleep 600"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}
            code, text = await first.call({"type": "ACCEPT", "framework_id": first.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            assert code == 202, text
            await ack_until(first, "t1", "TASK_RUNNING")
            framework_id = first.framework_id
            c.restart_master()
            await first.close()
            # Before the scheduler is back the framework is known, recovered and inactive.
            known = c.get("/master/frameworks")["frameworks"]
            assert [(f["id"], f["active"]) for f in known] == [(framework_id, False)]
            c.wait_agents(1)
            await second.subscribe({**FW, "id": {"value": framework_id}})
            assert second.framework_id == framework_id
            code, _ = await second.call({"type": "RECONCILE", "framework_id": second.fw(),
                                         "reconcile": {"tasks": []}})
            assert code == 202
            status = (await second.next_event("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
            assert (status["task_id"]["value"], status["state"]) == ("t1", "TASK_RUNNING")
            tasks = c.get("/master/tasks")["tasks"]
            assert [(t["id"], t["state"]) for t in tasks] == [("t1", "TASK_RUNNING")]
        finally:
            if second.framework_id:
                await second.call({"type": "TEARDOWN", "framework_id": second.fw()})
            await first.close()
            await second.close()


async def test_an_agent_that_does_not_come_back_is_marked_unreachable(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        c.agents[0].kill()
        c.restart_master(["--agent_reregister_timeout=1secs"])

        def unreachable() -> bool:
            return bool(c.get("/metrics/snapshot")["master/slaves_unreachable"] == 1.0)

        wait_for(unreachable, 15, "the missing agent to be marked unreachable")
        assert c.get("/master/slaves")["slaves"] == []
        # And that is durable too: a second restart still knows it.
        c.restart_master()
        wait_for(unreachable, 15, "the unreachable agent to be recovered")
        # Unknown to this master's tasks, but reconciliation can say where it went.
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe({**FW, "capabilities": [{"type": "PARTITION_AWARE"}]})
            code, _ = await s.call({"type": "RECONCILE", "framework_id": s.fw(), "reconcile": {
                "tasks": [{"task_id": {"value": "gone"}, "agent_id": {"value": agent_id}}]}})
            assert code == 202
            status = (await s.next_event("UPDATE"))["update"]["status"]
            assert status["state"] == "TASK_UNREACHABLE"
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()
