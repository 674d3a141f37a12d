"""A real network partition: one agent runs in a network namespace of its own, joined
to the master by a veth pair, and the link is blackholed past the ping timeout.

Unlike the SIGSTOP test, the agent process keeps running through the partition: it
stops hearing the master, gives up on its stream and tries to re-subscribe into the
void, while its executors (inside the namespace with it) keep talking to it. As the
master sees it the agent is unreachable: a PARTITION_AWARE framework hears
TASK_UNREACHABLE, a plain one TASK_LOST. When the link comes back the agent
re-registers under its id; the aware framework's task is kept and reported
TASK_RUNNING (REASON_AGENT_REREGISTERED), the plain framework's task is killed.

Needs root (namespaces, veth, tc); without it the test is skipped and says why. With
root, any failure to build the namespace fails the test.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.netns import require_root, veth_namespace
from mesos.testing.rawsched import RawScheduler
from tests.faults.test_partition import (
    AWARE,
    MASTER_FLAGS,
    PLAIN,
    forked_pid,
    kill_sessions,
    launch_one,
    session_members,
    until_state,
)

pytestmark = pytest.mark.slow


async def test_agent_behind_a_cut_link_is_unreachable_then_comes_back(tmp_path: Path) -> None:
    reason = require_root()
    if reason is not None:
        pytest.skip(f"SKIPPED LOUDLY: {reason} (uid {os.geteuid()})")
    work_dir = tmp_path / "agent0"
    sids: list[int] = []
    with veth_namespace() as ns, Cluster(tmp_path, agents=0, master_flags=MASTER_FLAGS,
                                          master_ip=ns.host_ip) as cluster:
        agent = cluster.add_agent(ip=ns.ns_ip, prefix=ns.prefix)
        cluster.wait_agents(1)
        assert agent.pid in ns.pids()  # nsenter exec'd: the PID held is the agent's
        slave = cluster.get("/master/slaves")["slaves"][0]
        assert slave["pid"].endswith(f"@{ns.ns_ip}:{cluster.agent_ports[0]}"), slave
        aware, plain = RawScheduler(cluster.master_url), RawScheduler(cluster.master_url)
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
            assert {kept_pid, doomed_pid} <= set(ns.pids())
            wait_for(lambda: len(session_members(doomed_pid)) >= 2, 10, "doomed's task process")

            ns.cut()
            try:
                status = await until_state(aware, "kept", "TASK_UNREACHABLE", timeout=20)
                assert status["source"] == "SOURCE_MASTER"
                assert status["reason"] == "REASON_AGENT_REMOVED"
                assert "unreachable_time" in status
                status = await until_state(plain, "doomed", "TASK_LOST", timeout=20)
                assert status["source"] == "SOURCE_MASTER"
                assert status["reason"] == "REASON_AGENT_REMOVED"
                assert cluster.get("/metrics/snapshot")["master/slaves_unreachable"] == 1.0
                # The agent itself is alive all along, and so are both tasks.
                assert agent.alive()
                assert len(session_members(kept_pid)) >= 2
                assert len(session_members(doomed_pid)) >= 2
                # It gives up on its silent stream (five missed pings) while cut off.
                wait_for(lambda: "No word from the master" in agent.log(), 20,
                         "the agent to notice the silence")
                # The partition lasts a while longer: the agent's new SUBSCRIBE
                # connection is left hanging (its SYNs vanish), as over a real cut.
                await asyncio.sleep(2.5)
                assert "Re-registered with master" not in agent.log()
                assert cluster.get("/metrics/snapshot")["master/slaves_unreachable"] == 1.0
            finally:
                ns.restore()

            # The agent re-registers under the same id (its pending SYN retransmits
            # get through now; that can take a few backed-off seconds).
            def reregistered() -> bool:
                slaves = cluster.get("/master/slaves")["slaves"]
                return any(s["id"] == agent_id["value"] and s["active"] for s in slaves)
            wait_for(reregistered, 60, "the agent to re-register")
            assert cluster.get("/metrics/snapshot")["master/slaves_unreachable"] == 0.0

            status = await until_state(aware, "kept", "TASK_RUNNING", timeout=20)
            assert status["reason"] == "REASON_AGENT_REREGISTERED"
            assert status["agent_id"] == agent_id
            assert len(session_members(kept_pid)) >= 2  # executor and its sleep

            wait_for(lambda: session_members(doomed_pid) == [], 20,
                     "the plain framework's task to be killed")
            def executors() -> list[str]:
                return [e["id"] for f in http_json(f"{cluster.agent_url(0)}/state")["frameworks"]
                        for e in f["executors"]]
            wait_for(lambda: executors() == ["kept"], 10,
                     "the agent to drop the plain framework's executor")
            assert not any(e["type"] == "UPDATE"
                           and e["update"]["status"]["task_id"]["value"] == "doomed"
                           and e["update"]["status"]["state"] == "TASK_RUNNING"
                           and e["update"]["status"].get("reason") == "REASON_AGENT_REREGISTERED"
                           for e in plain.seen)
            def master_tasks() -> dict[str, str]:
                return {t["id"]: t["state"] for f in cluster.state()["frameworks"]
                        for t in f["tasks"]}
            wait_for(lambda: master_tasks() == {"kept": "TASK_RUNNING"}, 10,
                     "the master to hold only the kept task")
        finally:
            await aware.close()
            await plain.close()
            kill_sessions(sids)
