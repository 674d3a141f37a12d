"""The simulated agents the recovery benchmark uses register with a real master, run
the tasks a real scheduler launches on them, and re-register with their ids and tasks
after the master is SIGKILLed and restarted: so the benchmark times the real thing."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler
from mesos.testing.simagent import SimAgentPool

pytestmark = pytest.mark.slow

AGENTS = 4
FW: dict[str, Any] = {"user": "root", "name": "simagent-test", "failover_timeout": 3600}


async def poll(c: Cluster, path: str, check: Any, timeout: float, what: str) -> Any:
    """Poll a master endpoint without blocking the loop the simulated agents run on."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await asyncio.to_thread(c.get, path)
            if check(last):
                return last
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def task(name: str, offer: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "task_id": {"value": name}, "agent_id": offer["agent_id"],
            "command": {"value": "sleep 600"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}]}


async def launch_one_per_agent(s: RawScheduler) -> dict[str, str]:
    """Launch one task on every agent offered; task id -> agent id."""
    launched: dict[str, str] = {}
    while len(launched) < AGENTS:
        event = await s.next_event("OFFERS", timeout=30, skip=("HEARTBEAT", "UPDATE"))
        for offer in event["offers"]["offers"]:
            agent_id = offer["agent_id"]["value"]
            ops = []
            if agent_id not in launched.values():
                name = f"t{len(launched)}"
                launched[name] = agent_id
                ops = [{"type": "LAUNCH", "launch": {"task_infos": [task(name, offer)]}}]
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "operations": ops,
                "filters": {"refuse_seconds": 3600}}})
            assert code == 202, text
    return launched


async def test_simulated_agents_register_run_tasks_and_reregister(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        pool = SimAgentPool(c.master_url, AGENTS, backoff_factor=0.1)
        s = RawScheduler(c.master_url)
        pool.start()
        try:
            await pool.wait_registered(30)
            ids = {a.index: a.agent_id for a in pool.agents}
            slaves = (await poll(c, "/master/slaves", lambda b: len(b["slaves"]) == AGENTS,
                                 30, "the simulated agents to be listed"))["slaves"]
            assert sorted(x["hostname"] for x in slaves) == sorted(
                f"sim-agent-{i}" for i in range(AGENTS))
            assert {x["id"] for x in slaves} == set(ids.values())
            assert all(x["active"] for x in slaves)

            await s.subscribe(FW)
            launched = await launch_one_per_agent(s)
            await poll(c, "/metrics/snapshot", lambda m: m["master/tasks_running"] == AGENTS,
                       30, "every launched task to be TASK_RUNNING")

            await asyncio.to_thread(c.restart_master)
            metrics = await poll(
                c, "/metrics/snapshot",
                lambda m: m["master/slave_reregistrations"] == AGENTS
                and m["master/slaves_active"] == AGENTS and m["master/tasks_running"] == AGENTS,
                60, "every simulated agent to re-register with its tasks")
            assert metrics["master/slave_registrations"] == 0
            # Same ids, each agent subscribed exactly twice, tasks where they were launched.
            assert {a.index: a.agent_id for a in pool.agents} == ids
            assert [a.subscriptions for a in pool.agents] == [2] * AGENTS
            tasks = (await asyncio.to_thread(c.get, "/master/tasks"))["tasks"]
            assert {t["id"]: (t["slave_id"], t["state"]) for t in tasks} == {
                name: (agent_id, "TASK_RUNNING") for name, agent_id in launched.items()}
            state = await asyncio.to_thread(c.state)
            assert state["recovered_slaves"] == []
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()
            await pool.stop()
