"""What signals do to a real agent, as in Mesos (real master, agent and executors).

SIGTERM stops the agent but leaves the executors of checkpointing frameworks running
(the next agent recovers them); those of frameworks that do not checkpoint are shut
down. SIGUSR1 shuts every executor down and makes the agent forget its id.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mesos.agent import checkpoint, launcher
from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.faults.test_agent_restart import (
    FW,
    TERMINAL,
    Updates,
    command_executor_pids,
    executor_pids,
    gone,
    kill_leftovers,
    task,
)

pytestmark = pytest.mark.slow

PLAIN = dict(FW, name="no-checkpoint", checkpoint=False)


async def launch(sched: RawScheduler, framework: dict[str, Any], ids: list[str]) -> None:
    await sched.subscribe(framework)
    offer = (await sched.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
    infos = [task(offer, task_id) for task_id in ids]
    code, body = await sched.call({"type": "ACCEPT", "framework_id": sched.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}})
    assert code == 202, body


def exit_code(proc: subprocess.Popen[bytes] | None) -> int:
    assert proc is not None
    return proc.wait(timeout=30)


async def test_sigterm_leaves_checkpointed_executors_to_the_next_agent(tmp_path: Path) -> None:
    work_dir = tmp_path / "agent0"
    kept: dict[str, tuple[int, int | None]] = {}
    ended: dict[str, tuple[int, int | None]] = {}
    with Cluster(tmp_path, agents=1, agent_flags=["--status_update_retry_interval=1secs"]) as (
            cluster):
        durable, plain = RawScheduler(cluster.master_url), RawScheduler(cluster.master_url)
        try:
            await launch(durable, FW, ["c0", "c1"])
            durable_updates = Updates(durable, 2)
            await durable_updates.until("TASK_RUNNING")
            kept = wait_for(lambda: p if len(p := executor_pids(work_dir)) == 2 else None,
                            10, "the checkpointed executors' pids")
            await launch(plain, PLAIN, ["p0"])
            plain_updates = Updates(plain, 1)
            await plain_updates.until("TASK_RUNNING")
            found = wait_for(lambda: [p for p in command_executor_pids(work_dir)
                                      if p not in {pid for pid, _ in kept.values()}],
                             10, "the plain executor's pid")
            ended = {str(p): (p, checkpoint.process_start_time(p)) for p in found}
            # Each checkpointed executor runs its task (sleep) in its session.
            assert all(len(launcher.session_pids(pid)) >= 2 for pid, _ in kept.values())

            cluster.agents[0].signal(signal.SIGTERM)
            assert exit_code(cluster.agents[0].proc) == 0
            log = cluster.agents[0].log()
            assert "Leaving 2 executor(s) of checkpointing frameworks running" in log
            # The plain framework's executor was shut down (its task killed first).
            wait_for(lambda: gone(ended), 10, "the plain executor to be gone")
            await plain_updates.until("TASK_KILLED", timeout=30)
            # The checkpointed ones, and their tasks, live on.
            assert not gone(kept) and all(checkpoint.same_process(p, s)
                                          for p, s in kept.values())
            assert all(len(launcher.session_pids(pid)) >= 2 for pid, _ in kept.values())

            agent = cluster.restart_agent(0)  # --recover=reconnect is the default
            wait_for(lambda: agent.log().count("re-subscribed") >= 2, 30,
                     "the executors to re-subscribe")
            port = cluster.agent_ports[0]

            def running_again() -> bool:
                if not agent.alive():
                    raise RuntimeError(agent.log()[-3000:])
                slaves = cluster.get("/master/slaves")["slaves"]
                tasks = [t for f in cluster.state()["frameworks"] if f["name"] == FW["name"]
                         for t in f["tasks"]]
                return (len(slaves) == 1 and slaves[0]["active"] and len(tasks) == 2
                        and all(t["state"] == "TASK_RUNNING" for t in tasks))
            wait_for(running_again, 30, "the master to see the tasks running again")
            state = http_json(f"http://127.0.0.1:{port}/state")
            running = sorted(t["id"] for f in state["frameworks"] for e in f["executors"]
                             for t in e["tasks"] if t["state"] == "TASK_RUNNING")
            assert running == ["c0", "c1"]
            assert executor_pids(work_dir) == kept

            for task_id in ("c0", "c1"):
                code, body = await durable.call({"type": "KILL", "framework_id": durable.fw(),
                                                 "kill": {"task_id": {"value": task_id}}})
                assert code == 202, body
            await durable_updates.until("TASK_KILLED")
            wait_for(lambda: gone(kept), 15, "the recovered executors to exit")
        finally:
            await durable.close()
            await plain.close()
            kill_leftovers(kept)
            kill_leftovers(ended)


async def test_sigusr1_shuts_every_executor_down_and_forgets_the_agent(tmp_path: Path) -> None:
    work_dir = tmp_path / "agent0"
    pids: dict[str, tuple[int, int | None]] = {}
    with Cluster(tmp_path, agents=1) as cluster:
        sched = RawScheduler(cluster.master_url)
        try:
            await launch(sched, FW, ["t0", "t1"])
            updates = Updates(sched, 2)
            await updates.until("TASK_RUNNING")
            pids = wait_for(lambda: p if len(p := executor_pids(work_dir)) == 2 else None,
                            10, "the executors' pids")
            assert (work_dir / "meta" / "slaves" / "latest").exists()

            cluster.agents[0].signal(signal.SIGUSR1)
            assert exit_code(cluster.agents[0].proc) == 0
            assert gone(pids)  # checkpointing does not keep them: this is a shutdown
            await updates.until("TASK_KILLED", timeout=30)
            assert all(s[-1]["state"] in TERMINAL for s in updates.by_task.values())
            # The next agent started here registers as a new one.
            assert not (work_dir / "meta" / "slaves" / "latest").exists()
        finally:
            await sched.close()
            kill_leftovers(pids)
