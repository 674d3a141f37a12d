"""A master contending for leadership in ZooKeeper, as Mesos' masters do.

The contender creates an EPHEMERAL|SEQUENTIAL ``<path>/json.info_`` znode holding
its MasterInfo as compact JSON and leads while that znode has the smallest sequence
in the group. Leading needs a live session, so the contender says "not leading" the
moment the connection is suspended (before ZooKeeper has decided anything: a leader
cut off from ZooKeeper must stop acting at once, because a successor may be elected
when its session times out). If the connection comes back within the session the
znode is still there and nobody else can have been elected, so leadership resumes;
if the session expired the znode is gone and the contender joins again with a new
one, at the back of the line.

:attr:`leading` is exact at all times (it is set on kazoo's threads); the
``on_change`` callback and :meth:`wait_leading` run on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Callable, Mapping
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError

from mesos.v1 import codec
from mesos.v1.mesos import MasterInfo
from mesos.zookeeper.group import DEFAULT_SESSION_TIMEOUT, GroupWatcher, parse_member
from mesos.zookeeper.url import ZkUrl

log = logging.getLogger("mesos.zookeeper")

LABEL = "json.info"


class MasterContender(GroupWatcher):
    def __init__(
        self,
        url: ZkUrl,
        info: MasterInfo | Mapping[str, Any],
        *,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        client: KazooClient | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(url, session_timeout=session_timeout, client=client)
        self.info = info if isinstance(info, MasterInfo) else codec.decode_obj(dict(info), MasterInfo)
        self.on_change = on_change
        self._node: str | None = None  # full path of our znode while the session lives
        self._maybe_orphan = False  # a create failed midway: a znode of ours may exist
        self._leading = False
        self._reason = "not started"
        # The loop's view, updated in order by posted callbacks.
        self._loop_leading = False
        self._changed = asyncio.Event()

    @property
    def leading(self) -> bool:
        """Whether this master leads right now (False as soon as the session is in doubt)."""
        return self._leading

    @property
    def reason(self) -> str:
        """Why :attr:`leading` last changed: 'elected', 'connection suspended', ..."""
        return self._reason

    @property
    def node(self) -> str | None:
        """The full path of this master's znode, while it has one."""
        return self._node

    def fence(self) -> str | None:
        """The znode a leader's storage writes are conditional on; None when not leading.

        Pass as ``ZooKeeperStorage(fence=contender.fence)``: ZooKeeper then refuses
        the writes of a master whose session has ended, even one not yet told so.
        """
        with self._lock:
            return self._node if self._leading else None

    async def wait_leading(self, leading: bool = True) -> None:
        """Return once the loop has seen :attr:`leading` equal to ``leading``."""
        while self._loop_leading != leading:
            changed = self._changed
            await changed.wait()

    # ------------------------------------------------------------------ kazoo threads

    def _refresh(self) -> None:
        if self._node is None:
            self._join()
        children = self.client.get_children(self.url.path, watch=self._on_watch)
        self._evaluate(children)

    def _join(self) -> None:
        if self._maybe_orphan:
            self._delete_orphans()
        prefix = posixpath.join(self.url.path, LABEL + "_")
        self._maybe_orphan = True
        try:
            path = self.client.create(
                prefix, codec.encode(self.info), ephemeral=True, sequence=True, makepath=True)
        except (ConnectionLoss, OperationTimeoutError):
            raise  # the create may have happened: _maybe_orphan stays set
        except BaseException:
            self._maybe_orphan = False
            raise
        self._maybe_orphan = False
        with self._lock:
            self._node = path
        log.info("Joined the masters' group as %s", path)

    def _delete_orphans(self) -> None:
        """Remove znodes our session created whose create call never returned."""
        session_id = self.client.client_id[0] if self.client.client_id else None
        for child in self.client.get_children(self.url.path):
            member = parse_member(child)
            if member is None or member.label != LABEL:
                continue
            path = posixpath.join(self.url.path, child)
            stat = self.client.exists(path)
            if stat is not None and stat.ephemeralOwner == session_id and path != self._node:
                log.warning("Deleting %s, left by an interrupted create", path)
                try:
                    self.client.delete(path)
                except NoNodeError:
                    pass
        self._maybe_orphan = False

    def _evaluate(self, children: list[str]) -> None:
        ranked = sorted(m for m in map(parse_member, children) if m is not None)
        with self._lock:
            node = self._node
            if node is None:
                return
            name = posixpath.basename(node)
            if name not in children:
                # Deleted behind our back while the session lives: join again.
                self._node = None
                self._set(False, "znode deleted")
                rejoin = True
            else:
                rejoin = False
                if self._connected and ranked and ranked[0].name == name:
                    self._set(True, "elected")
                else:
                    self._set(False, "another master leads")
        if rejoin:
            self._spawn_refresh()

    def _on_suspended(self) -> None:
        self._set(False, "connection suspended")

    def _on_lost(self) -> None:
        # The server deleted our ephemeral znode with the session.
        self._node = None
        self._maybe_orphan = False
        self._set(False, "session expired")

    def _leave(self) -> None:
        with self._lock:
            node, self._node = self._node, None
            self._set(False, "stopped")
        if node is not None and self.client.connected:
            try:
                self.client.delete(node)
            except (NoNodeError, ConnectionLoss):
                pass

    def _set(self, leading: bool, reason: str) -> None:
        """Record a change; caller holds ``_lock`` so posts keep their order."""
        if leading == self._leading:
            return
        self._leading = leading
        self._reason = reason
        log.info("Leadership %s: %s", "gained" if leading else "lost", reason)
        self._post(self._apply, leading)

    # ------------------------------------------------------------------ loop

    def _apply(self, leading: bool) -> None:
        self._loop_leading = leading
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        if self.on_change is not None:
            self.on_change(leading)
