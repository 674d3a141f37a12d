"""Real agents isolating real tasks with this host's cgroups (we run as root).

Each test starts a master and an agent with ``--launcher=linux`` and a
``--cgroups_root`` of its own ("mesos-test-<pid>-<n>"), so no other agent on the
host is touched by (or touches) its containers. Teardown stops the cluster, then
kills (through those cgroups, so only what the test started) whatever is still in
them and removes every cgroup under the root, even when the test failed. The
frameworks do not checkpoint: a stopping agent shuts their executors down.
Without root or cgroups the tests fail, saying why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.containerizer import Cgroups, CgroupsError, open_cgroups
from mesos.testing.cluster import Cluster, http_json
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

WAIT = 60.0
FW = {"user": "root", "name": "isolation-test", "checkpoint": False}
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}
_counter = itertools.count()

ALLOCATE_64MB = "b = b'x' * (64 * 1024 * 1024); import time; time.sleep(600)"
BURN = f"{sys.executable} -c 'while True: pass'"
FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.02)
"""
LIST_PIDS = ("import os; print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') "
             "if p.isdigit()), file=open('pids.txt', 'w'))")


def _require_cgroups() -> None:
    """Fail (not skip) with the reason when this host cannot run these tests."""
    if os.geteuid() != 0:
        pytest.fail("agent isolation tests need root (CI runs as root)")
    try:
        open_cgroups("mesos-probe", need=["cpu", "cpuacct", "memory", "pids", "freezer"])
    except CgroupsError as e:
        pytest.fail(f"agent isolation tests need cgroups: {e}")


async def _scrub(cgroups: Cgroups) -> None:
    """Kill what is left under our root (ours only) and remove every cgroup there."""
    for container_id in cgroups.containers():
        with contextlib.suppress(CgroupsError):
            await cgroups.destroy(container_id)
    await cgroups.remove_root()


@pytest.fixture
async def cgroups_root() -> AsyncIterator[str]:
    _require_cgroups()
    root = f"mesos-test-{os.getpid()}-{next(_counter)}"
    try:
        yield root
    finally:
        cgroups = open_cgroups(root)
        await _scrub(cgroups)
        assert not any(path.exists() for path in cgroups.root_paths())


@pytest.fixture
def start(tmp_path: Path, cgroups_root: str) -> Iterator[Callable[..., Cluster]]:
    """Start a cluster whose agent isolates with ``isolation`` (stopped afterwards)."""
    made: list[Cluster] = []

    def factory(isolation: str, *flags: str, resources: str = "cpus:2;mem:1024;disk:1024"
                ) -> Cluster:
        cluster = Cluster(tmp_path, agents=1, agent_resources=resources, agent_flags=[
            "--launcher=linux", f"--cgroups_root={cgroups_root}", f"--isolation={isolation}",
            "--executor_shutdown_grace_period=1secs", *flags])
        made.append(cluster)
        cluster.__enter__()
        return cluster

    try:
        yield factory
    finally:
        for cluster in made:
            cluster.__exit__(None, None, None)


class Framework:
    """A scheduler that launches command tasks and acknowledges every update."""

    def __init__(self, cluster: Cluster, info: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.info = info or FW
        self.sched = RawScheduler(cluster.master_url)
        self.statuses: dict[str, list[dict[str, Any]]] = {}

    async def __aenter__(self) -> Framework:
        await self.sched.subscribe(self.info)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sched.close()

    async def launch(self, *tasks: tuple[str, str, float, float]) -> None:
        """Launch (task id, shell command, cpus, mem) tasks on the next offer."""
        offer = (await self.sched.next_event("OFFERS", timeout=WAIT))["offers"]["offers"][0]
        infos = [{
            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}],
        } for task_id, command, cpus, mem in tasks]
        code, body = await self.sched.call({
            "type": "ACCEPT", "framework_id": self.sched.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}})
        assert code == 202, body

    async def launch_group(self, executor_id: str, task_id: str, mem: float) -> None:
        """Launch a one-task group (``sleep``) on default executor ``executor_id``."""
        offer = (await self.sched.next_event("OFFERS", timeout=WAIT))["offers"]["offers"][0]
        executor = {
            "type": "DEFAULT", "executor_id": {"value": executor_id},
            "framework_id": self.sched.fw(),
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
        }
        task = {
            "name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": "sleep 300"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}],
        }
        code, body = await self.sched.call({
            "type": "ACCEPT", "framework_id": self.sched.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": [task]}}}]}})
        assert code == 202, body

    async def kill(self, task_id: str) -> None:
        code, body = await self.sched.call({"type": "KILL", "framework_id": self.sched.fw(),
                                            "kill": {"task_id": {"value": task_id}}})
        assert code == 202, body

    def state(self, task_id: str) -> str | None:
        statuses = self.statuses.get(task_id)
        return statuses[-1]["state"] if statuses else None

    async def until(self, task_id: str, states: set[str], timeout: float = WAIT
                    ) -> dict[str, Any]:
        """The first update of ``task_id`` in ``states``; fails on another terminal one."""
        deadline = time.monotonic() + timeout
        while True:
            for status in self.statuses.get(task_id, []):
                if status["state"] in states:
                    return status
                if status["state"] in TERMINAL:
                    raise AssertionError(f"{task_id} ended {status}\n{self.cluster.logs()}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {task_id} to be {states}: "
                                     f"{self.statuses.get(task_id)}\n{self.cluster.logs()}")
            event = await self.sched.next_event("UPDATE", timeout=left,
                                                skip=("HEARTBEAT", "OFFERS", "RESCIND"))
            status = event["update"]["status"]
            self.statuses.setdefault(status["task_id"]["value"], []).append(status)
            if "uuid" in status:
                code, _ = await self.sched.call({
                    "type": "ACKNOWLEDGE", "framework_id": self.sched.fw(), "acknowledge": {
                        "agent_id": status["agent_id"], "task_id": status["task_id"],
                        "uuid": status["uuid"]}})
                assert code == 202


def agent_url(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.agent_ports[0]}"


def executor_of(cluster: Cluster, task_id: str) -> dict[str, Any]:
    """The agent's /state entry of the executor of ``task_id`` (a command task), live
    or completed."""
    state = http_json(f"{agent_url(cluster)}/state")
    for framework in [*state["frameworks"], *state["completed_frameworks"]]:
        for executor in [*framework["executors"], *framework["completed_executors"]]:
            if executor["id"] == task_id:
                return dict(executor)
    raise AssertionError(f"no executor for {task_id} in the agent's state")


def alive(pid: int) -> bool:
    """Running (a zombie is dead: it waits only for a parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def eventually(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def containers(root: str) -> set[str]:
    return open_cgroups(root).containers()


# --------------------------------------------------------------------------- memory


async def test_a_task_past_its_memory_fails_with_the_memory_limitation(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem")
    async with Framework(cluster) as fw:
        await fw.launch(("hog", f"{sys.executable} -c \"{ALLOCATE_64MB}\"", 0.5, 32))
        failed = await fw.until("hog", {"TASK_FAILED"})
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY", failed
        assert failed["source"] == "SOURCE_AGENT", failed
        assert "Memory limit exceeded" in failed.get("message", ""), failed
        # The container is gone, cgroups included.
        await eventually(lambda: not containers(cgroups_root), "the container's cgroups to go")


# --------------------------------------------------------------------------- killing


async def test_a_killed_task_leaves_no_process_behind_not_even_a_setsid_escapee(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem")
    escape = ("setsid sh -c 'echo $$ > escaped.pid; exec sleep 300' & "
              "echo $$ > task.pid; exec sleep 300")
    async with Framework(cluster) as fw:
        await fw.launch(("t", escape, 0.1, 32))
        await fw.until("t", {"TASK_RUNNING"})
        sandbox = Path(executor_of(cluster, "t")["directory"])

        def pids() -> list[int] | None:
            try:
                return [int((sandbox / name).read_text()) for name in ("task.pid", "escaped.pid")]
            except (FileNotFoundError, ValueError):
                return None

        task_pid, escaped_pid = await eventually(pids, "the task's pid files")
        assert alive(task_pid) and alive(escaped_pid)
        assert os.getsid(escaped_pid) != os.getsid(task_pid)  # it did leave the session
        (cid,) = containers(cgroups_root)
        await fw.kill("t")
        await fw.until("t", {"TASK_KILLED"})
        await eventually(lambda: not alive(task_pid) and not alive(escaped_pid),
                         "every process of the task to die")
        await eventually(lambda: cid not in containers(cgroups_root), "the container to go")


# --------------------------------------------------------------------------- resizing


async def test_the_container_limits_follow_the_executors_tasks(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    """A default executor's container holds the executor's 0.1 cpus and 32 MB plus
    its tasks'; a second task group raises the limits, a killed task lowers them
    again: cpu shares and the memory soft limit (the hard limit is only ever raised
    while the container runs, as in Mesos: lowering it could OOM-kill on the spot)."""
    cluster = start("cgroups/cpu,cgroups/mem")
    async with Framework(cluster) as fw:
        await fw.launch_group("ex", "a", 32)
        await fw.until("a", {"TASK_RUNNING"})
        (cid,) = containers(cgroups_root)
        cg = open_cgroups(cgroups_root)

        def limits() -> tuple[int, int, int]:
            memory, cpu = cg.path("memory", cid), cg.path("cpu", cid)
            return (int((memory / "memory.limit_in_bytes").read_text()) >> 20,
                    int((memory / "memory.soft_limit_in_bytes").read_text()) >> 20,
                    int((cpu / "cpu.shares").read_text()))

        assert limits() == (64, 64, 204)
        await fw.launch_group("ex", "b", 64)
        await fw.until("b", {"TASK_RUNNING"})
        await eventually(lambda: limits() == (128, 128, 307), "the limits to grow")
        await fw.kill("a")
        await fw.until("a", {"TASK_KILLED"})
        await eventually(lambda: limits() == (128, 96, 204), "the limits to shrink")
        assert containers(cgroups_root) == {cid}
        await fw.kill("b")
        await fw.until("b", {"TASK_KILLED"})


# --------------------------------------------------------------------------- cpu


def cpu_seconds(cluster: Cluster) -> dict[str, float]:
    """Executor id -> CPU seconds used, from /monitor/statistics."""
    entries = http_json(f"{agent_url(cluster)}/monitor/statistics")
    return {e["executor_id"]: e["statistics"]["cpus_user_time_secs"]
            + e["statistics"]["cpus_system_time_secs"] for e in entries}


async def test_cpu_time_follows_the_cpus_given_with_cfs_quota(
    start: Callable[..., Cluster],
) -> None:
    """Two busy tasks (two spinning processes each, enough for 2 CPUs) given 0.5 and
    1.5 cpus (plus the command executor's 0.1 each) share the 2 CPUs in about that
    ratio: 1.6 / 0.6 = 2.7. Bounds are loose since other work shares this machine."""
    cluster = start("cgroups/cpu,cgroups/mem", "--cgroups_enable_cfs")
    burn = f"{BURN} & {BURN} & wait"
    async with Framework(cluster) as fw:
        await fw.launch(("small", burn, 0.5, 32), ("big", burn, 1.5, 32))
        await fw.until("small", {"TASK_RUNNING"})
        await fw.until("big", {"TASK_RUNNING"})
        entries = http_json(f"{agent_url(cluster)}/monitor/statistics")
        assert sorted(e["executor_id"] for e in entries) == ["big", "small"]
        for entry in entries:
            assert entry["framework_id"] == fw.sched.framework_id
            assert entry["source"] == entry["executor_id"]
            assert entry["executor_name"].startswith("Command Executor")
            stats = entry["statistics"]
            limit = {"small": 0.6, "big": 1.6}[entry["executor_id"]]
            assert stats["cpus_limit"] == pytest.approx(limit)
            assert stats["mem_limit_bytes"] == 64 * 1024 * 1024
            assert stats["timestamp"] > 0
        await eventually(lambda: min(cpu_seconds(cluster).values()) > 0.5, "both to be busy")
        before = cpu_seconds(cluster)
        await asyncio.sleep(5)
        after = cpu_seconds(cluster)
        small = after["small"] - before["small"]
        big = after["big"] - before["big"]
        assert small > 0, (before, after)
        assert 2.0 <= big / small <= 4.5, f"big {big:.2f}s, small {small:.2f}s"
        await fw.kill("small")
        await fw.kill("big")
        await fw.until("small", {"TASK_KILLED"})
        await fw.until("big", {"TASK_KILLED"})


# --------------------------------------------------------------------------- pids


async def test_a_fork_bomb_stays_bounded_and_is_killed_cleanly(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem,cgroups/pids", "--cgroups_pids_max=64")
    async with Framework(cluster) as fw:
        await fw.launch(("bomb", f"{sys.executable} -c '{FORK_BOMB}'", 0.5, 256))
        await fw.until("bomb", {"TASK_RUNNING"})
        (cid,) = containers(cgroups_root)
        cg = open_cgroups(cgroups_root)
        pids_dir = cg.path("pids", cid)
        assert (pids_dir / "pids.max").read_text().strip() == "64"

        def refused() -> bool:
            events = (pids_dir / "pids.events").read_text()
            return "max 0" not in events

        await eventually(refused, "a fork refused at pids.max")
        assert int((pids_dir / "pids.current").read_text()) <= 64
        members = cg.pids(cid)
        assert 1 < len(members) <= 64
        await fw.kill("bomb")
        # The executor may itself be starved of threads by the bomb; either way the
        # task ends and everything in the container dies.
        await fw.until("bomb", {"TASK_KILLED", "TASK_FAILED"})
        await eventually(lambda: cid not in containers(cgroups_root), "the container to go")
        assert [p for p in members if alive(p)] == []


# --------------------------------------------------------------------------- namespaces


async def test_a_task_in_a_pid_namespace_sees_only_its_own_processes(
    start: Callable[..., Cluster],
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem,namespaces/pid")
    async with Framework(cluster) as fw:
        await fw.launch(("ns", f"{sys.executable} -c \"{LIST_PIDS}\"", 0.1, 64))
        await fw.until("ns", {"TASK_FINISHED"})
        sandbox = Path(executor_of(cluster, "ns")["directory"])
        line = (sandbox / "pids.txt").read_text().strip()
        own, seen = line.split(" ", 1)
        pids = [int(p) for p in seen.strip("[]").split(",")]
        host = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        # The executor is pid 1 of the namespace; the task and its shell come after.
        assert 1 in pids and int(own) in pids, line
        assert len(pids) <= 8 < len(host), (pids, len(host))


# --------------------------------------------------------------------------- recovery


async def test_the_agent_destroys_orphan_containers_on_start(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    """A container under the agent's root that no checkpoint names (left by an agent
    that died without checkpointing it) is destroyed when the agent starts."""
    cg = open_cgroups(cgroups_root)
    cg.create("orphan", "freezer")
    procs = cg.path("freezer", "orphan") / "cgroup.procs"
    orphan = subprocess.Popen(
        ["sleep", "300"], start_new_session=True,
        preexec_fn=lambda: procs.write_text(str(os.getpid())))
    try:
        assert cg.pids("orphan") == {orphan.pid}
        start("cgroups/cpu,cgroups/mem")
        await eventually(lambda: orphan.poll() is not None, "the orphan to be killed")
        assert orphan.returncode == -9
        assert "orphan" not in cg.containers()
    finally:
        if orphan.poll() is None:
            orphan.kill()
        orphan.wait()


async def test_a_restarted_agent_takes_its_containers_back(
    start: Callable[..., Cluster], cgroups_root: str,
) -> None:
    """SIGKILL the agent under a checkpointing framework's task: the restarted agent
    hands the container back to the containerizer (not an orphan: it keeps running
    in its cgroups), and a later kill still destroys all of it."""
    cluster = start("cgroups/cpu,cgroups/mem", "--executor_reregistration_timeout=1secs")
    info = {**FW, "name": "isolation-recovery", "checkpoint": True}
    async with Framework(cluster, info) as fw:
        await fw.launch(("t", "sleep 300", 0.1, 32))
        await fw.until("t", {"TASK_RUNNING"})
        (cid,) = containers(cgroups_root)
        cg = open_cgroups(cgroups_root)
        members = cg.pids(cid)
        assert len(members) >= 2  # the executor and its task
        cluster.agents[0].kill()  # SIGKILL: the executor lives on in its cgroup
        agent = cluster.restart_agent(0)
        await eventually(lambda: "re-subscribed" in agent.log(), "the executor to re-subscribe")
        assert containers(cgroups_root) == {cid} and cg.pids(cid) == members
        await fw.kill("t")
        await fw.until("t", {"TASK_KILLED"})
        await eventually(lambda: cid not in containers(cgroups_root), "the container to go")
        assert [p for p in members if alive(p)] == []


# --------------------------------------------------------------------------- disk and ports


def _listen(port: int) -> str:
    return (f"{sys.executable} -c \"import socket, time; s = socket.socket(); "
            f"s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(600)\"")


async def _launch_with(fw: Framework, task_id: str, command: str,
                       extra: list[dict[str, Any]]) -> None:
    offer = (await fw.sched.next_event("OFFERS", timeout=WAIT))["offers"]["offers"][0]
    info = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.2}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}}, *extra]}
    code, body = await fw.sched.call({
        "type": "ACCEPT", "framework_id": fw.sched.fw(), "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [info]}}]}})
    assert code == 202, body


async def test_a_task_writing_past_its_disk_fails_with_the_disk_limitation(
    start: Callable[..., Cluster],
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem,disk/du", "--enforce_container_disk_quota",
                    "--container_disk_watch_interval=200ms")
    async with Framework(cluster) as fw:
        disk = {"name": "disk", "type": "SCALAR", "scalar": {"value": 4}}
        await _launch_with(fw, "filler", "dd if=/dev/zero of=blob bs=1M count=8; sleep 600",
                           [disk])
        failed = await fw.until("filler", {"TASK_FAILED"})
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION_DISK", failed
        assert failed["source"] == "SOURCE_AGENT", failed


async def test_a_task_listening_on_a_port_it_was_not_given_is_killed(
    start: Callable[..., Cluster],
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem,network/ports", "--enforce_container_ports",
                    "--container_ports_watch_interval=200ms",
                    resources="cpus:2;mem:1024;disk:1024;ports:[31000-31010]")
    def ports(begin: int, end: int) -> dict[str, Any]:
        return {"name": "ports", "type": "RANGES",
                "ranges": {"range": [{"begin": begin, "end": end}]}}

    async with Framework(cluster) as fw:
        await _launch_with(fw, "polite", _listen(31001), [ports(31001, 31001)])
        await fw.until("polite", {"TASK_RUNNING"})
        await _launch_with(fw, "squatter", _listen(31005), [ports(31002, 31002)])
        failed = await fw.until("squatter", {"TASK_FAILED"})
        assert failed["reason"] == "REASON_CONTAINER_LIMITATION", failed
        assert "31005" in failed.get("message", ""), failed
        # The task on the port it was given was scanned as often and is left alone.
        assert fw.state("polite") == "TASK_RUNNING", fw.statuses.get("polite")


async def test_the_containers_endpoint_lists_running_containers_with_usage(
    start: Callable[..., Cluster],
) -> None:
    cluster = start("cgroups/cpu,cgroups/mem")
    async with Framework(cluster) as fw:
        await fw.launch(("sleeper", "sleep 600", 0.2, 64))
        await fw.until("sleeper", {"TASK_RUNNING"})
        (entry,) = http_json(f"{agent_url(cluster)}/containers")
        executor = executor_of(cluster, "sleeper")
        assert entry["executor_id"] == "sleeper"
        assert entry["container_id"] == executor["container"]
        assert entry["status"]["container_id"] == {"value": executor["container"]}
        assert isinstance(entry["status"]["executor_pid"], int)
        assert entry["statistics"]["mem_limit_bytes"] >= 64 * 1024 * 1024
        assert entry["statistics"]["timestamp"] > 0
