"""An agent SIGKILLed while tasks run comes back with them (real processes).

The framework checkpoints, so its executors outlive the agent, re-subscribe to the
restarted one, and the agent re-registers with the master carrying their tasks.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from mesos.agent import checkpoint
from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

TASKS = 20
FW = {"user": "root", "name": "restart-test", "checkpoint": True, "failover_timeout": 600}
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}
ORDER = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]


def task(offer: dict[str, Any], task_id: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
        "command": {"value": "sleep 300"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                      {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
    }


class Updates:
    """Every update the scheduler got, per task, each acknowledged."""

    def __init__(self, sched: RawScheduler, count: int = TASKS) -> None:
        self.sched = sched
        self.count = count
        self.by_task: dict[str, list[dict[str, Any]]] = {}

    def latest(self) -> dict[str, str]:
        return {t: s[-1]["state"] for t, s in self.by_task.items()}

    async def until(self, state: str, timeout: float = 60) -> None:
        while sum(1 for s in self.latest().values() if s == state) < self.count:
            event = await self.sched.next_event("UPDATE", timeout=timeout,
                                                skip=("HEARTBEAT", "OFFERS", "RESCIND"))
            status = event["update"]["status"]
            self.by_task.setdefault(status["task_id"]["value"], []).append(status)
            if "uuid" in status:
                code, _ = await self.sched.call({
                    "type": "ACKNOWLEDGE", "framework_id": self.sched.fw(), "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"],
                        "uuid": status["uuid"]}})
                assert code == 202


def executor_pids(work_dir: Path) -> dict[str, tuple[int, int | None]]:
    """Executor id -> (pid, start time) from the agent's checkpoints."""
    out = {}
    for path in work_dir.glob("meta/slaves/*/frameworks/*/executors/*/runs/*/pids/forked.pid"):
        parts = path.read_text().split()
        executor_id = path.parents[3].name
        out[executor_id] = (int(parts[0]), int(parts[1]) if len(parts) > 1 else None)
    return out


def kill_leftovers(pids: dict[str, tuple[int, int | None]]) -> None:
    for pid, start in pids.values():
        if checkpoint.same_process(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def check_streams(by_task: dict[str, list[dict[str, Any]]]) -> None:
    """Per task: states never go back, nothing follows the terminal update, and the
    only repeats are redeliveries of the same update (at least once)."""
    for task_id, statuses in by_task.items():
        seen: dict[str, str] = {}
        states: list[str] = []
        for status in statuses:
            uuid, state = status.get("uuid"), status["state"]
            if uuid in seen:
                assert seen[uuid] == state
                continue
            seen[uuid] = state
            assert not states or states[-1] not in TERMINAL, (task_id, statuses)
            if states:
                assert ORDER.index(state) >= ORDER.index(states[-1]), (task_id, states, state)
            states.append(state)
        assert states[-1] == "TASK_KILLED", (task_id, states)
        assert "TASK_RUNNING" in states, (task_id, states)


async def test_sigkilled_agent_recovers_its_running_tasks(tmp_path: Path) -> None:
    flags = ["--status_update_retry_interval=1secs"]
    work_dir = tmp_path / "agent0"
    pids: dict[str, tuple[int, int | None]] = {}
    with Cluster(tmp_path, agents=1, agent_flags=flags) as cluster:
        sched = RawScheduler(cluster.master_url)
        try:
            await sched.subscribe(FW)
            offer = (await sched.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
            infos = [task(offer, f"t{i}") for i in range(TASKS)]
            code, body = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(),
                                           "accept": {"offer_ids": [offer["id"]], "operations": [
                                               {"type": "LAUNCH",
                                                "launch": {"task_infos": infos}}]}})
            assert code == 202, body
            updates = Updates(sched)
            await updates.until("TASK_RUNNING")
            pids = wait_for(lambda: p if len(p := executor_pids(work_dir)) == TASKS else None,
                            10, "every executor pid checkpointed")

            cluster.agents[0].kill()  # SIGKILL
            assert all(checkpoint.same_process(p, s) for p, s in pids.values())
            agent = cluster.restart_agent(0)
            port = cluster.agent_ports[0]

            def resubscribed() -> bool:
                return agent.log().count("re-subscribed") >= TASKS
            wait_for(resubscribed, 30, "every executor to re-subscribe")

            def all_running() -> bool:
                if not agent.alive():
                    raise RuntimeError(agent.log()[-3000:])
                slaves = cluster.get("/master/slaves")["slaves"]
                tasks = cluster.state()["frameworks"][0]["tasks"]
                return (len(slaves) == 1 and slaves[0]["active"] and len(tasks) == TASKS
                        and all(t["state"] == "TASK_RUNNING" for t in tasks))
            wait_for(all_running, 30, "the master to see all tasks running again")
            assert executor_pids(work_dir) == pids
            assert all(checkpoint.same_process(p, s) for p, s in pids.values())
            agent_state = http_json(f"http://127.0.0.1:{port}/state")
            running = [t for f in agent_state["frameworks"] for e in f["executors"]
                       for t in e["tasks"] if t["state"] == "TASK_RUNNING"]
            assert len(running) == TASKS

            for info in infos:
                code, body = await sched.call({"type": "KILL", "framework_id": sched.fw(),
                                               "kill": {"task_id": info["task_id"]}})
                assert code == 202, body
            await updates.until("TASK_KILLED")
            check_streams(updates.by_task)
            # The recovered executors' exits are noticed (they are not the agent's
            # children) and their checkpoints removed.
            wait_for(lambda: gone(pids), 15, "the executors to exit")
            wait_for(lambda: executor_pids(work_dir) == {}, 15, "the checkpoints to go")
        finally:
            await sched.close()
            kill_leftovers(pids)


async def launch(cluster: Cluster, framework: dict[str, Any], count: int) -> RawScheduler:
    sched = RawScheduler(cluster.master_url)
    await sched.subscribe(framework)
    offer = (await sched.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
    infos = [task(offer, f"t{i}") for i in range(count)]
    code, body = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}})
    assert code == 202, body
    return sched


def gone(pids: dict[str, tuple[int, int | None]]) -> bool:
    return not any(checkpoint.same_process(p, s) for p, s in pids.values())


async def test_recover_cleanup_kills_the_executors_and_starts_afresh(tmp_path: Path) -> None:
    work_dir = tmp_path / "agent0"
    pids: dict[str, tuple[int, int | None]] = {}
    with Cluster(tmp_path, agents=1) as cluster:
        sched = await launch(cluster, FW, 2)
        try:
            await Updates(sched, 2).until("TASK_RUNNING")
            pids = wait_for(lambda: p if len(p := executor_pids(work_dir)) == 2 else None,
                            10, "every executor pid checkpointed")
            old_id = cluster.get("/master/slaves")["slaves"][0]["id"]
            cluster.restart_agent(0, ["--recover=cleanup"])
            wait_for(lambda: gone(pids), 15, "the old executors to be killed")

            def new_agent() -> bool:
                slaves = cluster.get("/master/slaves")["slaves"]
                return any(s["id"] != old_id and s["active"] for s in slaves)
            wait_for(new_agent, 20, "the agent to register under a new id")
            assert executor_pids(work_dir) == {}
        finally:
            await sched.close()
            kill_leftovers(pids)


def command_executor_pids(work_dir: Path) -> list[int]:
    """Pids of command executors, from the line each writes first to its stderr."""
    out = []
    for stderr in work_dir.glob("slaves/*/frameworks/*/executors/*/runs/latest/stderr"):
        text = stderr.read_text()
        if "command-executor[" in text:
            out.append(int(text.split("command-executor[", 1)[1].split("]", 1)[0]))
    return out


async def test_executors_of_a_framework_that_does_not_checkpoint_do_not_survive(
    tmp_path: Path,
) -> None:
    work_dir = tmp_path / "agent0"
    pids: dict[str, tuple[int, int | None]] = {}
    with Cluster(tmp_path, agents=1) as cluster:
        sched = await launch(cluster, dict(FW, checkpoint=False), 2)
        try:
            await Updates(sched, 2).until("TASK_RUNNING")
            found = wait_for(lambda: p if len(p := command_executor_pids(work_dir)) == 2
                             else None, 10, "the executors' pids")
            pids = {str(p): (p, checkpoint.process_start_time(p)) for p in found}
            cluster.restart_agent(0)
            wait_for(lambda: gone(pids), 15, "the executors to exit")
            assert executor_pids(work_dir) == {}  # nothing of theirs was checkpointed
        finally:
            await sched.close()
            kill_leftovers(pids)
