"""ZooKeeper for HA against a real server: storage contract, election, detection.

The server is Debian's ``zookeeper`` package run standalone on a free loopback port
(:mod:`mesos.testing.zk`). Without it these tests fail, saying how to install it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from mesos.state import Storage, VersionConflict
from mesos.state.zookeeper import FencedError, ZooKeeperStorage
from mesos.testing import zk as zk_testing
from mesos.testing.cluster import wait_for
from mesos.testing.zk import ZooKeeperNotInstalled, ZooKeeperServer
from mesos.v1.mesos import MasterInfo
from mesos.zookeeper import MasterContender, MasterDetector, ZkUrl, parse_zk_url
from tests.unit import test_state_storage as contract

pytestmark = pytest.mark.slow

SESSION_TIMEOUT = 2.0  # seconds; the server allows down to 2 ticks (0.5 s)
WAIT = 30.0  # generous bound for anything that should happen in about a second


@pytest.fixture
def own_zk_server(tmp_path: Path) -> Iterator[ZooKeeperServer]:
    """A server this test alone may stop and restart."""
    try:
        server = ZooKeeperServer(tmp_path / "zookeeper")
        server.start()
    except ZooKeeperNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def group_url(zk_server: ZooKeeperServer) -> ZkUrl:
    """A fresh group path per test so tests never see each other's masters."""
    return parse_zk_url(zk_server.url(f"/mesos-{uuid.uuid4().hex[:8]}"))


def master_info(n: int) -> dict[str, Any]:
    port = 5050 + n
    return {
        "id": f"master-{n}", "ip": 16777343, "port": port, "pid": f"master@127.0.0.1:{port}",
        "hostname": f"m{n}", "version": "1.11.0",
        "address": {"hostname": f"m{n}", "ip": "127.0.0.1", "port": port},
        "capabilities": [{"type": "AGENT_UPDATE"}],
    }


def expire_session(hosts: str, client: KazooClient) -> None:
    """Make the server expire ``client``'s session, as it does for a silent client.

    A second connection that takes over the session and closes it ends it on the
    server; the first client then learns on reconnecting that it has expired.
    """
    session_id, password = client.client_id
    other = KazooClient(hosts=hosts, client_id=(session_id, password))
    other.start(timeout=WAIT)
    other.stop()
    other.close()


def test_a_missing_zookeeper_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(zk_testing, "ZOOKEEPER_JARS", str(tmp_path / "zookeeper.jar"))
    with pytest.raises(ZooKeeperNotInstalled, match=r"run scripts/install-zookeeper\.sh"):
        ZooKeeperServer(tmp_path).start()


# ---------------------------------------------------------------------- storage contract


@pytest.fixture
def storage(zk_server: ZooKeeperServer) -> Iterator[Storage]:
    store = ZooKeeperStorage(zk_server.url("/mesos"), root=f"/state-{uuid.uuid4().hex[:8]}")
    yield store
    store.close()


# Every backend-independent check of tests/unit/test_state_storage.py (those that take
# just a ``storage``) runs here against ZooKeeper too.
for _name, _test in inspect.getmembers(contract, inspect.isfunction):
    if _name.startswith("test_") and list(inspect.signature(_test).parameters) == ["storage"]:
        globals()[f"{_name}_zookeeper"] = _test


def test_the_contract_tests_were_picked_up() -> None:
    assert "test_a_stale_version_is_refused_and_changes_nothing_zookeeper" in globals()


def test_keys_with_slashes_dots_and_unicode_are_distinct(storage: ZooKeeperStorage) -> None:
    keys = ["", ".", "..", "a/b", "a%2Fb", "registry/agents/ü", "k"]
    for key in keys:
        storage.put(key, key.encode(), 0)
    assert storage.list() == sorted(keys)
    for key in keys:
        assert storage.get(key) == (key.encode(), 1)


def test_a_deposed_writer_cannot_overwrite_its_successor(zk_server: ZooKeeperServer) -> None:
    root = f"/state-{uuid.uuid4().hex[:8]}"
    old = ZooKeeperStorage(zk_server.url(), root=root)
    new = ZooKeeperStorage(zk_server.url(), root=root)
    try:
        old.put("registry", b"v1", 0)
        seen = new.get("registry")
        assert seen == (b"v1", 1)
        assert new.put("registry", b"successor", seen.version) == 2
        with pytest.raises(VersionConflict, match="expected version 1, found 2"):
            old.put("registry", b"stale leader", 1)
        with pytest.raises(VersionConflict):
            old.delete("registry", expected_version=1)
        assert old.get("registry") == (b"successor", 2)
    finally:
        old.close()
        new.close()


# ---------------------------------------------------------------------- large values


def chunk_sets(store: ZooKeeperStorage) -> list[str]:
    return list(store.client.get_children(f"{store.root}/chunks"))


def test_large_values_are_split_and_old_chunks_removed(storage: ZooKeeperStorage) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # six chunks, each under ZooKeeper's 1 MB
    assert storage.put("registry", big, 0) == 1
    sets = chunk_sets(storage)
    assert len(sets) == 1
    assert len(storage.client.get_children(f"{storage.root}/chunks/{sets[0]}")) == 7
    assert storage.get("registry") == (big, 1)

    bigger = os.urandom(2 * 1024 * 1024)
    assert storage.put("registry", bigger, 1) == 2
    assert storage.get("registry") == (bigger, 2)
    assert len(chunk_sets(storage)) == 1 and chunk_sets(storage) != sets

    # A refused write leaves neither its chunks nor any change behind.
    with pytest.raises(VersionConflict):
        storage.put("registry", big, 1)
    assert len(chunk_sets(storage)) == 1
    assert storage.get("registry") == (bigger, 2)

    assert storage.put("registry", b"small again", 2) == 3
    assert chunk_sets(storage) == []
    storage.put("other", big, 0)
    assert storage.delete("other", expected_version=1)
    assert chunk_sets(storage) == []
    assert storage.get("other") is None


def test_readers_never_see_a_torn_large_value(storage: ZooKeeperStorage) -> None:
    """A reader racing a writer that keeps replacing a chunked value sees whole values."""
    values = [bytes([i]) * (1024 * 1024 + 100 * i) for i in range(1, 5)]
    storage.put("registry", values[0], 0)
    stop = threading.Event()
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def read() -> None:
        while not stop.is_set() and len(seen) < 200:
            try:
                entry = storage.get("registry")
            except BaseException as exc:
                errors.append(exc)
                return
            assert entry is not None
            seen.append(entry.value)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        version = 1
        for i in range(12):
            version = storage.put("registry", values[(i + 1) % len(values)], version)
    finally:
        stop.set()
        reader.join(WAIT)
    assert not errors, errors
    assert seen, "the reader read nothing"
    assert all(value in values for value in seen)


def test_garbage_from_a_writer_that_died_midway_is_collected(storage: ZooKeeperStorage) -> None:
    big = os.urandom(2 * 1024 * 1024)
    storage.put("registry", big, 0)
    # What a writer that crashed after writing its chunks leaves behind.
    storage.client.create(f"{storage.root}/chunks/deadbeef/0000000000", b"x", makepath=True)
    assert len(chunk_sets(storage)) == 2
    assert storage.collect_garbage(min_age=3600) == 0  # too young: might be in flight
    assert storage.collect_garbage(min_age=0) == 1
    assert len(chunk_sets(storage)) == 1
    assert storage.get("registry") == (big, 1)


# ---------------------------------------------------------------------- election


async def start_contenders(url: ZkUrl, count: int) -> list[MasterContender]:
    contenders = []
    for n in range(count):
        contender = MasterContender(url, master_info(n), session_timeout=SESSION_TIMEOUT)
        await contender.start()
        contenders.append(contender)
    return contenders


@pytest.fixture
async def three(group_url: ZkUrl) -> AsyncIterator[list[MasterContender]]:
    contenders = await start_contenders(group_url, 3)
    try:
        yield contenders
    finally:
        for contender in contenders:
            await contender.stop()


async def test_the_lowest_sequence_leads_and_the_znode_holds_mesos_json(
    three: list[MasterContender], group_url: ZkUrl
) -> None:
    first, second, third = three
    await asyncio.wait_for(first.wait_leading(), WAIT)
    assert (first.leading, second.leading, third.leading) == (True, False, False)
    nodes = [c.node for c in three]
    assert all(n is not None and n.startswith(f"{group_url.path}/json.info_") for n in nodes)
    assert nodes == sorted(str(n) for n in nodes)
    assert first.node is not None
    data, stat = first.client.get(first.node)
    assert stat.ephemeralOwner == first.client.client_id[0]
    assert data == (
        b'{"id":"master-0","ip":16777343,"port":5050,"pid":"master@127.0.0.1:5050",'
        b'"hostname":"m0","version":"1.11.0",'
        b'"address":{"hostname":"m0","ip":"127.0.0.1","port":5050},'
        b'"capabilities":[{"type":"AGENT_UPDATE"}]}'
    )


async def test_an_expired_leader_steps_down_the_next_leads_and_it_rejoins_last(
    three: list[MasterContender], group_url: ZkUrl, zk_server: ZooKeeperServer
) -> None:
    first, second, third = three
    await asyncio.wait_for(first.wait_leading(), WAIT)
    detector = MasterDetector(group_url, session_timeout=SESSION_TIMEOUT)
    await detector.start()
    try:
        leader = await asyncio.wait_for(detector.detect(None), WAIT)
        assert leader is not None and leader.id == "master-0"
        old_node = first.node
        changes: list[bool] = []
        first.on_change = changes.append

        await asyncio.to_thread(expire_session, zk_server.hosts, first.client)

        await asyncio.wait_for(second.wait_leading(), WAIT)
        leader = await asyncio.wait_for(detector.detect(leader), WAIT)
        assert leader is not None and leader.id == "master-1"
        assert not third.leading
        # The old leader noticed, stepped down, and joined again behind the others.
        await asyncio.wait_for(first.wait_leading(False), WAIT)
        assert changes[0] is False
        await asyncio.to_thread(
            wait_for, lambda: first.node not in (None, old_node), WAIT, "the rejoin")
        assert str(first.node) > str(third.node)
        assert not first.leading

        # A graceful stop hands over at once (no session timeout to wait out).
        await second.stop()
        await asyncio.wait_for(third.wait_leading(), WAIT)
        leader = await asyncio.wait_for(detector.detect(leader), WAIT)
        assert leader is not None and leader.id == "master-2"
    finally:
        await detector.stop()


_CHILD = """
import asyncio, sys
from mesos.zookeeper import MasterContender, parse_zk_url
async def main():
    c = MasterContender(parse_zk_url(sys.argv[1]), {"id": "child", "ip": 0, "port": 6000,
                        "pid": "master@127.0.0.1:6000"}, session_timeout=float(sys.argv[2]))
    await c.start()
    await c.wait_leading()
    print("LEADING", flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_a_killed_leader_is_replaced_after_its_session_times_out(group_url: ZkUrl) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(group_url), str(SESSION_TIMEOUT)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    contender = MasterContender(group_url, master_info(1), session_timeout=SESSION_TIMEOUT)
    detector = MasterDetector(group_url, session_timeout=SESSION_TIMEOUT)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), WAIT)
        assert line.strip() == b"LEADING", line
        await contender.start()
        await detector.start()
        leader = await asyncio.wait_for(detector.detect(None), WAIT)
        assert leader is not None and leader.id == "child"
        assert not contender.leading

        os.kill(child.pid, signal.SIGKILL)
        child.wait()

        await asyncio.wait_for(contender.wait_leading(), WAIT)
        leader = await asyncio.wait_for(detector.detect(leader), WAIT)
        assert leader is not None and leader.id == "master-1"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        await detector.stop()
        await contender.stop()


async def test_a_leader_cut_off_from_zookeeper_stops_leading_at_once(
    own_zk_server: ZooKeeperServer,
) -> None:
    """No waiting for the session to expire: the first sign of trouble ends leadership."""
    url = parse_zk_url(own_zk_server.url("/mesos"))
    # A long session, so the step-down below cannot be the session expiring.
    contender = MasterContender(url, master_info(0), session_timeout=30.0)
    detector = MasterDetector(url, session_timeout=30.0)
    await contender.start()
    await detector.start()
    try:
        await asyncio.wait_for(contender.wait_leading(), WAIT)
        leader = await asyncio.wait_for(detector.detect(None), WAIT)
        node = contender.node

        own_zk_server.kill()
        await asyncio.wait_for(contender.wait_leading(False), WAIT)
        assert contender.reason == "connection suspended"
        # Followers keep the last leader they knew while they cannot ask.
        assert detector.leader == leader

        # Back within the session: same znode, nobody else could have won, leading again.
        own_zk_server.start()
        await asyncio.wait_for(contender.wait_leading(), WAIT)
        assert contender.node == node
    finally:
        await detector.stop()
        await contender.stop()


async def test_a_detector_started_before_any_master_waits_for_one(group_url: ZkUrl) -> None:
    detector = MasterDetector(group_url, session_timeout=SESSION_TIMEOUT)
    await detector.start()
    contender = MasterContender(group_url, master_info(4), session_timeout=SESSION_TIMEOUT)
    try:
        assert detector.leader is None
        await contender.start()
        leader = await asyncio.wait_for(detector.detect(None), WAIT)
        assert isinstance(leader, MasterInfo)
        assert (leader.pid, leader.address and leader.address.port) == (
            "master@127.0.0.1:5054", 5054)
        await contender.stop()
        assert await asyncio.wait_for(detector.detect(leader), WAIT) is None
    finally:
        await contender.stop()
        await detector.stop()


async def test_writes_are_fenced_by_the_writers_election_znode(
    group_url: ZkUrl, zk_server: ZooKeeperServer
) -> None:
    contender, successor = await start_contenders(group_url, 2)
    store = ZooKeeperStorage(group_url, client=contender.client, fence=contender.fence)
    try:
        await asyncio.wait_for(contender.wait_leading(), WAIT)
        assert await asyncio.to_thread(store.put, "registry", b"mine", 0) == 1
        # A writer that still believes it leads (it has not heard of the expiry yet)
        # is stopped by ZooKeeper itself: its election znode went with its session.
        believed = contender.node
        store.fence = lambda: believed
        await asyncio.to_thread(expire_session, zk_server.hosts, contender.client)
        await asyncio.wait_for(contender.wait_leading(False), WAIT)
        await asyncio.to_thread(wait_for, lambda: contender.node not in (None, believed), WAIT,
                                "the rejoin")
        with pytest.raises(FencedError, match="is gone"):
            await asyncio.to_thread(store.put, "registry", b"stale", 1)
        # Once it knows, it does not even try: it has rejoined behind its successor.
        await asyncio.wait_for(successor.wait_leading(), WAIT)
        store.fence = contender.fence
        with pytest.raises(FencedError, match="does not lead"):
            await asyncio.to_thread(store.put, "registry", b"stale", 1)
        assert (await asyncio.to_thread(store.get, "registry")) == (b"mine", 1)
    finally:
        store.close()
        await contender.stop()
        await successor.stop()
