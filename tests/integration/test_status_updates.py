"""Reliable status updates end to end, and what executors are given (real processes)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

FW = {"user": "root", "name": "updates-test"}


def task(offer: dict[str, Any], task_id: str, command: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
        "command": {"value": command},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
    }


async def updates(s: RawScheduler, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    out = []
    while len(out) < count:
        event = await s.next_event("UPDATE", timeout=timeout, skip=("HEARTBEAT", "OFFERS"))
        out.append(event["update"]["status"])
    return out


async def ack(s: RawScheduler, status: dict[str, Any]) -> int:
    code, _ = await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
        "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]}})
    return code


async def test_updates_are_resent_until_acknowledged_in_order(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1, agent_flags=["--status_update_retry_interval=300ms"]) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS"))["offers"]["offers"][0]
            await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task(offer, "r", "true")]}}]}})
            # Without an acknowledgement the first update comes again, and nothing after it.
            first, again = await updates(s, 2)
            assert first["state"] == again["state"] == "TASK_STARTING"
            assert first["uuid"] == again["uuid"]
            assert await ack(s, first) == 202
            # A duplicate acknowledgement, and one with an unknown uuid, are accepted and ignored.
            assert await ack(s, first) == 202
            stale = dict(first, uuid=base64.b64encode(b"0123456789abcdef").decode())
            assert await ack(s, stale) == 202
            seen = [first["state"]]
            while seen[-1] != "TASK_FINISHED":
                status = (await updates(s, 1))[0]
                if status["state"] != seen[-1]:
                    seen.append(status["state"])
                assert await ack(s, status) == 202
            assert seen == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
        finally:
            await s.close()


async def test_executor_environment_and_session(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS"))["offers"]["offers"][0]
            script = "env | grep -E '^(MESOS|LIBPROCESS)_' | sort; ps -o sid= -p $PPID; echo ppid=$PPID"
            await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task(offer, "env", script)]}}]}})
            while True:
                status = (await updates(s, 1))[0]
                await ack(s, status)
                if status["state"] == "TASK_FINISHED":
                    break
            sandbox = next(tmp_path.glob("agent0/slaves/*/frameworks/*/executors/env/runs/latest"))
            lines = (sandbox / "stdout").read_text().splitlines()
            env = dict(line.split("=", 1) for line in lines if line.startswith(("MESOS_", "LIBPROCESS_")))
            assert env["MESOS_FRAMEWORK_ID"] == s.framework_id
            assert env["MESOS_EXECUTOR_ID"] == "env"
            assert env["MESOS_SLAVE_ID"] == offer["agent_id"]["value"]
            assert Path(env["MESOS_DIRECTORY"]).resolve() == sandbox.resolve()
            assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"]
            assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{c.agent_ports[0]}"
            assert env["MESOS_SLAVE_PID"] == f"slave(1)@127.0.0.1:{c.agent_ports[0]}"
            assert env["MESOS_CHECKPOINT"] in ("0", "1")
            assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "5secs"
            # The executor (the task's parent) leads its own session.
            sid = int(next(line for line in lines if line.strip().isdigit()))
            ppid = int(next(line for line in lines if line.startswith("ppid="))[5:])
            assert sid == ppid
        finally:
            await s.close()


async def test_shutdown_request_and_teardown_calls(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS"))["offers"]["offers"][0]
            # The executor puts a child in a process group of its own: it must still
            # die with the executor's session.
            own_group = f"{sys.executable} -c 'import os, time; os.setpgid(0, 0); time.sleep(60)'"
            script = f"{own_group} & echo $! > bg.pid; sleep 60"
            executor = {"executor_id": {"value": "ex"}, "command": {"value": script},
                        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]}
            t = task(offer, "under-custom", "unused")
            del t["command"]
            t["executor"] = executor
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [t]}}]}})
            assert code == 202, text
            code, _ = await s.call({"type": "REQUEST", "framework_id": s.fw(), "request": {"requests": []}})
            assert code == 202
            pattern = "agent0/slaves/*/frameworks/*/executors/ex/runs/latest/bg.pid"
            pid_file = wait_for(lambda: next((p for p in tmp_path.glob(pattern) if p.read_text().strip()), None),
                                10, "the executor to start its background child")
            pid = int(pid_file.read_text())
            # `sleep 60` never subscribes as an executor; SHUTDOWN ends it early, and the
            # scheduler hears the executor's task fail and a FAILURE for the executor.
            code, _ = await s.call({"type": "SHUTDOWN", "framework_id": s.fw(), "shutdown": {
                "executor_id": {"value": "ex"}, "agent_id": offer["agent_id"]}})
            assert code == 202
            status = (await updates(s, 1))[0]
            assert status["state"] == "TASK_FAILED"
            assert status["source"] == "SOURCE_AGENT"
            failure = await s.next_event("FAILURE", timeout=10, skip=("HEARTBEAT", "OFFERS", "UPDATE"))
            assert failure["failure"]["executor_id"] == {"value": "ex"}
            assert failure["failure"]["agent_id"] == offer["agent_id"]
            assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
            code, _ = await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            assert code == 202
            closed = await s.next_event("__CLOSED__", timeout=5, skip=("HEARTBEAT", "OFFERS", "UPDATE"))
            assert closed["type"] == "__CLOSED__"
            state = c.state()
            assert [f["id"] for f in state["completed_frameworks"]] == [s.framework_id]
            assert state["frameworks"] == []
        finally:
            await s.close()


async def test_launch_group_runs_a_pod_under_the_default_executor(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS"))["offers"]["offers"][0]
            executor = {
                "type": "DEFAULT", "executor_id": {"value": "pod-executor"},
                "framework_id": s.fw(),
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                              {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            }
            members = [task(offer, "pod-a", "echo a"), task(offer, "pod-b", "echo b")]
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": members}}}]}})
            assert code == 202, text
            finished: set[str] = set()
            states: dict[str, list[str]] = {}
            while finished != {"pod-a", "pod-b"}:
                status = (await updates(s, 1, timeout=20))[0]
                if "uuid" in status:
                    assert await ack(s, status) == 202
                task_id = status["task_id"]["value"]
                states.setdefault(task_id, []).append(status["state"])
                assert status["state"] in ("TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"), status
                if status["state"] == "TASK_FINISHED":
                    finished.add(task_id)
            for task_id, seen in states.items():
                assert seen.index("TASK_RUNNING") < seen.index("TASK_FINISHED"), (task_id, seen)
            outputs = sorted(p.read_text().strip() for p in tmp_path.glob(
                "agent0/slaves/*/frameworks/*/executors/pod-executor/runs/latest/tasks/*/stdout"))
            assert outputs == ["a", "b"]
        finally:
            await s.close()
