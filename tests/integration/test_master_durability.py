"""A master killed with SIGKILL and started again, against real agent processes:
frameworks that do not come back within their failover timeout are torn down, the
endpoints show recovered, unreachable and gone agents as Mesos does, an answered
UPDATE_FRAMEWORK survives the crash, and --recovery_agent_removal_limit stops a
master from writing off too many agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import ack_until, operator

pytestmark = pytest.mark.slow

FW: dict[str, Any] = {"user": "root", "name": "durability", "checkpoint": True,
                      "failover_timeout": 3600}


async def launch_sleeper(s: RawScheduler, task_id: str) -> None:
    event = await s.next_event("OFFERS")
    offer = event["offers"]["offers"][0]
    task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": "sleep 600"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
    assert code == 202, text
    await ack_until(s, task_id, "TASK_RUNNING")


def agent_address(c: Cluster) -> str:
    """``ip:port`` of the one registered agent, from the pid the master shows."""
    pid = c.wait_agents(1)[0]["pid"]
    return str(pid).split("@", 1)[1]


def running_on_agent(address: str) -> set[str]:
    """Ids of the tasks the agent itself says are running."""
    state = http_json(f"http://{address}/state")
    return {t["id"] for f in state["frameworks"] for e in f["executors"] for t in e["tasks"]
            if t["state"] == "TASK_RUNNING"}


async def test_a_framework_that_does_not_resubscribe_in_time_is_torn_down(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        address = agent_address(c)
        brief = RawScheduler(c.master_url)
        loyal = RawScheduler(c.master_url)
        back = RawScheduler(c.master_url)
        try:
            await brief.subscribe({**FW, "name": "brief", "failover_timeout": 4})
            await launch_sleeper(brief, "brief-task")
            await brief.call({"type": "SUPPRESS", "framework_id": brief.fw()})
            await loyal.subscribe({**FW, "name": "loyal"})
            await launch_sleeper(loyal, "loyal-task")
            assert running_on_agent(address) == {"brief-task", "loyal-task"}
            brief_id, loyal_id = brief.framework_id, loyal.framework_id
            c.restart_master()
            await brief.close()
            await loyal.close()
            # "loyal" re-subscribes; "brief" never does.
            await back.subscribe({**FW, "name": "loyal", "id": {"value": loyal_id}})

            def completed() -> list[str]:
                frameworks = c.get("/master/frameworks")
                return [f["id"] for f in frameworks["completed_frameworks"]]

            wait_for(lambda: completed() == [brief_id], 60,
                     "the framework that did not come back to be torn down")
            wait_for(lambda: running_on_agent(address) == {"loyal-task"}, 30,
                     "its task to be killed on the agent")
            active = c.get("/master/frameworks")["frameworks"]
            assert [f["id"] for f in active] == [loyal_id]
            tasks = c.get("/master/tasks")["tasks"]
            assert ("loyal-task", "TASK_RUNNING") in [(t["id"], t["state"]) for t in tasks]
            code, _ = await back.call({"type": "RECONCILE", "framework_id": back.fw(),
                                       "reconcile": {"tasks": []}})
            assert code == 202
            event = await back.next_event("UPDATE", skip=("HEARTBEAT", "OFFERS"))
            status = event["update"]["status"]
            assert (status["task_id"]["value"], status["state"]) == ("loyal-task", "TASK_RUNNING")
        finally:
            if back.framework_id:
                await back.call({"type": "TEARDOWN", "framework_id": back.fw()})
            for s in (brief, loyal, back):
                await s.close()


async def test_an_answered_update_framework_or_teardown_survives_a_crash(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            code, text = await s.call({"type": "UPDATE_FRAMEWORK", "framework_id": s.fw(),
                                       "update_framework": {"framework_info": {
                                           **FW, "name": "renamed", "id": s.fw()}}})
            assert code == 200, text
            c.restart_master()  # SIGKILL straight after the answer
            frameworks = c.get("/master/frameworks")["frameworks"]
            assert [(f["id"], f["name"]) for f in frameworks] == [(s.framework_id, "renamed")]
            # So is an answered TEARDOWN.
            await s.close()
            s = RawScheduler(c.master_url)
            await s.subscribe({**FW, "name": "renamed", "id": {"value": frameworks[0]["id"]}})
            code, text = await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            assert code == 202, text
            c.restart_master()
            assert c.get("/master/frameworks")["frameworks"] == []
        finally:
            await s.close()


async def get_agents(c: Cluster) -> dict[str, Any]:
    code, body = await operator(c.master_url, {"type": "GET_AGENTS"})
    assert code == 200, body
    assert body["type"] == "GET_AGENTS"
    agents: dict[str, Any] = body["get_agents"]
    return agents


async def test_endpoints_show_recovered_unreachable_and_gone_agents(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        agents = await get_agents(c)
        assert [a["agent_info"]["id"]["value"] for a in agents["agents"]] == [agent_id]
        assert agents["agents"][0]["active"] is True
        assert agents["recovered_agents"] == []
        c.agents[0].kill()
        c.restart_master(["--agent_reregister_timeout=10secs"])
        # Recovered from the registry, not back yet.
        agents = await get_agents(c)
        assert agents["agents"] == []
        assert [a["id"]["value"] for a in agents["recovered_agents"]] == [agent_id]
        slaves = c.get("/master/slaves")
        assert slaves["slaves"] == []
        assert [a["id"] for a in slaves["recovered_slaves"]] == [agent_id]
        state = c.get("/master/state")
        assert [a["id"] for a in state["recovered_slaves"]] == [agent_id]
        assert state["unreachable_slaves"] == 0
        # Past the timeout it is unreachable: counted, listed nowhere.
        wait_for(lambda: c.get("/master/state")["unreachable_slaves"] == 1, 40,
                 "the missing agent to be marked unreachable")
        state = c.get("/master/state")
        assert state["slaves"] == [] and state["recovered_slaves"] == []
        assert await get_agents(c) == {"agents": [], "recovered_agents": []}
        assert c.get("/master/slaves")["recovered_slaves"] == []
        code, body = await operator(c.master_url, {"type": "GET_STATE"})
        assert code == 200, body
        assert body["get_state"]["get_agents"] == {"agents": [], "recovered_agents": []}
        assert set(body["get_state"]) == {"get_tasks", "get_executors", "get_frameworks",
                                          "get_agents"}
        # Marked gone: no longer unreachable either.
        code, text = await operator(c.master_url, {"type": "MARK_AGENT_GONE", "mark_agent_gone": {
            "agent_id": {"value": agent_id}}})
        assert code == 200, text
        assert c.get("/master/state")["unreachable_slaves"] == 0
        assert c.get("/metrics/snapshot")["master/slaves_unreachable"] == 0.0
        assert await get_agents(c) == {"agents": [], "recovered_agents": []}


async def test_removal_limit_makes_the_master_exit_instead(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        c.agents[0].kill()
        master = c.restart_master(["--agent_reregister_timeout=3secs",
                                   "--recovery_agent_removal_limit=0%"])
        wait_for(lambda: not master.alive(), 40, "the master to give up after the timeout")
        assert master.proc is not None and master.proc.returncode != 0
        assert "removal limit exceeded" in master.log()
        # Nothing was written off: the next master still expects the agent.
        master.args = [a for a in master.args if not a.startswith(
            ("--agent_reregister_timeout=", "--recovery_agent_removal_limit="))]
        c.restart_master()
        agents = await get_agents(c)
        assert [a["id"]["value"] for a in agents["recovered_agents"]] == [agent_id]
        assert c.get("/master/state")["unreachable_slaves"] == 0
