"""MARK_AGENT_GONE against real processes: the operator marks a running agent gone,
its task is reported TASK_GONE_BY_OPERATOR, the agent is told to shut down, and a
restarted master still knows it is gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import ack_until, operator

pytestmark = pytest.mark.slow

FW: dict[str, Any] = {"user": "root", "name": "gone-test", "failover_timeout": 3600,
                      "capabilities": [{"type": "PARTITION_AWARE"}]}


def gone(agent_id: str) -> dict[str, Any]:
    return {"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": agent_id}}}


async def test_mark_agent_gone(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        agent_id = c.wait_agents(1)[0]["id"]
        s = RawScheduler(c.master_url)
        try:
            code, text = await operator(c.master_url, gone("no-such-agent"))
            assert code == 404, text
            code, text = await operator(c.master_url, {"type": "MARK_AGENT_GONE"})
            assert code == 400, text
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS"))["offers"]["offers"][0]
            task = {"name": "t1", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                    "command": {"value": "sleep 600"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                  {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            assert code == 202, text
            await ack_until(s, "t1", "TASK_RUNNING")
            code, text = await operator(c.master_url, gone(agent_id))
            assert code == 200, text
            status = await ack_until(s, "t1", "TASK_GONE_BY_OPERATOR")
            assert status["reason"] == "REASON_AGENT_REMOVED_BY_OPERATOR"
            assert c.get("/master/slaves")["slaves"] == []
            # The agent was told to shut down, and does.
            wait_for(lambda: not c.agents[0].alive(), 20, "the gone agent to exit")
            # Marking it again is accepted and changes nothing.
            code, _ = await operator(c.master_url, gone(agent_id))
            assert code == 200
            framework_id = s.framework_id
            await s.close()
            # A restarted master still knows the agent is gone.
            c.restart_master()
            s = RawScheduler(c.master_url)
            await s.subscribe({**FW, "id": {"value": framework_id}})
            code, _ = await s.call({"type": "RECONCILE", "framework_id": s.fw(), "reconcile": {
                "tasks": [{"task_id": {"value": "t1"}, "agent_id": {"value": agent_id}}]}})
            assert code == 202
            status = (await s.next_event("UPDATE", skip=("HEARTBEAT", "OFFERS")))["update"]["status"]
            assert status["state"] == "TASK_GONE_BY_OPERATOR"
            code, _ = await operator(c.master_url, gone(agent_id))
            assert code == 200
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()
