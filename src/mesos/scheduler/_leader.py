"""Where the scheduler driver finds its master: one address, or the leader in ZooKeeper.

``--master`` takes ``host[:port]``, ``zk://host1:port1,.../path`` (the masters'
election group) or ``file:///path`` holding either, as Mesos' scheduler library
does. With ZooKeeper the driver follows the leader a :class:`MasterDetector` reports:
:class:`LeaderFollower` turns each reported ``MasterInfo`` into the ``host:port``
to talk to and tells the driver when it changes, so a stream to a deposed (or dead)
leader is dropped at once instead of waiting for missed heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError

from mesos.v1.mesos import MasterInfo
from mesos.zookeeper import DEFAULT_SESSION_TIMEOUT, MasterDetector, ZkUrl, parse_master

log = logging.getLogger("mesos.scheduler")

DEFAULT_PORT = 5050

# What starting a ZooKeeper client may raise when the ensemble cannot be reached.
ZOOKEEPER_ERRORS = (KazooException, KazooTimeoutError, OSError)


def join_host_port(host: str, port: int) -> str:
    """``host:port``, bracketing an IPv6 literal."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def parse_address(master: str) -> str:
    """``host[:port]`` (an ``http://`` prefix and a path are tolerated) -> ``host:port``."""
    text = master.strip()
    split = urlsplit(text if "//" in text else "//" + text)
    if split.scheme not in ("", "http") or not split.hostname:
        raise ValueError(f"Expecting a master as 'host:port', got '{master}'")
    try:
        port = split.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"Bad port in master '{master}'") from None
    return join_host_port(split.hostname, port)


def parse_master_spec(master: str) -> str | ZkUrl:
    """A driver's ``master``: ``host:port`` for one master, or the ZooKeeper group.

    ``file://`` is read here (once, at start), and may hold either form.
    """
    text = master.strip()
    if text.startswith("zoo://"):
        raise ValueError(f"Expecting 'zk://' for a ZooKeeper master URL, got '{master}'")
    if not text.startswith(("zk://", "file://")):
        return parse_address(text)
    parsed = parse_master(text)
    if isinstance(parsed, ZkUrl):
        return parsed
    return join_host_port(*parsed)


def master_address(info: MasterInfo) -> str | None:
    """Where a leader's HTTP API is: ``address`` if set, else its UPID, else ``ip:port``."""
    if info.address is not None and info.address.port:
        host = info.address.ip or info.address.hostname
        if host:
            return join_host_port(host, info.address.port)
    if info.pid:
        _, _, hostport = info.pid.rpartition("@")
        host, sep, port = hostport.rpartition(":")
        if sep and host and port.isdigit():
            return join_host_port(host, int(port))
    if info.ip and info.port:
        return join_host_port(socket.inet_ntoa(info.ip.to_bytes(4, "little")), info.port)
    if info.hostname and info.port:
        return join_host_port(info.hostname, info.port)
    return None


class LeaderFollower:
    """Follows the leading master in ZooKeeper on behalf of a driver.

    ``on_change(address)`` runs on the loop each time the leader's address changes
    (``None``: no leader known). :attr:`changed_at` (loop time) lets the driver keep
    trying while a dead leader's znode waits out its session.
    """

    def __init__(
        self,
        url: ZkUrl,
        *,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        on_change: Callable[[str | None], None] | None = None,
    ) -> None:
        self.url = url
        self.session_timeout = session_timeout
        self.on_change = on_change
        self.leader: MasterInfo | None = None
        self.address: str | None = None
        self.changes = 0
        self.changed_at = 0.0
        self._changed = asyncio.Event()
        self._detector: MasterDetector | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout: float) -> None:
        """Connect to ZooKeeper and read the group; raises one of ``ZOOKEEPER_ERRORS``."""
        self.changed_at = asyncio.get_running_loop().time()
        detector = MasterDetector(self.url, session_timeout=self.session_timeout)
        try:
            await detector.start(timeout)
        except BaseException:
            await asyncio.to_thread(_close_quietly, detector)
            raise
        self._detector = detector
        self._task = asyncio.create_task(self._follow(detector), name="mesos-leader-follower")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        detector, self._detector = self._detector, None
        if detector is not None:
            await detector.stop()

    @property
    def changed(self) -> asyncio.Event:
        """An event set at the next change (a fresh one after each change)."""
        return self._changed

    async def _follow(self, detector: MasterDetector) -> None:
        leader: MasterInfo | None = None
        while True:
            leader = await detector.detect(leader)
            address = master_address(leader) if leader is not None else None
            if leader is not None and address is None:
                log.warning("Ignoring leading master %s: its MasterInfo has no address", leader.id)
            self.leader = leader
            if address == self.address:
                continue
            self.address = address
            self.changes += 1
            self.changed_at = asyncio.get_running_loop().time()
            log.info("Leading master in %s: %s", self.url.redacted(), address or "none")
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()
            if self.on_change is not None:
                self.on_change(address)


def _close_quietly(detector: MasterDetector) -> None:
    """Release the client of a detector that failed to start (kazoo may have
    stopped it already; closing twice or closing a stopped client is harmless)."""
    with contextlib.suppress(*ZOOKEEPER_ERRORS):
        detector.client.stop()
        detector.client.close()
