"""A master started with ``--zk``: contend in ZooKeeper, stand by, lead, and never
lead on after leadership is lost.

The life of such a master, as in Mesos:

1. It binds its port at once and serves the standby app
   (:func:`mesos.master.app.build_standby_app`): calls are redirected to the leader
   (307, 503 while none is known), ``/state`` says who leads, ``/health`` is 200.
2. One ZooKeeper session carries a :class:`MasterContender` (our ``json.info_``
   znode) and a :class:`MasterDetector` (who leads, for the redirects).
3. Elected, it builds the :class:`Master` only then, so the registry is recovered
   from what the previous leader left (ZooKeeper's, by default, written with fenced
   compare-and-swap: a deposed leader's write is refused by ZooKeeper itself); it
   starts serving the full API on the same listening socket and retires the standby
   app. Agents and frameworks find it through ZooKeeper and come back with their ids.
4. The moment leadership is in doubt (connection suspended, session expired, znode
   gone) the gate in front of the API refuses everything, and the process exits
   non-zero ("Lost leadership... committing suicide", Mesos' words) so that a
   supervisor restarts it as a standby. Mesos' master waits for the session to
   expire; this one does not wait: it cannot know the session is still alive.

   A leader that was frozen (SIGSTOP, a VM pause) cannot rely on kazoo to tell it:
   on waking, a request already queued may be served before kazoo's thread notices
   the expired session. So the event loop keeps a heartbeat, and a gap longer than
   two thirds of the session timeout (the earliest ZooKeeper may expire a session
   whose last ping came a third of a timeout before the freeze) counts as lost
   leadership: the gate refuses while the heartbeat is late, and the heartbeat itself
   ends the process when it finally runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, SessionExpiredError

from mesos import __version__
from mesos.flags import Flags
from mesos.master.app import build_app, build_standby_app
from mesos.master.registrar import default_registry
from mesos.master.service import Master
from mesos.state import Storage
from mesos.state.zookeeper import ZooKeeperStorage
from mesos.v1.mesos import MasterInfo
from mesos.zookeeper import MasterContender, MasterDetector, ZkUrl, make_client, parse_zk_url

log = logging.getLogger("mesos.master")

# How long a graceful stop waits for in-flight requests of the retired standby app.
_SHUTDOWN_GRACE = 1.0
# How often start-up says it is still waiting for ZooKeeper.
_CONNECT_LOG_INTERVAL = 10.0
# The leader's loop heartbeat, as a fraction of the session timeout.
_HEARTBEAT_FRACTION = 0.1


def master_info(flags: Flags, master_id: str) -> dict[str, Any]:
    """This master's MasterInfo as JSON: what goes in its znode and, once elected, in
    the Master's own ``master_info()`` (same id, address and hostname)."""
    ip = flags.advertise_ip or flags.ip
    port = flags.advertise_port or flags.port
    hostname = flags.hostname or _lookup_hostname(ip, flags.hostname_lookup)
    return {
        "id": master_id,
        "ip": _ip_as_int(ip),
        "port": port,
        "pid": f"master@{ip}:{port}",
        "hostname": hostname,
        "version": __version__,
        "address": {"hostname": hostname, "ip": ip, "port": port},
        "capabilities": [{"type": "AGENT_UPDATE"}],
    }


def _ip_as_int(ip: str) -> int:
    try:
        return int.from_bytes(socket.inet_aton(ip), "little")
    except OSError:
        return 0


def _lookup_hostname(ip: str, lookup: bool) -> str:
    if lookup:
        try:
            return socket.gethostbyaddr(ip)[0]
        except OSError:
            pass
    return ip


@dataclass
class Standby:
    """What a master that does not lead can say: who it is and who leads."""

    flags: Flags
    info: dict[str, Any]
    start_time: float
    detector: MasterDetector

    def leader(self) -> MasterInfo | None:
        return self.detector.leader

    def uptime(self) -> float:
        return time.time() - self.start_time


class ElectedMaster(Master):
    """The Master of an elected process: its id is the one in its znode, its start
    time the process's, and its registry store the one the election set up."""

    def __init__(self, flags: Flags, *, master_id: str, start_time: float,
                 storage: Storage | None) -> None:
        self.registry_storage = storage
        super().__init__(flags)
        self.id = master_id
        self.start_time = start_time
        self.elected_time = time.time()


def lost_leadership(reason: str) -> None:
    """Mesos' answer to lost leadership: exit at once, for a supervisor to restart us
    as a standby (nothing of the old term may leak into a new one)."""
    log.critical("Lost leadership (%s)... committing suicide!", reason)
    logging.shutdown()
    os._exit(1)


def listen(ip: str, port: int) -> socket.socket:
    """The master's listening socket, bound once for both of its apps."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.listen(512)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class HighAvailability:
    """One master process under ``--zk``: see the module docstring."""

    def __init__(self, flags: Flags) -> None:
        self.flags = flags
        self.url: ZkUrl = parse_zk_url(flags.zk)
        self.session_timeout = float(flags.zk_session_timeout)
        self.start_time = time.time()
        self.info = master_info(flags, str(uuid.uuid4()))
        self.client: KazooClient = make_client(self.url, self.session_timeout)
        self.detector = MasterDetector(self.url, client=self.client,
                                       session_timeout=self.session_timeout)
        self.contender = MasterContender(self.url, self.info, client=self.client,
                                         session_timeout=self.session_timeout,
                                         on_change=self._on_leadership)
        self.standby = Standby(flags, self.info, self.start_time, self.detector)
        self.elected = asyncio.Event()
        self.master: ElectedMaster | None = None
        self._won = False  # once elected, losing it ends the process
        # The loop's heartbeat while leading (time.monotonic), and the longest gap
        # between two beats that cannot have cost us the session.
        self._beat = time.monotonic()
        self._max_gap = self.session_timeout * 2 / 3
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False  # a graceful stop leaves the group on purpose

    # ------------------------------------------------------------------ election

    def _on_leadership(self, leading: bool) -> None:
        if leading and not self._won:
            self._won = True
            log.info("Elected as the leading master")
            self.elected.set()
        elif not leading and self._won and not self._stopping:
            lost_leadership(self.contender.reason)

    def leading(self) -> bool:
        """Whether the API may answer as leader: elected, connected, and not just
        woken from a freeze long enough for the session to have expired."""
        return self.contender.leading and time.monotonic() - self._beat <= self._max_gap

    async def _keep_beating(self) -> None:
        interval = self.session_timeout * _HEARTBEAT_FRACTION
        while True:
            await asyncio.sleep(interval)
            gap = time.monotonic() - self._beat
            if gap > self._max_gap:
                lost_leadership(f"this process was frozen for {gap:.1f}s, longer than the "
                                f"ZooKeeper session allows")
            self._beat = time.monotonic()

    async def _elect(self) -> None:
        """Connect, join the group, and return once elected."""
        await self._connect()
        await self._start_until_joined(self.detector.start, "watch the masters' group")
        await self._start_until_joined(self.contender.start, "join the masters' group")
        await self.elected.wait()

    async def _start_until_joined(self, start: Any, what: str) -> None:
        """``start()``, again each time ZooKeeper's connection drops under it: a standby
        outlives a ZooKeeper outage (only a leader must exit), and kazoo reconnects."""
        while True:
            try:
                await start()
                return
            except (ConnectionLoss, SessionExpiredError) as exc:
                log.warning("ZooKeeper connection lost while trying to %s (%s); trying again "
                            "once it is back", what, type(exc).__name__)
            while not self.client.connected:
                await asyncio.sleep(0.2)

    async def _connect(self) -> None:
        """Start the ZooKeeper session, waiting as long as it takes (the standby app
        answers 503 meanwhile), like Mesos' master does."""
        connected = self.client.start_async()
        waited = 0.0
        while not await asyncio.to_thread(connected.wait, 1.0):
            waited += 1.0
            if waited % _CONNECT_LOG_INTERVAL == 0:
                log.warning("Still waiting to connect to ZooKeeper at %s (%.0fs)",
                            self.url.redacted(), waited)

    def _build_master(self) -> ElectedMaster:
        """Build the Master, recovering the registry (a blocking read)."""
        storage: Storage | None = None
        kind = self.flags.registry or default_registry(self.flags.zk, self.flags.work_dir)
        if kind == "zookeeper":
            storage = ZooKeeperStorage(self.url, client=self.client, fence=self.contender.fence)
        return ElectedMaster(self.flags, master_id=self.info["id"],
                             start_time=self.start_time, storage=storage)

    # ------------------------------------------------------------------ life

    async def run(self) -> None:
        sock = listen(self.flags.ip, self.flags.port)
        standby_runner = web.AppRunner(build_standby_app(self.standby), access_log=None,
                                       shutdown_timeout=_SHUTDOWN_GRACE)
        await standby_runner.setup()
        await web.SockSite(standby_runner, sock).start()
        log.info("Master %s listening on http://%s:%s, contending for leadership in %s",
                 self.info["id"], self.flags.ip, self.flags.port, self.url.redacted())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        leader_runner: web.AppRunner | None = None
        try:
            # SIGTERM must work while ZooKeeper is unreachable or another master leads.
            stopping = loop.create_task(stop.wait())
            election = loop.create_task(self._elect())
            await asyncio.wait({stopping, election}, return_when=asyncio.FIRST_COMPLETED)
            if election.done() and not stop.is_set():
                election.result()  # its error, if it failed
                leader_runner = await self._lead(sock)
                await standby_runner.cleanup()
            else:
                election.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await election
            await stopping
        finally:
            log.info("Master shutting down")
            self._stopping = True
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            if self.master is not None:
                await self.master.stop()
            # Leaving the group first lets the next master take over at once.
            await self.contender.stop()
            await self.detector.stop()
            await asyncio.to_thread(self._close_client)
            if leader_runner is not None:
                await leader_runner.cleanup()
            await standby_runner.cleanup()
            sock.close()

    async def _lead(self, sock: socket.socket) -> web.AppRunner:
        """Recover, start the Master and serve its API on ``sock`` (a duplicate of it:
        each server closes its own descriptor)."""
        try:
            # On the loop, not a thread: the Master's parts may create loop objects
            # as they are built. Recovery is one read of the registry (milliseconds);
            # the standby app waits meanwhile.
            master = self._build_master()
        except Exception as exc:  # any failure to recover ends this term
            log.critical("Failed to recover the registry as the new leader: %s", exc)
            logging.shutdown()
            os._exit(1)
        if not self.contender.leading:
            lost_leadership(self.contender.reason)
        self.master = master
        self._beat = time.monotonic()
        self._heartbeat = asyncio.get_running_loop().create_task(self._keep_beating())
        master.start()
        runner = web.AppRunner(build_app(master, leading=self.leading), access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock.dup()).start()
        log.info("Leading master %s serving on http://%s:%s (registry: %s)", master.id,
                 self.flags.ip, self.flags.port,
                 self.flags.registry or default_registry(self.flags.zk, self.flags.work_dir))
        return runner

    def _close_client(self) -> None:
        self.client.stop()
        self.client.close()


async def serve_ha(flags: Flags) -> None:
    await HighAvailability(flags).run()
