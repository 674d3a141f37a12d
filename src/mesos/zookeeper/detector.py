"""Finding the leading master through ZooKeeper, for agents, schedulers and masters.

The detector watches the group's children, reads the lowest member's znode and
reports its MasterInfo (None while nobody leads). Like Mesos' detector it keeps the
last leader while its own connection is merely suspended (the leader may well be
fine; only it has to stop on doubt), and forgets it when its session expires.

``await detector.detect(previous)`` returns as soon as the leader differs from
``previous``: the loop a follower runs is ``leader = await detector.detect(leader)``.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import socket
from collections.abc import Callable

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from mesos.errors import ValidationError
from mesos.v1 import codec
from mesos.v1.mesos import Address, MasterInfo
from mesos.zookeeper.group import DEFAULT_SESSION_TIMEOUT, GroupWatcher, Member, members
from mesos.zookeeper.url import ZkUrl

log = logging.getLogger("mesos.zookeeper")


class MasterDetector(GroupWatcher):
    def __init__(
        self,
        url: ZkUrl,
        *,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        client: KazooClient | None = None,
        on_change: Callable[[MasterInfo | None], None] | None = None,
    ) -> None:
        super().__init__(url, session_timeout=session_timeout, client=client)
        self.on_change = on_change
        self._leader: MasterInfo | None = None
        self._loop_leader: MasterInfo | None = None
        self._changed = asyncio.Event()

    @property
    def leader(self) -> MasterInfo | None:
        """The leading master as last read from ZooKeeper, or None."""
        return self._leader

    async def detect(self, previous: MasterInfo | None = None) -> MasterInfo | None:
        """The leader, once it differs from ``previous`` (at once if it already does)."""
        while self._loop_leader == previous:
            changed = self._changed
            await changed.wait()
        return self._loop_leader

    # ------------------------------------------------------------------ kazoo threads

    def _refresh(self) -> None:
        try:
            children = self.client.get_children(self.url.path, watch=self._on_watch)
        except NoNodeError:
            # No master has joined yet: wait for the group znode to appear.
            if self.client.exists(self.url.path, watch=self._on_watch) is None:
                self._set(None)
            else:
                self._spawn_refresh()
            return
        for member in members(children):
            try:
                data, _ = self.client.get(posixpath.join(self.url.path, member.name))
            except NoNodeError:
                continue  # it just left; the children watch brings the next refresh
            self._set(_decode(member, data))
            return
        self._set(None)

    def _on_lost(self) -> None:
        self._set_locked(None)

    def _leave(self) -> None:
        with self._lock:
            self._set_locked(None)

    def _set(self, leader: MasterInfo | None) -> None:
        with self._lock:
            if self._active and self._connected:
                self._set_locked(leader)

    def _set_locked(self, leader: MasterInfo | None) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        log.info("Leading master: %s", leader.pid if leader is not None else "none")
        self._post(self._apply, leader)

    # ------------------------------------------------------------------ loop

    def _apply(self, leader: MasterInfo | None) -> None:
        self._loop_leader = leader
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_change is not None:
            self.on_change(leader)


def _decode(member: Member, data: bytes) -> MasterInfo | None:
    """A member's MasterInfo by label: JSON (current), bare UPID (very old masters)."""
    if member.label == "json.info":
        try:
            return codec.decode(data, MasterInfo)
        except ValidationError as exc:
            log.warning("Ignoring leader %s: bad MasterInfo JSON (%s)", member.name, exc)
            return None
    if member.label == "":
        return _from_upid(data.decode("utf-8", "replace").strip())
    log.warning("Ignoring leader %s: the '%s' (protobuf) format is not supported",
                member.name, member.label)
    return None


def _from_upid(pid: str) -> MasterInfo | None:
    """``master@10.0.0.1:5050`` -> a MasterInfo with just the address filled in."""
    _, _, address = pid.rpartition("@")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        log.warning("Ignoring leader with unreadable UPID '%s'", pid)
        return None
    try:
        ip = int.from_bytes(socket.inet_aton(host), "little")
    except OSError:
        ip = 0
    return MasterInfo(id="", ip=ip, port=int(port), pid=pid,
                      address=Address(ip=host, port=int(port)))
