"""The masters' group in ZooKeeper: client set-up, member names, and the thread bridge.

Members are children of the group znode named ``<label>_<sequence>`` (Mesos writes
``json.info_0000000007``); the member with the smallest sequence leads, whatever its
label. Children whose last ``_`` token is not a 32-bit integer (``log_replicas``) are
not members.

kazoo calls back on its own threads. :class:`GroupWatcher` keeps that contained:
blocking reads of the group run one at a time on kazoo's worker threads, and every
change the rest of the process should see is handed to the asyncio loop with
``call_soon_threadsafe``, in the order it happened.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionLoss, KazooException, SessionExpiredError
from kazoo.retry import KazooRetry
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE

from mesos.zookeeper.url import ZkUrl

log = logging.getLogger("mesos.zookeeper")

DEFAULT_SESSION_TIMEOUT = 10.0  # Mesos' --zk_session_timeout
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True, order=True)
class Member:
    """One child of the group znode that takes part in the election."""

    sequence: int
    label: str
    name: str


def parse_member(name: str) -> Member | None:
    """``json.info_0000000007`` -> Member(7, "json.info", name); None if not a member."""
    label, _, tail = name.rpartition("_")
    if not tail.isdigit() or int(tail) > _INT32_MAX:
        return None
    return Member(int(tail), label, name)


def members(children: Iterable[str]) -> list[Member]:
    """The election members among ``children``, lowest sequence first."""
    return sorted(m for m in map(parse_member, children) if m is not None)


def leader_of(children: Iterable[str]) -> Member | None:
    """The member with the smallest sequence number, or None if there is none."""
    ranked = members(children)
    return ranked[0] if ranked else None


def group_acl(url: ZkUrl) -> list[Any]:
    """Mesos' ACL for created nodes: world:READ plus creator:ALL with credentials."""
    return list(READ_ACL_UNSAFE + CREATOR_ALL_ACL if url.credentials else OPEN_ACL_UNSAFE)


def make_client(url: ZkUrl, session_timeout: float = DEFAULT_SESSION_TIMEOUT) -> KazooClient:
    """A kazoo client for ``url`` (not started) that reconnects forever, quickly.

    kazoo's default connection back-off grows towards an hour; a master or agent
    waiting out a ZooKeeper restart should be back within a second of it.
    """
    retry = KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=1.0)
    auth = [("digest", url.digest)] if url.digest else None
    return KazooClient(
        hosts=url.hosts,
        timeout=session_timeout,
        connection_retry=retry,
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
        auth_data=auth,
        default_acl=group_acl(url),
    )


class GroupWatcher:
    """Shared machinery of the contender and the detector.

    Subclasses implement :meth:`_refresh` (read the group, called with no other
    refresh running) and the state hooks. The client is created from ``url`` unless
    one is given, in which case the caller starts and stops it.
    """

    def __init__(
        self,
        url: ZkUrl,
        *,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        client: KazooClient | None = None,
    ) -> None:
        self.url = url
        self.session_timeout = session_timeout
        self._owns_client = client is None
        self.client: KazooClient = client if client is not None else make_client(
            url, session_timeout)
        self._loop: asyncio.AbstractEventLoop | None = None
        # Guards the small state below; never held across a ZooKeeper call.
        self._lock = threading.Lock()
        # Serialises reads of the group, so their results are applied in order.
        self._refresh_lock = threading.Lock()
        self._active = False
        self._connected = False

    async def start(self, timeout: float = 30.0) -> None:
        """Connect (unless given a started client) and read the group once."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._start_sync, timeout)

    async def stop(self) -> None:
        """Leave the group (subclass hook) and close an owned client."""
        await asyncio.to_thread(self._stop_sync)

    def _start_sync(self, timeout: float) -> None:
        self.client.add_listener(self._on_state)
        try:
            if self._owns_client:
                self.client.start(timeout=timeout)
            elif not self.client.connected:
                raise ConnectionLoss("the shared ZooKeeper client is not connected")
        except BaseException:
            self.client.remove_listener(self._on_state)
            raise
        with self._lock:
            self._active = True
            self._connected = True
        try:
            with self._refresh_lock:
                self._refresh()
        except BaseException:
            self._stop_sync()
            raise

    def _stop_sync(self) -> None:
        with self._lock:
            self._active = False
        self.client.remove_listener(self._on_state)
        with self._refresh_lock:
            self._leave()
        if self._owns_client:
            self.client.stop()
            self.client.close()

    # ------------------------------------------------------------------ kazoo threads

    def _on_state(self, state: str) -> None:
        """kazoo's connection-state listener; runs on its connection thread, must not block."""
        with self._lock:
            if not self._active:
                return
            self._connected = state == KazooState.CONNECTED
            if state == KazooState.SUSPENDED:
                self._on_suspended()
            elif state == KazooState.LOST:
                self._on_lost()
        if state == KazooState.CONNECTED:
            self._spawn_refresh()

    def _on_watch(self, event: Any) -> None:
        """A one-shot watch fired (children changed, node created or deleted)."""
        self._spawn_refresh()

    def _spawn_refresh(self) -> None:
        self.client.handler.spawn(self._guarded_refresh)

    def _guarded_refresh(self) -> None:
        with self._refresh_lock:
            if not self._active:
                return
            try:
                self._refresh()
            except (ConnectionLoss, SessionExpiredError) as exc:
                # A state change follows and schedules the next refresh.
                log.info("ZooKeeper read of %s interrupted: %s", self.url.path, type(exc).__name__)
            except KazooException:
                log.exception("Failed to read the ZooKeeper group %s", self.url.path)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        """Run ``callback(*args)`` on the asyncio loop (in posting order)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # closed between the check and the call
            pass

    # ------------------------------------------------------------------ hooks

    def _refresh(self) -> None:
        raise NotImplementedError

    def _on_suspended(self) -> None:
        """Connection lost, session maybe alive; called under ``_lock``."""

    def _on_lost(self) -> None:
        """Session expired; called under ``_lock``."""

    def _leave(self) -> None:
        """Called once on stop, with no refresh running."""
