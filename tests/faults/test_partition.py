"""A partitioned agent (SIGSTOPped, so the master's pings go unanswered) that comes
back (SIGCONT), with real processes.

As the master sees it the agent is unreachable: a PARTITION_AWARE framework hears
TASK_UNREACHABLE, a plain one TASK_LOST. When the agent re-registers, the aware
framework's task is kept and reported TASK_RUNNING again (REASON_AGENT_REREGISTERED),
and the plain framework's task is killed on the agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.containerizer.procfs import session_pids as session_members
from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

SKIP = ("HEARTBEAT", "OFFERS", "RESCIND", "FAILURE")
AWARE = {"user": "root", "name": "aware", "checkpoint": True,
         "capabilities": [{"type": "PARTITION_AWARE"}]}
PLAIN = {"user": "root", "name": "plain", "checkpoint": True}
MASTER_FLAGS = ["--agent_ping_timeout=200ms", "--max_agent_ping_timeouts=3"]


def res() -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]


async def launch_one(s: RawScheduler, task_id: str) -> dict[str, Any]:
    offer: dict[str, Any] = (await s.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": "sleep 300"}, "resources": res()}]}}]}})
    assert code == 202, text
    return offer


async def until_state(s: RawScheduler, task_id: str, state: str,
                      timeout: float = 15) -> dict[str, Any]:
    """Acknowledge updates until ``task_id`` reaches ``state``."""
    while True:
        event = await s.next_event("UPDATE", timeout=timeout, skip=SKIP)
        status: dict[str, Any] = event["update"]["status"]
        if "uuid" in status:
            code, _ = await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]}})
            assert code == 202
        if status["task_id"]["value"] == task_id and status["state"] == state:
            return status


def forked_pid(work_dir: Path, executor_id: str) -> int | None:
    pattern = f"meta/slaves/*/frameworks/*/executors/{executor_id}/runs/*/pids/forked.pid"
    for path in work_dir.glob(pattern):
        text = path.read_text().split()
        if text:
            return int(text[0])
    return None


def kill_sessions(sids: list[int]) -> None:
    for sid in sids:
        for pid in session_members(sid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


async def test_partitioned_agent_comes_back(tmp_path: Path) -> None:
    work_dir = tmp_path / "agent0"
    sids: list[int] = []
    with Cluster(tmp_path, agents=1, master_flags=MASTER_FLAGS) as cluster:
        aware, plain = RawScheduler(cluster.master_url), RawScheduler(cluster.master_url)
        agent = cluster.agents[0]
        try:
            await aware.subscribe(AWARE)
            offer = await launch_one(aware, "kept")
            agent_id = offer["agent_id"]
            await until_state(aware, "kept", "TASK_RUNNING")
            await plain.subscribe(PLAIN)
            await launch_one(plain, "doomed")
            await until_state(plain, "doomed", "TASK_RUNNING")
            kept_pid = wait_for(lambda: forked_pid(work_dir, "kept"), 10, "kept's executor pid")
            doomed_pid = wait_for(lambda: forked_pid(work_dir, "doomed"), 10,
                                  "doomed's executor pid")
            sids = [kept_pid, doomed_pid]
            wait_for(lambda: len(session_members(doomed_pid)) >= 2, 10, "doomed's task process")

            agent.signal(signal.SIGSTOP)
            try:
                status = await until_state(aware, "kept", "TASK_UNREACHABLE", timeout=10)
                assert status["source"] == "SOURCE_MASTER"
                assert status["reason"] == "REASON_AGENT_REMOVED"
                assert "unreachable_time" in status
                status = await until_state(plain, "doomed", "TASK_LOST", timeout=10)
                assert status["source"] == "SOURCE_MASTER"
                assert status["reason"] == "REASON_AGENT_REMOVED"
                # While the agent is away, reconciling the kept task says unreachable.
                code, text = await aware.call({
                    "type": "RECONCILE", "framework_id": aware.fw(), "reconcile": {"tasks": [
                        {"task_id": {"value": "kept"}, "agent_id": agent_id}]}})
                assert code == 202, text
                status = await until_state(aware, "kept", "TASK_UNREACHABLE", timeout=10)
                assert status["reason"] == "REASON_RECONCILIATION"
                assert cluster.get("/metrics/snapshot")["master/slaves_unreachable"] == 1.0
            finally:
                agent.signal(signal.SIGCONT)

            # The agent re-registers under the same id.
            def reregistered() -> bool:
                slaves = cluster.get("/master/slaves")["slaves"]
                return any(s["id"] == agent_id["value"] and s["active"] for s in slaves)
            wait_for(reregistered, 20, "the agent to re-register")
            assert cluster.get("/metrics/snapshot")["master/slaves_unreachable"] == 0.0

            # The aware framework's task was kept: TASK_RUNNING again.
            status = await until_state(aware, "kept", "TASK_RUNNING", timeout=15)
            assert status["reason"] == "REASON_AGENT_REREGISTERED"
            assert status["agent_id"] == agent_id
            code, text = await aware.call({
                "type": "RECONCILE", "framework_id": aware.fw(), "reconcile": {"tasks": [
                    {"task_id": {"value": "kept"}, "agent_id": agent_id}]}})
            assert code == 202, text
            status = await until_state(aware, "kept", "TASK_RUNNING", timeout=10)
            assert status["reason"] == "REASON_RECONCILIATION"
            assert len(session_members(kept_pid)) >= 2  # executor and its sleep

            # The plain framework's task is killed on the agent: its processes go.
            wait_for(lambda: session_members(doomed_pid) == [], 15,
                     "the plain framework's task to be killed")
            running = [e["id"] for f in http_json(
                f"http://127.0.0.1:{cluster.agent_ports[0]}/state")["frameworks"]
                for e in f["executors"]]
            assert "doomed" not in running
            # The plain framework is never told its task runs again.
            assert not any(e["type"] == "UPDATE"
                           and e["update"]["status"]["task_id"]["value"] == "doomed"
                           and e["update"]["status"]["state"] == "TASK_RUNNING"
                           and e["update"]["status"].get("reason") == "REASON_AGENT_REREGISTERED"
                           for e in plain.seen)
            tasks = {t["id"]: t["state"] for f in cluster.state()["frameworks"]
                     for t in f["tasks"]}
            assert tasks.get("kept") == "TASK_RUNNING"
            assert tasks.get("doomed") is None
        finally:
            agent.signal(signal.SIGCONT)
            await aware.close()
            await plain.close()
            kill_sessions(sids)
