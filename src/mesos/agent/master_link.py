"""The agent's link to the master: one SUBSCRIBE stream in, one POST per call out.

``POST http://<master>/api/v1/internal/agent`` with a SUBSCRIBE call opens a RecordIO
stream of master -> agent events (contracts §5); the response's ``Mesos-Stream-Id``
goes on every later call. When the stream breaks (or stays silent for five ping
intervals) the link reports the disconnection and subscribes again after a backoff
that starts at ``--registration_backoff_factor`` and doubles up to one minute; each
SUBSCRIBE is built afresh so it carries the agent id and what is running.

With ``--master=zk://host:2181/mesos`` the link follows the leading master through
ZooKeeper (a :class:`~mesos.zookeeper.MasterDetector` of its own): it subscribes only
to the leader, drops the stream of a master that stopped leading, and subscribes to
the new leader at once (after a random delay of up to ``--registration_backoff_factor``,
as Mesos' agent does, so agents do not all arrive together), carrying its agent id
and tasks as on any re-subscription. :attr:`MasterLink.url` is the current leader's.

Events are decoded here into :class:`MasterEvent` values with typed payloads, so the
service never sees raw JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from mesos.errors import ValidationError
from mesos.v1 import codec, recordio
from mesos.v1 import mesos as v1
from mesos.v1.internal import AgentCall
from mesos.zookeeper import MasterDetector, ZkUrl, parse_master, parse_zk_url

log = logging.getLogger(__name__)

__all__ = ["MasterEvent", "MasterLink", "call", "decode_event", "master_url"]

MAX_BACKOFF = 60.0
# Silence on the stream for this many ping intervals means the master is gone.
MISSED_PINGS = 5
DEFAULT_PING_INTERVAL = 15.0
# How long one attempt to reach ZooKeeper may take before it is started afresh.
ZK_CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class MasterEvent:
    """One event of the master's stream; ``payload`` holds its typed fields."""

    type: str
    payload: dict[str, Any]


# Typed fields of each event's payload; any other key is ignored.
_FIELDS: dict[str, dict[str, Any]] = {
    "SUBSCRIBED": {"agent_id": v1.AgentID, "ping_interval_seconds": float | None},
    "RUN_TASK": {"framework_info": v1.FrameworkInfo, "task": v1.TaskInfo},
    "RUN_TASK_GROUP": {
        "framework_info": v1.FrameworkInfo,
        "executor": v1.ExecutorInfo,
        "task_group": v1.TaskGroupInfo,
    },
    "KILL_TASK": {
        "framework_id": v1.FrameworkID,
        "task_id": v1.TaskID,
        "kill_policy": v1.KillPolicy | None,
    },
    "SHUTDOWN_FRAMEWORK": {"framework_id": v1.FrameworkID},
    "SHUTDOWN_EXECUTOR": {"framework_id": v1.FrameworkID, "executor_id": v1.ExecutorID},
    "ACKNOWLEDGE": {"framework_id": v1.FrameworkID, "task_id": v1.TaskID, "uuid": bytes},
    "FRAMEWORK_MESSAGE": {
        "framework_id": v1.FrameworkID,
        "executor_id": v1.ExecutorID,
        "data": bytes,
    },
    "UPDATE_FRAMEWORK": {"framework_info": v1.FrameworkInfo},
    "CHECKPOINT_RESOURCES": {"resources": list[v1.Resource] | None},
    "SHUTDOWN": {"message": str | None},
    "PING": {},
    "HEARTBEAT": {},
    "ERROR": {"message": str | None},
}


def decode_event(record: bytes) -> MasterEvent:
    """Parse one stream record; ValidationError names the bad field."""
    raw = codec.decode(record, dict[str, Any])
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise ValidationError("Expecting 'type' to be present")
    fields = _FIELDS.get(kind)
    if fields is None:
        return MasterEvent(kind, {})
    body = raw.get(kind.lower()) or {}
    if not isinstance(body, dict):
        raise ValidationError(f"Expecting '{kind.lower()}' to be an object")
    payload: dict[str, Any] = {}
    for name, type_ in fields.items():
        value = body.get(name)
        if value is None:
            payload[name] = None
            continue
        try:
            payload[name] = codec.decode_obj(value, type_)
        except ValidationError as exc:
            raise ValidationError(f"{exc} (in '{kind.lower()}.{name}')") from None
    missing = [n for n, t in fields.items() if payload[n] is None and not _optional(t)]
    if missing:
        raise ValidationError(f"Missing required fields in '{kind.lower()}': {missing}")
    return MasterEvent(kind, payload)


def _optional(type_: Any) -> bool:
    return type(None) in getattr(type_, "__args__", ())


def master_url(master: str) -> str:
    """``host:port`` (or ``http://host:port``) -> the agent channel URL.

    A ZooKeeper URL (``zk://...``, or ``file://`` holding one or ``host:port``) is
    checked; a ``zk://`` one is returned as it was parsed (the link asks ZooKeeper
    for the leader's channel URL), ValueError names what is wrong.
    """
    text = master.strip().rstrip("/")
    if text.startswith(("zk://", "file://")):
        target = parse_master(text)
        if isinstance(target, ZkUrl):
            return str(target)
        text = f"{target[0]}:{target[1]}"
    if not text.startswith(("http://", "https://")):
        text = "http://" + text
    host = text.split("://", 1)[1]
    if not host or ":" not in host or not host.rsplit(":", 1)[1].isdigit():
        raise ValueError(f"Expecting 'host:port' for --master, got '{master}'")
    return text + "/api/v1/internal/agent"


class MasterLink:
    """Keeps one subscription to the master alive and posts calls on it."""

    def __init__(
        self,
        master: str,
        *,
        subscribe_call: Callable[[], AgentCall],
        on_event: Callable[[MasterEvent], None],
        on_disconnected: Callable[[], None],
        backoff_factor: float = 1.0,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        url = master_url(master)
        # With ZooKeeper, ``url`` is the leader's channel ("" while none is known).
        self._zk: ZkUrl | None = parse_zk_url(url) if url.startswith("zk://") else None
        self.url = "" if self._zk is not None else url
        self._leader_changed = asyncio.Event()
        self._response: aiohttp.ClientResponse | None = None
        self._subscribe_call = subscribe_call
        self._on_event = on_event
        self._on_disconnected = on_disconnected
        self._backoff_factor = max(backoff_factor, 0.001)
        self._max_backoff = max(max_backoff, self._backoff_factor)
        self._session: aiohttp.ClientSession | None = None
        self.stream_id: str | None = None
        self.ping_interval = DEFAULT_PING_INTERVAL
        self._stopped = False
        self.connected = False
        # Calls go out one at a time, in the order they were made.
        self._outbox: asyncio.Queue[AgentCall] = asyncio.Queue()

    async def run(self) -> None:
        """Subscribe, read events, and re-subscribe after any failure, until stopped."""
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        loop = asyncio.get_running_loop()
        sender = loop.create_task(self._drain_outbox())
        follower = loop.create_task(self._follow(self._zk)) if self._zk is not None else None
        attempt = 0
        # A leader just detected may not serve yet (ZooKeeper tells the agents as soon
        # as it tells the master); its first refusal is retried after a short spread,
        # not the doubled backoff.
        fresh_leader = False
        try:
            while not self._stopped:
                if not self.url:
                    await self._wait_for_leader()
                    continue
                self._leader_changed.clear()
                subscribed = await self._subscribe_once()
                if self._stopped:
                    break
                if self._leader_changed.is_set():
                    attempt, fresh_leader = 0, True
                    await self._spread()
                    continue
                if not subscribed and fresh_leader:
                    fresh_leader = False
                    await self._spread()
                    continue
                fresh_leader = False
                attempt = 0 if subscribed else attempt + 1
                delay = min(self._backoff_factor * (2 ** min(attempt, 16)), self._max_backoff)
                delay *= random.uniform(0.5, 1.0)
                log.info("Re-subscribing with the master in %.2fs", delay)
                if await self._pause(delay):
                    attempt, fresh_leader = 0, True
                    await self._spread()
        finally:
            for task in (sender, follower):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await self._session.close()
            self._session = None

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` seconds, or less if a new leader is detected (then True)."""
        if self._zk is None:
            await asyncio.sleep(delay)
            return False
        try:
            await asyncio.wait_for(self._leader_changed.wait(), delay)
        except TimeoutError:
            return False
        return True

    async def _spread(self) -> None:
        """Mesos' agent waits a random time up to its backoff factor before it
        registers with a newly detected master, so a fleet does not arrive at once."""
        self._leader_changed.clear()
        await asyncio.sleep(self._backoff_factor * random.uniform(0.0, 1.0))

    async def _wait_for_leader(self) -> None:
        while not self.url and not self._stopped:
            self._leader_changed.clear()
            await self._leader_changed.wait()

    async def _follow(self, url: ZkUrl) -> None:
        """Track the leader in ZooKeeper for as long as the link runs."""
        while True:
            detector = MasterDetector(url)
            try:
                await detector.start(timeout=ZK_CONNECT_TIMEOUT)
                break
            except Exception as exc:  # kazoo's time-out and connection errors alike
                log.warning("Cannot reach ZooKeeper at %s (%s); retrying", url.redacted(),
                            exc or type(exc).__name__)
                await asyncio.sleep(1.0)
        try:
            leader: v1.MasterInfo | None = None
            while True:
                leader = await detector.detect(leader)
                self._set_leader(leader)
        finally:
            await asyncio.shield(detector.stop())

    def _set_leader(self, leader: v1.MasterInfo | None) -> None:
        url = _leader_url(leader) if leader is not None else ""
        if url == self.url:
            return
        log.info("Detected a new leading master: %s", leader.pid if leader else "none")
        self.url = url
        self._leader_changed.set()
        response = self._response
        if response is not None:
            response.close()  # the stream of a master that no longer leads

    def stop(self) -> None:
        self._stopped = True
        self._leader_changed.set()  # wakes a link waiting for a leader

    async def _subscribe_once(self) -> bool:
        """One SUBSCRIBE and its stream; True if the master accepted us."""
        assert self._session is not None
        body = codec.encode(self._subscribe_call())
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        subscribed = False
        try:
            async with self._session.post(self.url, data=body, headers=headers) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:200]
                    log.warning("Master refused SUBSCRIBE: %s %s", resp.status, text.strip())
                    return False
                self.stream_id = resp.headers.get("Mesos-Stream-Id")
                self._response = resp
                subscribed = await self._read_stream(resp)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # A master that dies mid-stream ends it with an error, not an empty read; the
            # session it had accepted still counts, so the next try starts a fresh backoff.
            subscribed = subscribed or self.connected
            log.warning("Lost the master at %s: %s", self.url, exc or type(exc).__name__)
        except asyncio.CancelledError:
            raise
        finally:
            self._response = None
            if self.connected:
                self.connected = False
                self.stream_id = None
                self._on_disconnected()
        return subscribed

    async def _read_stream(self, resp: aiohttp.ClientResponse) -> bool:
        decoder = recordio.Decoder()
        subscribed = False
        while not self._stopped:
            timeout = self.ping_interval * MISSED_PINGS
            try:
                chunk = await asyncio.wait_for(resp.content.readany(), timeout)
            except TimeoutError:
                log.warning("No word from the master for %.0fs; reconnecting", timeout)
                return subscribed
            if not chunk:
                log.warning("The master closed the event stream")
                return subscribed
            try:
                records = decoder.feed(chunk)
            except recordio.RecordIOError as exc:
                log.error("Bad event stream from the master: %s", exc)
                return subscribed
            for record in records:
                try:
                    event = decode_event(record)
                except ValidationError as exc:
                    log.error("Ignoring a malformed event from the master: %s", exc)
                    continue
                if event.type == "SUBSCRIBED":
                    subscribed = True
                    self.connected = True
                    interval = event.payload.get("ping_interval_seconds")
                    if interval:
                        self.ping_interval = float(interval)
                self._deliver(event)
                if self._stopped:
                    return subscribed
        return subscribed

    def _deliver(self, event: MasterEvent) -> None:
        """Hand one event to the agent; a failure to handle it loses that event only."""
        try:
            self._on_event(event)
        except Exception:
            log.exception("Failed to handle %s from the master; going on", event.type)

    def post(self, call: AgentCall) -> None:
        """Queue a call; it is sent after every call queued before it (dropped if the
        master is not connected by then: status updates are resent on reconnection)."""
        self._outbox.put_nowait(call)

    async def _drain_outbox(self) -> None:
        while True:
            call = await self._outbox.get()
            try:
                await self.send(call)
            finally:
                self._outbox.task_done()

    async def flush(self, timeout: float) -> None:
        """Wait (bounded) until every queued call has been tried, the one being sent too."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._outbox.join(), timeout)

    async def send(self, call: AgentCall) -> bool:
        """POST one call on the current subscription; False if it did not get through."""
        if self._session is None or not self.connected:
            return False
        headers = {"Content-Type": "application/json"}
        if self.stream_id is not None:
            headers["Mesos-Stream-Id"] = self.stream_id
        try:
            async with self._session.post(
                self.url, data=codec.encode(call), headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as resp:
                if resp.status // 100 != 2:
                    text = (await resp.text())[:200]
                    log.warning("Master refused %s: %s %s", call.type, resp.status, text.strip())
                    return False
                return True
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("Could not send %s to the master: %s", call.type, exc or type(exc).__name__)
            return False


def _leader_url(info: v1.MasterInfo) -> str:
    """The agent channel URL of a leader from its MasterInfo (its address, else its pid)."""
    if info.address is not None and info.address.ip:
        host = info.address.ip
    else:
        host = (info.pid or "").rpartition("@")[2].rpartition(":")[0] or info.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{info.port}/api/v1/internal/agent"


def call(type_: str, agent_id: str | None, **fields: Any) -> AgentCall:
    """An ``AgentCall`` of ``type_`` with the given sub-message."""
    aid = v1.AgentID(value=agent_id) if agent_id is not None else None
    return AgentCall(type=type_, agent_id=aid, **fields)  # type: ignore[arg-type]
