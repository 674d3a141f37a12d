"""Masters elected in ZooKeeper: standbys redirect, the leader serves, agents follow.

Real ZooKeeper (Debian's package, :mod:`mesos.testing.zk`; without it these tests fail
saying how to install it), real ``mesos-master`` and ``mesos-agent`` processes on
loopback ports. :class:`HACluster` is shared with ``tests/faults/test_leader_failover.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from mesos.testing.cluster import Daemon, free_port, http_json, wait_for

pytestmark = pytest.mark.slow

SESSION_TIMEOUT = "3secs"  # the masters' ZooKeeper sessions
WAIT = 60.0  # generous: two cores shared with other test runs
AGENT_RESOURCES = "cpus:4;mem:4096;disk:4096;ports:[31000-32000]"


class Answer:
    """A response that is not followed: status, headers and body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def request(url: str, method: str = "GET", body: Any = None) -> Answer:
    """One HTTP request, redirects left unfollowed."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener.open(req, timeout=10) as resp:
            return Answer(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers), exc.read())


class HACluster:
    """ZooKeeper-elected masters and agents following them, as real processes."""

    def __init__(
        self,
        work_dir: Path,
        zk_url: str,
        *,
        masters: int = 3,
        agents: int = 0,
        master_flags: list[str] | None = None,
        agent_flags: list[str] | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.zk_url = zk_url
        self.num_masters = masters
        self.num_agents = agents
        self.master_flags = master_flags or []
        self.agent_flags = agent_flags or []
        self.masters: list[Daemon] = []
        self.master_ports: list[int] = []
        self.agents: list[Daemon] = []

    def master_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.master_ports[index]}"

    def start(self) -> HACluster:
        for _ in range(self.num_masters):
            self.add_master()
        for index in range(self.num_masters):
            wait_for(lambda i=index: self._health(i), WAIT, f"master {index} to answer /health")
        if self.num_masters:
            self.wait_leader()
        for _ in range(self.num_agents):
            self.add_agent()
        if self.num_agents:
            self.wait_agents(self.num_agents)
        return self

    def add_master(self, extra_flags: list[str] | None = None) -> Daemon:
        index = len(self.masters)
        port = free_port()
        work = self.work_dir / f"master{index}"
        work.mkdir(parents=True, exist_ok=True)
        master = Daemon(
            f"master{index}",
            [sys.executable, "-m", "mesos.cli.master", "--ip=127.0.0.1", f"--port={port}",
             f"--work_dir={work}", f"--zk={self.zk_url}", "--quorum=2",
             f"--zk_session_timeout={SESSION_TIMEOUT}", "--allocation_interval=100ms",
             *self.master_flags, *(extra_flags or [])],
            work / "master.log",
        )
        master.start()
        self.masters.append(master)
        self.master_ports.append(port)
        return master

    def add_agent(self) -> Daemon:
        index = len(self.agents)
        work = self.work_dir / f"agent{index}"
        work.mkdir(parents=True, exist_ok=True)
        agent = Daemon(
            f"agent{index}",
            [sys.executable, "-m", "mesos.cli.agent", f"--master={self.zk_url}",
             "--ip=127.0.0.1", f"--port={free_port()}", f"--work_dir={work}",
             f"--resources={AGENT_RESOURCES}", "--registration_backoff_factor=100ms",
             *self.agent_flags],
            work / "agent.log",
        )
        agent.start()
        self.agents.append(agent)
        return agent

    def _health(self, index: int) -> bool:
        if not self.masters[index].alive():
            raise RuntimeError(f"master {index} exited:\n{self.masters[index].log()[-3000:]}")
        urllib.request.urlopen(f"{self.master_url(index)}/health", timeout=2).close()
        return True

    def elected(self, index: int) -> bool:
        metrics = http_json(f"{self.master_url(index)}/metrics/snapshot")
        return bool(metrics["master/elected"] == 1.0)

    def leaders(self) -> list[int]:
        """The live masters that say they lead (at most one, always)."""
        out = []
        for index, master in enumerate(self.masters):
            if master.alive():
                try:
                    if self.elected(index):
                        out.append(index)
                except OSError:
                    pass
        return out

    def wait_leader(self, exclude: int | None = None) -> int:
        def one() -> int | None:
            found = [i for i in self.leaders() if i != exclude]
            assert len(found) <= 1, f"several masters lead: {found}"
            return found[0] if found else None

        index = wait_for(lambda: (lambda i: None if i is None else (i,))(one()), WAIT,
                         "a leading master")[0]
        return int(index)

    def wait_settled(self) -> int:
        """The leader, once every live standby names it as leader in its /state (a
        standby's detector may hear of a new leader a moment after it leads)."""
        leader = self.wait_leader()
        pid = self.get(leader, "/master/state")["pid"]

        def known() -> bool:
            return all(self.get(i, "/master/state").get("leader") == pid
                       for i, m in enumerate(self.masters) if m.alive() and i != leader)

        wait_for(known, WAIT, f"every standby to know {pid} leads")
        return leader

    def get(self, index: int, path: str) -> Any:
        return http_json(f"{self.master_url(index)}{path}")

    def wait_agents(self, count: int, leader: int | None = None) -> list[dict[str, Any]]:
        def registered() -> list[dict[str, Any]] | None:
            for agent in self.agents:
                if not agent.alive():
                    raise RuntimeError(f"{agent.name} exited:\n{agent.log()[-3000:]}")
            index = leader if leader is not None else self.wait_leader()
            active = [s for s in self.get(index, "/master/slaves")["slaves"] if s["active"]]
            return active if len(active) >= count else None

        result: list[dict[str, Any]] = wait_for(registered, WAIT, f"{count} agent(s) to register")
        return result

    def logs(self) -> str:
        return "\n".join(f"==== {d.name} ====\n{d.log()[-4000:]}" for d in self.masters + self.agents)

    def stop(self) -> None:
        for daemon in self.agents + self.masters:
            daemon.stop()

    def __enter__(self) -> HACluster:
        try:
            return self.start()
        except BaseException:
            sys.stderr.write(self.logs())
            self.stop()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            sys.stderr.write(self.logs())
        self.stop()


# --------------------------------------------------------------------------- tests


def test_standbys_redirect_to_the_leader_and_say_who_leads(tmp_path: Path, zk_url: str) -> None:
    with HACluster(tmp_path, zk_url, masters=3) as cluster:
        leader = cluster.wait_settled()
        leader_port = cluster.master_ports[leader]
        leader_state = cluster.get(leader, "/master/state")
        assert leader_state["leader"] == leader_state["pid"] == f"master@127.0.0.1:{leader_port}"
        assert "elected_time" in leader_state
        assert leader_state["leader_info"]["id"] == leader_state["id"]
        standbys = [i for i in range(3) if i != leader]
        for index in standbys:
            base = cluster.master_url(index)
            # Scheduler and operator calls: 307 to the leader, path and query kept.
            answer = request(f"{base}/api/v1/scheduler", "POST", {"type": "SUBSCRIBE"})
            assert answer.status == 307, answer.body
            assert answer.headers["Location"] == f"//127.0.0.1:{leader_port}/api/v1/scheduler"
            answer = request(f"{base}/api/v1", "POST", {"type": "GET_HEALTH"})
            assert (answer.status, answer.headers["Location"]) == (
                307, f"//127.0.0.1:{leader_port}/api/v1")
            answer = request(f"{base}/master/slaves?slave_id=x")
            assert answer.headers["Location"] == f"//127.0.0.1:{leader_port}/master/slaves?slave_id=x"
            # /master/redirect: the leader's root.
            for path in ("/master/redirect", "/redirect"):
                answer = request(f"{base}{path}")
                assert (answer.status, answer.headers["Location"]) == (
                    307, f"//127.0.0.1:{leader_port}")
            # Answered locally: health, metrics, state saying who leads.
            assert request(f"{base}/health").status == 200
            assert cluster.get(index, "/metrics/snapshot")["master/elected"] == 0.0
            state = cluster.get(index, "/master/state")
            assert "elected_time" not in state
            assert state["pid"] == f"master@127.0.0.1:{cluster.master_ports[index]}"
            assert state["leader"] == leader_state["pid"]
            assert state["leader_info"]["id"] == leader_state["id"]
            assert state["flags"]["zk"] == zk_url
        assert cluster.get(leader, "/metrics/snapshot")["master/elected"] == 1.0


def test_a_standby_without_a_leader_answers_503(tmp_path: Path) -> None:
    # Nothing listens on this port: the master never reaches ZooKeeper, so no leader
    # is known, yet it serves its local endpoints.
    dead_zk = f"zk://127.0.0.1:{free_port()}/mesos"
    with HACluster(tmp_path, dead_zk, masters=0) as cluster:
        cluster.add_master()
        wait_for(lambda: cluster._health(0), WAIT, "the master to answer /health")
        answer = request(f"{cluster.master_url(0)}/api/v1/scheduler", "POST", {"type": "SUBSCRIBE"})
        assert (answer.status, answer.body) == (503, b"No leader elected")
        assert request(f"{cluster.master_url(0)}/master/redirect").status == 503
        state = cluster.get(0, "/master/state")
        assert "leader" not in state and "elected_time" not in state
        assert cluster.get(0, "/metrics/snapshot")["master/elected"] == 0.0
        assert "Still waiting" in wait_for(
            lambda: "Still waiting to connect to ZooKeeper" in cluster.masters[0].log()
            and cluster.masters[0].log(), WAIT, "the master to log that it waits")
        # SIGTERM still stops it cleanly (not the SIGKILL Daemon.stop falls back to).
        cluster.masters[0].stop(timeout=30)
        assert cluster.masters[0].proc is not None
        assert cluster.masters[0].proc.returncode == 0, cluster.masters[0].log()[-2000:]


@pytest.mark.parametrize(("flags", "message"), [
    (["--zk=zk://127.0.0.1:2181/mesos", "--quorum=0"], "Invalid --quorum 0"),
    (["--zk=http://127.0.0.1/mesos"], "Invalid --zk: Expecting 'zk://'"),
    (["--registry=zookeeper"], "--registry=zookeeper needs --zk"),
    (["--zk=zk://127.0.0.1:2181/mesos", "--registry=etcd"], "Invalid --registry 'etcd'"),
    (["--zk=zk://127.0.0.1:2181/mesos", "--registry=replicated_log"],
     "Need to specify --quorum for replicated log"),
    (["--zk=zk://127.0.0.1:2181/mesos", "--zk_session_timeout=0secs"],
     "Invalid --zk_session_timeout"),
])
def test_bad_election_flags_are_refused(tmp_path: Path, flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mesos.cli.master", f"--port={free_port()}",
         f"--work_dir={tmp_path}", *flags],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert message in result.stderr


def test_agents_follow_a_new_leader_with_their_ids(tmp_path: Path, zk_url: str) -> None:
    with HACluster(tmp_path, zk_url, masters=2, agents=2) as cluster:
        first = cluster.wait_leader()
        before = {s["id"]: s["hostname"] for s in cluster.wait_agents(2, first)}
        cluster.masters[first].kill()
        second = cluster.wait_leader(exclude=first)
        assert second != first
        after = {s["id"]: s["hostname"] for s in cluster.wait_agents(2, second)}
        assert after == before
        # The new leader recovered the registry the first one wrote in ZooKeeper: it
        # knew these agents before they came back (re-registrations, not registrations).
        metrics = cluster.get(second, "/metrics/snapshot")
        assert metrics["master/slave_reregistrations"] == 2.0
        assert metrics["master/slave_registrations"] == 0.0


def test_agent_master_flag_takes_zookeeper_urls(tmp_path: Path) -> None:
    from mesos.agent.master_link import master_url

    assert master_url("zk://127.0.0.1:2181/mesos") == "zk://127.0.0.1:2181/mesos"
    (tmp_path / "master").write_text("zk://127.0.0.1:2181/mesos\n")
    assert master_url(f"file://{tmp_path / 'master'}") == "zk://127.0.0.1:2181/mesos"
    assert master_url("127.0.0.1:5050") == "http://127.0.0.1:5050/api/v1/internal/agent"
    result = subprocess.run(
        [sys.executable, "-m", "mesos.cli.agent", "--master=zk:///mesos",
         f"--work_dir={tmp_path}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Empty ZooKeeper server" in result.stderr


def test_mesos_local_runs_elected_masters(tmp_path: Path, zk_url: str) -> None:
    """``mesos-local --zk`` (what ``make run-ha`` runs): three masters, one leader,
    agents registered with it through ZooKeeper; SIGTERM stops everything."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    proc = subprocess.Popen(
        [str(bin_dir / "mesos-local"), f"--zk={zk_url}", "--num_masters=3", "--num_agents=1",
         f"--port={port}", f"--work_dir={tmp_path}", "--zk_session_timeout=3secs",
         "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-31100]"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    banner: list[str] = []
    try:
        assert proc.stdout is not None
        for _ in range(100):  # bounded: the banner is about ten lines
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "logs and sandboxes" in line:
                break
        text = "".join(banner)
        assert "Mesos local cluster is up" in text, text
        masters = [line for line in banner if line.strip().startswith("master ")]
        assert len(masters) == 3, text
        assert sum("(leader)" in line for line in masters) == 1, text
        leader_port = int(next(m for m in masters if "(leader)" in m).split(":")[2].split()[0])
        slaves = http_json(f"http://127.0.0.1:{leader_port}/master/slaves")["slaves"]
        assert len(slaves) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    assert code == 0, "".join(banner)
