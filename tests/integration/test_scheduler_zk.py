"""The scheduler driver and mesos-execute find and follow the leader through ZooKeeper.

Real ZooKeeper, real standalone masters. Masters cannot contend with ``--zk`` yet,
so each test registers the masters' MasterInfo in ZooKeeper itself with
:class:`MasterContender` (exactly the znode a master writes) and fakes the leader
switch by ending A's contender and SIGKILLing master A: the driver must re-subscribe
to B with its framework id. B has never heard of the framework, so it takes the
SUBSCRIBE as a new subscription under the given id, which is what B's state shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mesos.scheduler import Scheduler, SchedulerDriver
from mesos.testing.cluster import Cluster, free_port, http_json, wait_for
from mesos.zookeeper import MasterContender, parse_zk_url

pytestmark = pytest.mark.slow

SESSION_TIMEOUT = 2.0  # the ZooKeeper sessions of the fake masters' contenders
WAIT = 60.0  # generous: two cores shared with other test runs
FRAMEWORK = {"name": "zk-follower", "failover_timeout": 3600.0}


def start_master(work_dir: Path, agents: int = 0) -> Cluster:
    cluster = Cluster(work_dir, agents=agents)
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


@pytest.fixture
def masters(tmp_path: Path) -> Iterator[tuple[Cluster, Cluster]]:
    a = start_master(tmp_path / "a")
    try:
        b = start_master(tmp_path / "b")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def master_info(cluster: Cluster) -> dict[str, Any]:
    """The MasterInfo a master with ``--zk`` would write, from its own /master/state."""
    state = cluster.state()
    ip = cluster.master_ip
    return {
        "id": state["id"], "ip": int.from_bytes(socket.inet_aton(ip), "little"),
        "port": cluster.master_port, "pid": state["pid"], "hostname": state["hostname"],
        "version": state["version"],
        "address": {"hostname": state["hostname"], "ip": ip, "port": cluster.master_port},
    }


def framework_ids(cluster: Cluster) -> list[str]:
    return [f["id"] for f in cluster.get("/master/frameworks")["frameworks"]]


class Recorder(Scheduler):
    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.disconnects: list[str] = []

    async def on_subscribed(self, driver: SchedulerDriver, subscribed: dict[str, Any]) -> None:
        self.subscribed.append(str(driver.master))

    async def on_disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        self.disconnects.append(reason)


async def until(predicate: Any, what: str, driver: asyncio.Task[None] | None = None) -> Any:
    """``wait_for`` on a worker thread (predicates may do blocking HTTP); a driver
    task that ends meanwhile fails the wait at once with what ended it."""
    def check() -> Any:
        if driver is not None and driver.done():
            driver.result()
            raise AssertionError(f"the driver stopped while waiting for {what}")
        return predicate()

    return await asyncio.to_thread(wait_for, check, WAIT, what)


@pytest.fixture
async def contenders() -> AsyncIterator[list[MasterContender]]:
    started: list[MasterContender] = []
    try:
        yield started
    finally:
        for contender in started:
            await contender.stop()


async def contend(zk_url: str, cluster: Cluster, into: list[MasterContender]) -> MasterContender:
    contender = MasterContender(parse_zk_url(zk_url), master_info(cluster),
                                session_timeout=SESSION_TIMEOUT)
    into.append(contender)
    await contender.start()
    return contender


async def test_the_driver_waits_for_a_leader_then_follows_it_to_the_next(
    zk_url: str, masters: tuple[Cluster, Cluster], contenders: list[MasterContender],
) -> None:
    a, b = masters
    handler = Recorder()
    driver = SchedulerDriver(zk_url, FRAMEWORK, handler, backoff=0.1, backoff_max=1.0,
                             connect_timeout=5.0, zk_session_timeout=SESSION_TIMEOUT)
    task = driver.start()
    try:
        # Nobody leads yet: the driver waits instead of failing.
        with pytest.raises(TimeoutError):
            await driver.wait_subscribed(1.0)
        assert driver.master is None

        contender_a = await contend(zk_url, a, contenders)
        await asyncio.wait_for(contender_a.wait_leading(), WAIT)
        await contend(zk_url, b, contenders)
        framework_id = await driver.wait_subscribed(WAIT)
        assert driver.master == a.master_url
        assert framework_ids(a) == [framework_id]
        assert framework_ids(b) == []

        # A leaves the group: B leads, and the driver leaves A (still up) for B.
        await contender_a.stop()
        await until(lambda: len(handler.subscribed) == 2, "the re-subscription", task)
        assert handler.subscribed == [a.master_url, b.master_url]
        assert handler.disconnects == [f"leading master changed to {b.master_url}"]
        assert driver.master == b.master_url
        assert driver.framework_id == framework_id
        assert framework_ids(b) == [framework_id]
        # Then A dies (as a deposed Mesos master does): nothing changes for the driver.
        assert a.master is not None
        a.master.kill()
        await driver.revive()  # calls go to the new leader
        assert driver.subscribed and handler.disconnects == [
            f"leading master changed to {b.master_url}"]
    finally:
        await driver.stop()
    await driver.join()  # raises what ended it, if anything did


_CONTENDER = """
import asyncio, json, sys
from mesos.zookeeper import MasterContender, parse_zk_url
async def main():
    c = MasterContender(parse_zk_url(sys.argv[1]), json.loads(sys.argv[2]),
                        session_timeout=float(sys.argv[3]))
    await c.start()
    await c.wait_leading()
    print("LEADING", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_a_killed_leader_is_followed_once_its_session_expires(
    zk_url: str, masters: tuple[Cluster, Cluster], contenders: list[MasterContender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A's znode outlives A by a session timeout; the driver keeps trying until then
    (more attempts than ``max_reconnects`` allows) and then moves to B."""
    a, b = masters
    child = subprocess.Popen(
        [sys.executable, "-c", _CONTENDER, zk_url, json.dumps(master_info(a)),
         str(SESSION_TIMEOUT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    handler = Recorder()
    driver = SchedulerDriver(zk_url, FRAMEWORK, handler, backoff=0.05, backoff_max=0.1,
                             max_reconnects=1, connect_timeout=5.0,
                             zk_session_timeout=SESSION_TIMEOUT)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), WAIT)
        assert line.strip() == b"LEADING", line
        await contend(zk_url, b, contenders)
        task = driver.start()
        framework_id = await driver.wait_subscribed(WAIT)
        assert driver.master == a.master_url

        # The whole of master A dies at once: process and ZooKeeper session.
        with caplog.at_level(logging.WARNING, logger="mesos.scheduler"):
            os.kill(child.pid, signal.SIGKILL)
            assert a.master is not None
            a.master.kill()
            await until(lambda: len(handler.subscribed) == 2, "the re-subscription at B", task)
        assert driver.master == b.master_url
        assert framework_ids(b) == [framework_id]
        # Until A's session expired it kept trying A: more often than max_reconnects
        # alone would have allowed before giving up.
        assert len(handler.disconnects) == 1
        retries = [r for r in caplog.messages if f"cannot subscribe at {a.master_url}" in r]
        assert len(retries) > 2, caplog.messages
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        await driver.stop()
    await driver.join()


async def test_a_redirect_from_a_standby_is_followed_to_the_leader(tmp_path: Path) -> None:
    """Given a non-leading master as host:port, follow its 307 (as Mesos' library does)."""
    hits: list[str] = []
    leader = start_master(tmp_path / "leader")
    try:
        async def redirect(request: web.Request) -> web.Response:
            hits.append(request.path)
            return web.Response(status=307, headers={
                "Location": f"//{leader.master_url}{request.path}"})

        app = web.Application()
        app.router.add_post("/api/v1/scheduler", redirect)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        try:
            handler = Recorder()
            async with SchedulerDriver(f"127.0.0.1:{port}", FRAMEWORK, handler,
                                       backoff=0.1) as driver:
                framework_id = await driver.wait_subscribed(WAIT)
                assert driver.master == leader.master_url
                await driver.suppress()
            assert hits == ["/api/v1/scheduler"]  # only SUBSCRIBE met the standby
            assert handler.subscribed == [leader.master_url]
            frameworks = await asyncio.to_thread(
                http_json, f"http://{leader.master_url}/master/frameworks")
            (framework,) = frameworks["frameworks"]
            assert framework["id"] == framework_id
        finally:
            await runner.cleanup()
    finally:
        leader.stop()


async def test_mesos_execute_finds_the_leader_through_zookeeper(
    zk_url: str, tmp_path: Path, contenders: list[MasterContender],
) -> None:
    """``--master=zk://...`` (and a file:// holding it) run a task on the leader."""
    with Cluster(tmp_path / "cluster", agents=1) as cluster:
        contender = await contend(zk_url, cluster, contenders)
        await asyncio.wait_for(contender.wait_leading(), WAIT)
        url_file = tmp_path / "master-url"
        url_file.write_text(zk_url)
        for master in (zk_url, f"file://{url_file}"):
            out = await asyncio.to_thread(
                subprocess.run,
                [str(Path(sys.executable).parent / "mesos-execute"), f"--master={master}",
                 "--name=zk-hello", "--command=echo hi", "--timeout=45secs"],
                capture_output=True, text=True, timeout=WAIT + 30)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "Received status update TASK_FINISHED for task 'zk-hello'" in out.stdout
            assert out.stderr == "", out.stderr
        frameworks = await asyncio.to_thread(cluster.get, "/master/frameworks")
        assert frameworks["frameworks"] == []  # both torn down at the end
        assert len(frameworks["completed_frameworks"]) == 2


@pytest.mark.parametrize("group", ["empty", "unreachable"])
def test_mesos_execute_without_a_leader_waits_then_fails_in_one_line(
    zk_url: str, group: str,
) -> None:
    """No leader (an empty group, or no ZooKeeper at all): it waits, bounded by
    --timeout, and ends with one line and exit status 1, not a traceback."""
    master = zk_url if group == "empty" else f"zk://127.0.0.1:{free_port()}/mesos"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "mesos-execute"), f"--master={master}",
         "--name=nobody", "--command=true", "--timeout=3secs"],
        capture_output=True, text=True, timeout=WAIT)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines == [
        "mesos-execute: Timed out after 3secs waiting for task 'nobody' (last state: not launched)"
    ], out.stderr
    assert "Subscribed" not in out.stdout
