"""An executor SIGKILLed under a running task (real processes).

The agent notices its executor is gone, fails every task it left unfinished with
``REASON_EXECUTOR_TERMINATED`` from ``SOURCE_AGENT``, kills whatever is left in the
executor's session, and tells the scheduler of a custom executor with a FAILURE.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.containerizer.procfs import child_pids
from mesos.agent.containerizer.procfs import session_pids as session_members
from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.faults.test_partition import forked_pid

pytestmark = pytest.mark.slow

FW = {"user": "root", "name": "executor-crash", "checkpoint": True}
SKIP = ("HEARTBEAT", "OFFERS", "RESCIND")


def res() -> list[dict[str, Any]]:
    return [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]


async def accept(s: RawScheduler, offer: dict[str, Any], infos: list[dict[str, Any]]) -> None:
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}})
    assert code == 202, text


async def next_update(s: RawScheduler, timeout: float = 15) -> dict[str, Any]:
    """The next status update, acknowledged."""
    event = await s.next_event("UPDATE", timeout=timeout, skip=SKIP)
    status: dict[str, Any] = event["update"]["status"]
    if "uuid" in status:
        code, _ = await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
        assert code == 202
    return status


async def until_state(s: RawScheduler, state: str, timeout: float = 15) -> dict[str, Any]:
    while True:
        status = await next_update(s, timeout)
        if status["state"] == state:
            return status


def kill_session(sid: int | None) -> None:
    if sid is None:
        return
    for pid in session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


async def test_sigkilled_command_executor_fails_its_task(tmp_path: Path) -> None:
    work_dir = tmp_path / "agent0"
    pid: int | None = None
    with Cluster(tmp_path, agents=1) as cluster:
        s = RawScheduler(cluster.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
            await accept(s, offer, [{
                "name": "victim", "task_id": {"value": "victim"}, "agent_id": offer["agent_id"],
                "command": {"value": "sleep 300"}, "resources": res()}])
            await until_state(s, "TASK_RUNNING")
            pid = wait_for(lambda: forked_pid(work_dir, "victim"), 10, "the executor's pid")
            assert pid is not None
            # The task's `sleep` runs under the executor, in its session.
            wait_for(lambda: len(session_members(pid)) >= 2, 10, "the task's process")
            members = session_members(pid)
            # The agent's /state knows the executor and its running task.
            agent_state = http_json(f"http://127.0.0.1:{cluster.agent_ports[0]}/state")
            executors = [e for f in agent_state["frameworks"] for e in f["executors"]]
            assert [e["id"] for e in executors] == ["victim"]

            os.kill(pid, signal.SIGKILL)  # the executor only, not its session

            status = await until_state(s, "TASK_FAILED", timeout=15)
            assert status["task_id"] == {"value": "victim"}
            assert status["reason"] == "REASON_EXECUTOR_TERMINATED"
            assert status["source"] == "SOURCE_AGENT"
            assert status["agent_id"] == offer["agent_id"]
            # Nothing of the task is left: its session is empty.
            wait_for(lambda: session_members(pid) == [], 10, "the task's processes to be killed")
            for member in members:
                assert not Path(f"/proc/{member}").exists() or \
                    Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

            def master_failed() -> bool:
                tasks = [t for f in cluster.state()["frameworks"]
                         for t in f["tasks"] + f["completed_tasks"] if t["id"] == "victim"]
                return [t["state"] for t in tasks] == ["TASK_FAILED"]
            wait_for(master_failed, 10, "the master to record the task failed")
        finally:
            await s.close()
            kill_session(pid)


async def test_sigkilled_custom_executor_fails_its_task_and_reports_failure(
    tmp_path: Path,
) -> None:
    sid: int | None = None
    with Cluster(tmp_path, agents=1) as cluster:
        s = RawScheduler(cluster.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
            # An executor that never subscribes: its task waits (TASK_STAGING) for it.
            executor = {"executor_id": {"value": "custom"},
                        "command": {"value": "echo $$ > ex.pid; sleep 300 & wait"},
                        "resources": res()}
            await accept(s, offer, [{
                "name": "under-custom", "task_id": {"value": "under-custom"},
                "agent_id": offer["agent_id"], "executor": executor, "resources": res()}])
            pattern = "agent0/slaves/*/frameworks/*/executors/custom/runs/latest/ex.pid"
            pid_file = wait_for(lambda: next((p for p in tmp_path.glob(pattern)
                                              if p.read_text().strip()), None),
                                10, "the custom executor to start")
            pid = int(pid_file.read_text())
            sid = pid
            wait_for(lambda: child_pids(pid), 10, "the executor's child")

            os.kill(pid, signal.SIGKILL)

            status = await until_state(s, "TASK_FAILED", timeout=15)
            assert status["task_id"] == {"value": "under-custom"}
            assert status["reason"] == "REASON_EXECUTOR_TERMINATED"
            assert status["source"] == "SOURCE_AGENT"
            failure = await s.next_event("FAILURE", timeout=10, skip=(*SKIP, "UPDATE"))
            assert failure["failure"]["executor_id"] == {"value": "custom"}
            assert failure["failure"]["agent_id"] == offer["agent_id"]
            assert "status" in failure["failure"], failure
            # Killed by SIGKILL: a wait status of signal 9 (Mesos' `status` is the raw
            # wait status), or a shell's 128 + 9.
            assert failure["failure"]["status"] in (9, 137, -9), failure
            wait_for(lambda: session_members(pid) == [], 10, "the executor's session to be killed")
        finally:
            await s.close()
            kill_session(sid)
