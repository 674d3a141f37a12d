"""Session-wide test settings and fixtures.

Test agents share this host (and other people's test runs). An agent with the linux
launcher destroys, on start, every container under its ``--cgroups_root`` that it
did not checkpoint (Mesos' orphan cleanup), so agents sharing the default root
would kill each other's executors. Agents started by tests therefore default to
the posix launcher (through ``MESOS_LAUNCHER``, which a command-line flag
overrides); tests of cgroups isolation pass ``--launcher=linux`` and a
``--cgroups_root`` of their own (tests/integration/test_agent_isolation.py).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from mesos.testing.zk import ZooKeeperNotInstalled, ZooKeeperServer

os.environ.setdefault("MESOS_LAUNCHER", "posix")


@pytest.fixture(scope="session")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    """One real ZooKeeper for the whole run (a JVM start each time is slow); tests
    that stop or cut ZooKeeper start one of their own. Missing ZooKeeper fails, saying
    how to install it."""
    try:
        server = ZooKeeperServer(tmp_path_factory.mktemp("zookeeper"))
        server.start()
    except ZooKeeperNotInstalled as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk_url(zk_server: ZooKeeperServer) -> str:
    """A fresh group per test, so no test sees another's masters."""
    return zk_server.url(f"/mesos-{uuid.uuid4().hex[:8]}")
