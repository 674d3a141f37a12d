"""An unmodified pymesos scheduler and executor against a real local cluster."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster

try:
    from pymesos import MesosSchedulerDriver, Scheduler, decode_data, encode_data
except ImportError:  # a loud failure, never a skip: `make test` installs it
    pytest.fail("pymesos is missing: run scripts/install-pymesos.sh (make test does)",
                pytrace=False)

pytestmark = pytest.mark.slow

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}


def scalar(offer: dict[str, Any], name: str) -> float:
    return sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == name)


class ManyTasks(Scheduler):
    """Launches ``count`` shell tasks as offers allow and records their states."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.launched = 0
        self.states: dict[str, list[str]] = {}
        self.finished: set[str] = set()
        self.failed: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus, mem = scalar(offer, "cpus"), scalar(offer, "mem")
            tasks = []
            with self.lock:
                while self.launched < self.count and cpus >= 0.1 and mem >= 32:
                    task_id = f"task-{self.launched}"
                    tasks.append({
                        "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"],
                        "name": task_id,
                        "command": {"value": f"echo hello from {task_id}"},
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                        ],
                    })
                    self.launched += 1
                    cpus -= 0.1
                    mem -= 32
            if tasks:
                driver.launchTasks(offer["id"], tasks)
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 60})

    def statusUpdate(self, driver, update):
        task_id = update["task_id"]["value"]
        with self.lock:
            self.states.setdefault(task_id, []).append(update["state"])
            if update["state"] == "TASK_FINISHED":
                self.finished.add(task_id)
            elif update["state"] in TERMINAL:
                self.failed.append(update)
            if len(self.finished) + len(self.failed) >= self.count:
                self.done.set()


def run_driver(scheduler: Scheduler, master: str, framework: dict[str, Any]) -> MesosSchedulerDriver:
    driver = MesosSchedulerDriver(scheduler, framework, master, use_addict=False)
    driver.start()
    return driver


def test_pymesos_scheduler_runs_twenty_tasks(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=2) as cluster:
        scheduler = ManyTasks(20)
        driver = run_driver(scheduler, cluster.master_url, {"user": "root", "name": "pymesos-20"})
        try:
            assert scheduler.done.wait(60), f"only {len(scheduler.finished)} tasks finished"
        finally:
            driver.stop()
            driver.join()
        assert scheduler.failed == []
        assert len(scheduler.finished) == 20
        for task_id, states in scheduler.states.items():
            # Each task is reported in order and ends finished; RUNNING precedes FINISHED.
            assert states[-1] == "TASK_FINISHED", (task_id, states)
            assert "TASK_RUNNING" in states, (task_id, states)
            assert states.index("TASK_RUNNING") < states.index("TASK_FINISHED")
        # Sandboxes hold each task's output.
        outputs = list(tmp_path.glob("agent*/slaves/*/frameworks/*/executors/*/runs/*/stdout"))
        texts = {p.read_text() for p in outputs}
        assert {f"hello from task-{i}\n" for i in range(20)} <= {t.strip() + "\n" for t in texts}
        # The master saw them all finish.
        state = cluster.state()
        done = [t for f in state["frameworks"] + state["completed_frameworks"]
                for t in f["completed_tasks"] if t["state"] == "TASK_FINISHED"]
        assert len(done) == 20


class EchoScheduler(Scheduler):
    """Starts one task under the pymesos echo executor and talks to it."""

    def __init__(self) -> None:
        self.launched = False
        self.replies: list[bytes] = []
        self.states: list[str] = []
        self.done = threading.Event()
        self.executor_id = {"value": "echo-executor"}

    def resourceOffers(self, driver, offers):
        for offer in offers:
            if self.launched:
                driver.declineOffer(offer["id"], {"refuse_seconds": 60})
                continue
            self.launched = True
            executor = {
                "executor_id": self.executor_id,
                "name": "pymesos echo executor",
                "command": {"value": f"{sys.executable} {Path(__file__).parent / 'pymesos_echo_executor.py'}"},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            task = {
                "task_id": {"value": "echo-task"},
                "agent_id": offer["agent_id"],
                "name": "echo",
                "executor": executor,
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            self.agent_id = offer["agent_id"]
            driver.launchTasks(offer["id"], [task])

    def statusUpdate(self, driver, update):
        self.states.append(update["state"])
        if update["state"] == "TASK_RUNNING":
            driver.sendFrameworkMessage(self.executor_id, self.agent_id, encode_data(b"hello"))
        if update["state"] in TERMINAL:
            self.done.set()

    def frameworkMessage(self, driver, executor_id, agent_id, message):
        data = decode_data(message)
        self.replies.append(data)
        if data == b"echo:hello":
            driver.sendFrameworkMessage(self.executor_id, self.agent_id, encode_data(b"finish"))


def test_pymesos_custom_executor_exchanges_messages(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1) as cluster:
        scheduler = EchoScheduler()
        driver = run_driver(scheduler, cluster.master_url, {"user": "root", "name": "pymesos-echo"})
        try:
            assert scheduler.done.wait(60), f"states so far: {scheduler.states}"
        finally:
            driver.stop()
            driver.join()
        assert scheduler.replies[:2] == [b"echo:hello", b"echo:finish"]
        assert scheduler.states[0] == "TASK_RUNNING"
        assert scheduler.states[-1] == "TASK_FINISHED"
