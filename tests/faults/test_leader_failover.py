"""The leading master dies or is cut off; a standby takes over and nothing is lost.

Real ZooKeeper, three real masters electing a leader, real agents following it, and
an unmodified pymesos scheduler that finds the leader through ZooKeeper with its own
kazoo detector (it reads our ``json.info_`` znodes). Helpers come from
``tests/integration/test_master_ha.py``.
"""

from __future__ import annotations

import getpass
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import wait_for
from mesos.testing.zk import ZooKeeperNotInstalled, ZooKeeperServer
from tests.integration.test_master_ha import WAIT, HACluster, request

try:
    from pymesos import MesosSchedulerDriver, Scheduler
except ImportError:  # a loud failure, never a skip: `make test` installs it
    pytest.fail("pymesos is missing: run scripts/install-pymesos.sh (make test does)",
                pytrace=False)

pytestmark = pytest.mark.slow

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE"}
LONG_TASKS = 4
SHORT_TASKS = 2


class Recorder(Scheduler):
    """Launches LONG_TASKS ``sleep`` tasks and SHORT_TASKS ``true`` tasks; records
    every update (pymesos acknowledges each one after this callback returns)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.launched = 0
        self.states: dict[str, list[str]] = {}
        self.subscriptions: list[str] = []

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        with self.lock:
            self.subscriptions.append(framework_id["value"])

    def reregistered(self, driver: Any, master_info: Any) -> None:
        with self.lock:
            self.subscriptions.append(driver.framework_id)

    def resourceOffers(self, driver: Any, offers: list[dict[str, Any]]) -> None:
        for offer in offers:
            tasks: list[dict[str, Any]] = []
            with self.lock:
                while self.launched < LONG_TASKS + SHORT_TASKS and len(tasks) < 3:
                    n = self.launched
                    command = "sleep 600" if n < LONG_TASKS else "true"
                    tasks.append({
                        "task_id": {"value": f"task-{n}"},
                        "agent_id": offer["agent_id"],
                        "name": f"task-{n}",
                        "command": {"value": command},
                        "resources": [
                            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                            {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                        ],
                    })
                    self.launched += 1
            if tasks:
                driver.launchTasks(offer["id"], tasks)
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 3600})

    def statusUpdate(self, driver: Any, update: dict[str, Any]) -> None:
        with self.lock:
            self.states.setdefault(update["task_id"]["value"], []).append(update["state"])

    def last(self) -> dict[str, str]:
        with self.lock:
            return {task: states[-1] for task, states in self.states.items()}


def leader_tasks(cluster: HACluster, leader: int, framework_id: str) -> dict[str, str]:
    state = cluster.get(leader, "/master/state")
    for framework in state["frameworks"]:
        if framework["id"] == framework_id:
            return {t["id"]: t["state"] for t in framework["tasks"]}
    return {}


def test_pymesos_framework_survives_the_leader_being_killed(tmp_path: Path, zk_url: str) -> None:
    long_ids = {f"task-{n}" for n in range(LONG_TASKS)}
    short_ids = {f"task-{n}" for n in range(LONG_TASKS, LONG_TASKS + SHORT_TASKS)}
    with HACluster(tmp_path, zk_url, masters=3, agents=2) as cluster:
        first = cluster.wait_leader()
        agents_before = {s["id"] for s in cluster.wait_agents(2, first)}
        scheduler = Recorder()
        framework = {"user": getpass.getuser(), "name": "ha-pymesos", "failover_timeout": 3600.0}
        # The scheduler is given ZooKeeper, not a master: pymesos' own detector.
        driver = MesosSchedulerDriver(scheduler, framework, zk_url, use_addict=False)
        driver.start()
        try:
            def running() -> bool:
                last = scheduler.last()
                return (all(last.get(t) == "TASK_RUNNING" for t in long_ids)
                        and all(last.get(t) == "TASK_FINISHED" for t in short_ids))

            wait_for(running, WAIT, "the long tasks running and the short ones finished")
            framework_id = driver.framework_id
            assert framework_id and scheduler.subscriptions == [framework_id]
            assert leader_tasks(cluster, first, framework_id) == dict.fromkeys(
                long_ids, "TASK_RUNNING")
            acknowledged = {t: list(s) for t, s in scheduler.states.items()}

            cluster.masters[first].signal(signal.SIGKILL)
            second = cluster.wait_leader(exclude=first)
            assert second != first

            # The agents come back to the new leader with their ids; it recovered them
            # (and the framework) from the registry the first leader kept in ZooKeeper.
            agents_after = {s["id"] for s in cluster.wait_agents(2, second)}
            assert agents_after == agents_before
            # The framework re-subscribes with its id and its tasks are all there.
            wait_for(lambda: [f["id"] for f in cluster.get(second, "/master/frameworks")
                              ["frameworks"] if f["active"]] == [framework_id],
                     WAIT, "the framework to re-subscribe to the new leader")
            wait_for(lambda: leader_tasks(cluster, second, framework_id)
                     == dict.fromkeys(long_ids, "TASK_RUNNING"),
                     WAIT, "the new leader to know every running task")
            assert scheduler.subscriptions[-1] == framework_id
            assert set(scheduler.subscriptions) == {framework_id}
            metrics = cluster.get(second, "/metrics/snapshot")
            assert metrics["master/slave_reregistrations"] == 2.0
            assert metrics["master/frameworks_active"] == 1.0

            # The new leader drives the tasks on: kills reach them, updates come back.
            for task_id in sorted(long_ids):
                driver.killTask({"value": task_id})
            wait_for(lambda: all(scheduler.last().get(t) == "TASK_KILLED" for t in long_ids),
                     WAIT, "every long task killed through the new leader")
        finally:
            driver.stop()
            driver.join()
        # Nothing acknowledged before the failover was lost or contradicted: each task's
        # history goes on from what the scheduler had, with no failure in between.
        for task_id, before in acknowledged.items():
            history = scheduler.states[task_id]
            assert history[: len(before)] == before, (task_id, history)
            bad = [s for s in history if s in TERMINAL - {"TASK_FINISHED", "TASK_KILLED"}]
            assert bad == [], (task_id, history)
        assert all(scheduler.states[t][-1] == "TASK_FINISHED" for t in short_ids)


@pytest.fixture
def own_zk(tmp_path: Path) -> Iterator[ZooKeeperServer]:
    """A ZooKeeper this test alone freezes and thaws."""
    try:
        server = ZooKeeperServer(tmp_path / "zookeeper")
        server.start()
    except ZooKeeperNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def test_a_leader_cut_off_from_zookeeper_exits(tmp_path: Path, own_zk: ZooKeeperServer) -> None:
    with HACluster(tmp_path / "cluster", own_zk.url("/mesos"), masters=2) as cluster:
        leader = cluster.wait_leader()
        assert own_zk.proc is not None
        own_zk.proc.send_signal(signal.SIGSTOP)
        try:
            code = wait_for(lambda: cluster.masters[leader].proc.poll(),  # type: ignore[union-attr]
                            WAIT, "the cut-off leader to exit")
        finally:
            own_zk.proc.send_signal(signal.SIGCONT)
        assert code == 1
        assert "Lost leadership" in cluster.masters[leader].log()
        # Gone: nothing answers on its port any more.
        with pytest.raises(OSError):
            request(f"{cluster.master_url(leader)}/api/v1/scheduler", "POST", {"type": "SUBSCRIBE"})
        # The standby, cut off too but never leading, stays and is elected once
        # ZooKeeper is back and the old leader's session has expired.
        other = 1 - leader
        assert cluster.wait_leader(exclude=leader) == other
        assert cluster.masters[other].alive()


def test_a_frozen_leader_answers_nothing_as_leader_when_thawed(
    tmp_path: Path, zk_url: str
) -> None:
    with HACluster(tmp_path, zk_url, masters=2) as cluster:
        first = cluster.wait_leader()
        frozen = cluster.masters[first]
        frozen.signal(signal.SIGSTOP)
        try:
            second = cluster.wait_leader(exclude=first)
            assert second != first
            # Queue a scheduler call on the frozen leader's socket, then thaw it: it
            # must not be answered as by a leader (no 200, no stream).
            outcome: list[Any] = []

            def call() -> None:
                try:
                    outcome.append(request(f"{cluster.master_url(first)}/api/v1/scheduler",
                                           "POST", {"type": "SUBSCRIBE", "subscribe": {
                                               "framework_info": {"user": "u", "name": "n"}}}))
                except OSError as exc:
                    outcome.append(exc)

            caller = threading.Thread(target=call)
            caller.start()
        finally:
            frozen.signal(signal.SIGCONT)
        caller.join(60)
        assert not caller.is_alive()
        code = wait_for(lambda: frozen.proc.poll(), WAIT, "the thawed leader to exit")  # type: ignore[union-attr]
        assert code == 1
        assert "Lost leadership" in frozen.log()
        assert len(outcome) == 1
        answer = outcome[0]
        assert isinstance(answer, OSError) or answer.status != 200, vars(answer)
        assert cluster.leaders() == [second]


def test_a_stopped_leader_hands_over_at_once(tmp_path: Path, zk_url: str) -> None:
    """SIGTERM: the leader leaves the group, so a standby leads without waiting out
    the session timeout, and the agents follow."""
    with HACluster(tmp_path, zk_url, masters=2, agents=1) as cluster:
        first = cluster.wait_leader()
        agent = cluster.wait_agents(1, first)[0]["id"]
        stopped = cluster.masters[first]
        stopped.stop()
        assert stopped.proc is not None and stopped.proc.returncode == 0, stopped.log()[-2000:]
        second = cluster.wait_leader(exclude=first)
        assert [s["id"] for s in cluster.wait_agents(1, second)] == [agent]


def test_standby_endpoints_survive_every_request_kind(tmp_path: Path, zk_url: str) -> None:
    """A standby never answers a state-changing call itself, whatever the method."""
    with HACluster(tmp_path, zk_url, masters=2) as cluster:
        leader = cluster.wait_settled()
        standby = cluster.master_url(1 - leader)
        for method, path in (("POST", "/api/v1/scheduler"), ("POST", "/master/teardown"),
                             ("PUT", "/master/weights"), ("GET", "/master/frameworks"),
                             ("POST", "/api/v1/internal/agent"), ("GET", "/master/tasks")):
            answer = request(f"{standby}{path}", method, {"x": str(uuid.uuid4())})
            assert answer.status == 307, (method, path, answer.status)
