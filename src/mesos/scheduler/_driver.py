"""Asynchronous client of the v1 Scheduler HTTP API.

The driver POSTs ``SUBSCRIBE`` to ``/api/v1/scheduler``, keeps the
``Mesos-Stream-Id`` it is given, decodes the RecordIO event stream and hands each
event to a :class:`Scheduler` (one at a time, in stream order). Every other call is
its own POST carrying the stream id.

Connection rules (ref §2, §6, §7):

* The master is ``host:port``, or ``zk://.../path`` (or a ``file://`` holding
  either): the driver then follows the leader ZooKeeper elects (see ``_leader``),
  subscribes to it, and when the leader changes (or is lost) drops its stream and
  subscribes to the new one. While no leader is known it waits, logging why.
* ``307`` answers (from a standby master) are followed: ``Location:
  //host:port/path`` names the leader, which becomes the driver's master for the
  subscription and for every later call. A ``307`` to a call on a live
  subscription means that master no longer leads: the subscription is dropped and
  made again at the leader (the call raises :class:`NotSubscribedError`).
* A stream that ends, fails, or stays silent for ``missed_heartbeats`` heartbeat
  intervals is dropped and the driver subscribes again with exponential backoff and
  jitter. It re-subscribes with its framework id (``framework_info.id`` and the
  top-level ``framework_id``), so the master treats it as a failover. After
  ``max_reconnects`` consecutive attempts without a ``SUBSCRIBED`` event, ``run()``
  raises :class:`DisconnectedError` (with ZooKeeper, not before a dead leader has had
  ``zk_session_timeout`` to be replaced).
* An exception escaping a handler stops the driver and is re-raised by ``run()``:
  a framework that wants to survive a failed call catches it itself. The exception
  is a call that failed because the master is gone or no longer leads (a transport
  error, a timeout, :class:`NotSubscribedError`): like a failed acknowledgement, it
  ends the subscription and the driver re-subscribes, as Mesos' library drops calls
  it cannot deliver.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from mesos.errors import MesosError
from mesos.v1.recordio import Decoder, RecordIOError
from mesos.zookeeper import DEFAULT_SESSION_TIMEOUT, ZkUrl

from ._leader import ZOOKEEPER_ERRORS, LeaderFollower, parse_address, parse_master_spec
from ._offers import IdLike, launch_operation, to_id

__all__ = [
    "API_PATH",
    "CallError",
    "DisconnectedError",
    "NotSubscribedError",
    "Scheduler",
    "SchedulerDriver",
    "SchedulerError",
    "current_user",
]

log = logging.getLogger("mesos.scheduler")

API_PATH = "/api/v1/scheduler"
DEFAULT_HEARTBEAT_INTERVAL = 15.0
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class SchedulerError(MesosError):
    """Root of the errors the scheduler driver raises."""


class CallError(SchedulerError):
    """The master answered a call (or SUBSCRIBE) with an unexpected HTTP status."""

    def __init__(self, call_type: str, status: int, body: str) -> None:
        self.call_type = call_type
        self.status = status
        self.body = body
        detail = f": {body.strip()}" if body.strip() else ""
        super().__init__(f"{call_type} answered {status}{detail}")


class NotSubscribedError(SchedulerError):
    """A call was made while the driver has no subscribed stream."""


class DisconnectedError(SchedulerError):
    """The driver gave up reconnecting after ``max_reconnects`` attempts."""

    def __init__(self, master: str, attempts: int, reason: str) -> None:
        self.master = master
        self.reason = reason
        super().__init__(f"Gave up on master {master} after {attempts} attempts: {reason}")


class Scheduler:
    """Event handler base class: every method is a no-op; override what you need.

    Handlers run one at a time in stream order, so a handler must not wait for a
    later event (start a task for that instead). Payloads are Mesos v1 JSON dicts.
    """

    async def on_subscribed(self, driver: SchedulerDriver, subscribed: dict[str, Any]) -> None:
        """``subscribed``: ``{framework_id, heartbeat_interval_seconds, master_info}``."""

    async def on_disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        """A subscribed stream ended; the driver is about to reconnect."""

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        """New resource offers (each a v1 ``Offer``)."""

    async def on_inverse_offers(
        self, driver: SchedulerDriver, inverse_offers: list[dict[str, Any]]
    ) -> None:
        """Maintenance inverse offers."""

    async def on_rescind(self, driver: SchedulerDriver, offer_id: dict[str, Any]) -> None:
        """An offer is no longer valid."""

    async def on_rescind_inverse_offer(
        self, driver: SchedulerDriver, inverse_offer_id: dict[str, Any]
    ) -> None:
        """An inverse offer is no longer valid."""

    async def on_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        """A task status update (v1 ``TaskStatus``).

        With implicit acknowledgements (the default) the driver acknowledges it
        after this returns, when it carries a ``uuid``.
        """

    async def on_operation_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        """An offer-operation status update (v1 ``OperationStatus``)."""

    async def on_message(self, driver: SchedulerDriver, message: dict[str, Any]) -> None:
        """``{agent_id, executor_id, data}`` from an executor (``data`` still base64)."""

    async def on_failure(self, driver: SchedulerDriver, failure: dict[str, Any]) -> None:
        """An agent was lost (``{agent_id}``) or an executor exited (``+ executor_id, status``)."""

    async def on_error(self, driver: SchedulerDriver, message: str) -> None:
        """The master refused the framework (e.g. ``Framework has been removed``)."""

    async def on_heartbeat(self, driver: SchedulerDriver) -> None:
        """A HEARTBEAT arrived (the driver already tracks liveness itself)."""


def current_user() -> str:
    """The login name to put in ``FrameworkInfo.user`` (``""`` if there is none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _leader_from_location(location: str) -> str:
    """``//host:port/path``, ``http://host:port/path`` or bare ``host:port``."""
    netloc = urlsplit(location).netloc or location.split("/", 1)[0]
    if not netloc:
        raise SchedulerError(f"Redirect without a usable Location: '{location}'")
    try:
        return parse_address(netloc)
    except ValueError as exc:
        raise SchedulerError(f"Redirect to an unusable Location '{location}': {exc}") from None


def _event_payload(event: Mapping[str, Any], key: str) -> dict[str, Any]:
    payload = event.get(key)
    return payload if isinstance(payload, dict) else {}


class _StreamEnded(Exception):
    """Internal: the current subscription is over, for the reason given."""


# The note :meth:`SchedulerDriver.call` adds to a transport error it raises.
_CALL_NOTE = "mesos.scheduler: while sending"


def _is_call_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a driver call failing because the master is gone or no
    longer leads (not a handler's own error that merely looks alike)."""
    if isinstance(exc, NotSubscribedError):
        return True
    notes = getattr(exc, "__notes__", None) or ()
    return any(isinstance(n, str) and n.startswith(_CALL_NOTE) for n in notes)


class SchedulerDriver:
    """Drives one framework over the v1 Scheduler API.

    ``master`` is ``"host:port"`` (the port defaults to 5050) or a ZooKeeper URL
    ``"zk://host1:2181,host2:2181/mesos"`` (or ``"file:///path"`` holding either),
    whose leader it follows; ``framework_info`` a
    v1 ``FrameworkInfo`` dict (``user`` defaults to the current user; an ``id``
    makes the first SUBSCRIBE a failover of that framework); ``handler`` a
    :class:`Scheduler`.

    Use ``await driver.run()`` (returns after :meth:`stop` or :meth:`teardown`), or
    ``async with driver:`` which runs it in the background and, on leaving, stops
    it and re-raises what made it fail, if anything did. A driver runs once.
    """

    def __init__(
        self,
        master: str,
        framework_info: Mapping[str, Any],
        handler: Scheduler,
        *,
        implicit_acknowledgements: bool = True,
        suppressed_roles: Sequence[str] = (),
        credentials: tuple[str, str] | None = None,
        max_reconnects: int = 10,
        backoff: float = 0.5,
        backoff_max: float = 15.0,
        missed_heartbeats: int = 5,
        connect_timeout: float = 10.0,
        call_timeout: float = 10.0,
        max_redirects: int = 5,
        zk_session_timeout: float = DEFAULT_SESSION_TIMEOUT,
    ) -> None:
        spec = parse_master_spec(master)
        self._zk: ZkUrl | None = spec if isinstance(spec, ZkUrl) else None
        self._master: str | None = spec if isinstance(spec, str) else None
        self._zk_session_timeout = zk_session_timeout
        self._follower: LeaderFollower | None = None
        info = dict(framework_info)
        info.setdefault("user", current_user())
        self._framework_info = info
        self._framework_id: str | None = None
        if info.get("id"):
            self._framework_id = to_id(info["id"])["value"]
        self._handler = handler
        self._implicit_acks = implicit_acknowledgements
        self._suppressed_roles = list(suppressed_roles)
        self._auth = aiohttp.BasicAuth(*credentials) if credentials else None
        self._max_reconnects = max_reconnects
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._missed_heartbeats = missed_heartbeats
        self._connect_timeout = connect_timeout
        self._call_timeout = call_timeout
        self._max_redirects = max_redirects

        self.heartbeat_interval = DEFAULT_HEARTBEAT_INTERVAL
        self.master_info: dict[str, Any] | None = None
        self._stream_id: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._subscribed = asyncio.Event()
        self._stop_requested = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._tearing_down = False
        self._teardown_call: asyncio.Future[bytes] | None = None
        # Why the driver itself dropped the live stream (a new leader, a redirect).
        self._drop_reason: str | None = None
        self._closed_cleanly = False
        self._got_subscribed = False
        self._stream_master: str | None = None  # the master of the live stream
        self._stream_done = asyncio.Event()
        self._rng = random.Random()
        self._dispatch: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "SUBSCRIBED": self._on_subscribed,
            "HEARTBEAT": self._on_heartbeat,
            "OFFERS": self._on_offers,
            "INVERSE_OFFERS": self._on_inverse_offers,
            "RESCIND": self._on_rescind,
            "RESCIND_INVERSE_OFFER": self._on_rescind_inverse_offer,
            "UPDATE": self._on_update,
            "UPDATE_OPERATION_STATUS": self._on_operation_update,
            "MESSAGE": self._on_message,
            "FAILURE": self._on_failure,
            "ERROR": self._on_error,
        }

    # ------------------------------------------------------------------ state

    @property
    def master(self) -> str | None:
        """The master the driver talks to now (``host:port``; follows redirects and
        ZooKeeper); None while ZooKeeper names no leader."""
        return self._master

    @property
    def _master_name(self) -> str:
        """The master for messages: the address, or the ZooKeeper group before one."""
        if self._master is not None:
            return self._master
        return self._zk.redacted() if self._zk is not None else "(none)"

    @property
    def framework_id(self) -> str | None:
        """The framework id, once the master assigned one (or the one given)."""
        return self._framework_id

    @property
    def stream_id(self) -> str | None:
        """The ``Mesos-Stream-Id`` of the live subscription, if any."""
        return self._stream_id

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    @property
    def _stopping(self) -> bool:
        return self._tearing_down or self._stop_requested.is_set()

    @property
    def framework_info(self) -> dict[str, Any]:
        """The ``FrameworkInfo`` sent on the next SUBSCRIBE (with ``id`` once known)."""
        info = dict(self._framework_info)
        if self._framework_id is not None:
            info["id"] = {"value": self._framework_id}
        return info

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SchedulerDriver:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        task = self._task
        if task is not None and task.done() and not task.cancelled():
            error = task.exception()
            if error is not None and exc is None:
                raise error

    def start(self) -> asyncio.Task[None]:
        """Run the driver in a background task (see :meth:`join`)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="mesos-scheduler-driver")
        return self._task

    async def join(self) -> None:
        """Wait for the background task; re-raises what ended it."""
        if self._task is not None:
            await self._task

    async def wait_subscribed(self, timeout: float | None = None) -> str:
        """Wait until subscribed and return the framework id.

        Raises ``TimeoutError`` after ``timeout`` seconds, or what stopped the
        background driver if it ended first.
        """
        waiter = asyncio.ensure_future(self._subscribed.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            waits.add(self._task)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if self._subscribed.is_set() and self._framework_id is not None:
            return self._framework_id
        if self._task is not None and self._task.done():
            self._task.result()  # raises what ended it
            raise SchedulerError("The driver stopped before subscribing")
        raise TimeoutError(f"Not subscribed to {self._master_name} after {timeout}s")

    async def stop(self) -> None:
        """Close the stream and stop reconnecting. The framework is not torn down.

        Safe to call from a handler; from elsewhere it also waits for the
        background task (without re-raising; use :meth:`join` for that).
        """
        self._stop_requested.set()
        if self._response is not None:
            self._response.close()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            await asyncio.wait({task})

    async def run(self) -> None:
        """Subscribe and dispatch events until :meth:`stop` or :meth:`teardown`."""
        if self._running:
            raise SchedulerError("The driver is already running")
        self._running = True
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
        )
        failures = 0
        changes = 0
        try:
            while not self._stopping:
                reason: str | None = None
                was_subscribed = False
                if self._zk is not None:
                    reason = await self._find_leader()
                where = self._master_name
                if reason is None:
                    reason, was_subscribed = await self._subscribe_once()
                    where = self._stream_master or where
                if self._stopping:
                    break
                if self._follower is not None and self._follower.changes != changes:
                    changes = self._follower.changes
                    failures = 0  # a new leader is a fresh start
                log.warning("Scheduler stream from %s ended: %s", where, reason)
                failures = 1 if was_subscribed else failures + 1
                if was_subscribed:
                    await self._handler.on_disconnected(self, reason)
                if self._give_up(failures):
                    raise DisconnectedError(self._master_name, failures, reason)
                await self._sleep_backoff(failures)
        finally:
            self._subscribed.clear()
            self._stream_id = None
            call = self._teardown_call
            if call is not None and not call.done():
                # Closing the session would cut the TEARDOWN still waiting for its
                # answer (the master closes our stream before it answers).
                await asyncio.wait({call}, timeout=self._call_timeout)
            session, self._session = self._session, None
            await session.close()
            follower, self._follower = self._follower, None
            if follower is not None:
                await follower.stop()
            self._running = False

    def _give_up(self, failures: int) -> bool:
        if failures <= self._max_reconnects:
            return False
        if self._follower is None:
            return True
        # A SIGKILLed leader stays in ZooKeeper until its session expires: keep
        # trying at least that long after the last change before giving up.
        quiet = asyncio.get_running_loop().time() - self._follower.changed_at
        return quiet > self._zk_session_timeout + self._connect_timeout

    async def _sleep_backoff(self, failures: int) -> None:
        """Back off before the next attempt; a stop or a new leader cuts it short."""
        delay = min(self._backoff_max, self._backoff * 2 ** (failures - 1))
        delay *= 0.5 + self._rng.random() / 2
        await self._pause(delay)

    async def _pause(self, timeout: float) -> None:
        """Sleep up to ``timeout``; a stop or a change of leader ends it early."""
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._stop_requested.wait())}
        if self._follower is not None:
            waits.add(asyncio.ensure_future(self._follower.changed.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    # ------------------------------------------------------------------ ZooKeeper

    async def _find_leader(self) -> str | None:
        """Point ``_master`` at the leader ZooKeeper names; why not, if it cannot.

        Waits up to ``connect_timeout`` for a leader to appear (each such wait is one
        failed attempt, so a group that stays empty ends in DisconnectedError).
        """
        assert self._zk is not None
        if self._follower is None:
            follower = LeaderFollower(
                self._zk, session_timeout=self._zk_session_timeout,
                on_change=self._on_leader_change,
            )
            try:
                await follower.start(self._connect_timeout)
            except ZOOKEEPER_ERRORS as exc:
                await follower.stop()
                return f"cannot reach ZooKeeper at {self._zk.redacted()}: " + (
                    str(exc) or type(exc).__name__)
            self._follower = follower
        follower = self._follower
        if follower.address is None:
            log.info("Waiting for a leading master in %s", self._zk.redacted())
            await self._pause(self._connect_timeout)
            if follower.address is None:
                return (f"no leading master in {self._zk.redacted()} "
                        f"for {self._connect_timeout:g}s")
        self._master = follower.address
        return None

    def _on_leader_change(self, address: str | None) -> None:
        """ZooKeeper names another leader (or none): leave the master we are on (or
        are subscribing at; the next attempt asks the follower again)."""
        if (address is not None and address == self._master) or self._stopping:
            return
        self._drop(f"leading master changed to {address or 'none'}")

    def _drop(self, reason: str) -> None:
        """End the live stream; the run loop re-subscribes (at the new leader)."""
        if self._drop_reason is None:
            self._drop_reason = reason
        self._subscribed.clear()
        self._stream_id = None
        if self._response is not None:
            self._response.close()

    # ------------------------------------------------------------------ the stream

    def _subscribe_body(self) -> dict[str, Any]:
        subscribe: dict[str, Any] = {"framework_info": self.framework_info}
        if self._suppressed_roles:
            subscribe["suppressed_roles"] = list(self._suppressed_roles)
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": subscribe}
        if self._framework_id is not None:
            body["framework_id"] = {"value": self._framework_id}
        return body

    async def _subscribe_once(self) -> tuple[str, bool]:
        """One subscription, start to end: ``(why it ended, whether it subscribed)``.

        Transport trouble ends the subscription; handler exceptions propagate. Only
        refusals that retrying cannot fix (a 4xx to SUBSCRIBE) raise :class:`CallError`.
        """
        self._subscribed.clear()
        self._drop_reason = None
        self._closed_cleanly = False
        self._got_subscribed = False
        self._stream_master = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                response = await self._post(_json_encode(self._subscribe_body()), "SUBSCRIBE")
        except (aiohttp.ClientError, OSError, TimeoutError, SchedulerError) as exc:
            return f"cannot subscribe at {self._master}: {exc or type(exc).__name__}", False
        if response.status != 200:
            text = await _read_text(response)
            response.close()
            if 400 <= response.status < 500:
                raise CallError("SUBSCRIBE", response.status, text)
            return f"SUBSCRIBE answered {response.status} {text.strip()}", False
        if self._drop_reason is not None:  # the leader changed while we connected
            response.close()
            return self._drop_reason, False
        self._response = response
        self._stream_master = self._master
        self._stream_done = asyncio.Event()
        self._stream_id = response.headers.get("Mesos-Stream-Id")
        try:
            await self._read_stream(response)
        except _StreamEnded as ended:
            return self._drop_reason or str(ended), self._got_subscribed
        finally:
            self._response = None
            self._stream_id = None
            response.close()
            self._stream_done.set()
        return self._drop_reason or "stopped", self._got_subscribed

    def _read_timeout(self) -> float:
        if not self._subscribed.is_set():
            return self._connect_timeout
        return self.heartbeat_interval * self._missed_heartbeats

    async def _read_stream(self, response: aiohttp.ClientResponse) -> None:
        decoder = Decoder()
        while not self._stopping and self._drop_reason is None:
            timeout = self._read_timeout()
            try:
                async with asyncio.timeout(timeout):
                    chunk = await response.content.readany()
            except TimeoutError:
                raise _StreamEnded(f"no event for {timeout:g}s (missed heartbeats)") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise _StreamEnded(f"stream failed: {exc or type(exc).__name__}") from None
            if not chunk:
                self._closed_cleanly = self._drop_reason is None
                raise _StreamEnded("stream closed by the master")
            try:
                records = decoder.feed(chunk)
            except RecordIOError as exc:
                raise _StreamEnded(f"bad RecordIO stream: {exc}") from None
            for record in records:
                try:
                    event = _json_decode(record)
                except msgspec.DecodeError as exc:
                    raise _StreamEnded(f"bad event JSON: {exc}") from None
                if isinstance(event, dict):
                    await self._dispatch_event(event)
                if self._stopping:
                    return
                if self._drop_reason is not None:
                    raise _StreamEnded(self._drop_reason)

    async def _dispatch_event(self, event: dict[str, Any]) -> None:
        event_type = str(event.get("type", "UNKNOWN"))
        handler = self._dispatch.get(event_type)
        if handler is None:
            log.debug("Ignoring scheduler event of type %s", event_type)
            return
        try:
            await handler(event)
        except Exception as exc:
            if self._stopping or not _is_call_failure(exc):
                raise
            # A call the handler made could not reach the master, or the master no
            # longer leads: re-subscribe (where the leader is now) instead of failing.
            # The master re-offers, and agents resend unacknowledged updates.
            raise _StreamEnded(f"{event_type} handler's call failed: "
                               f"{exc or type(exc).__name__}") from exc

    async def _on_subscribed(self, event: dict[str, Any]) -> None:
        subscribed = _event_payload(event, "subscribed")
        framework_id = subscribed.get("framework_id")
        if framework_id:
            self._framework_id = to_id(framework_id)["value"]
        interval = subscribed.get("heartbeat_interval_seconds")
        if interval:
            self.heartbeat_interval = float(interval)
        self.master_info = subscribed.get("master_info")
        self._got_subscribed = True
        self._subscribed.set()
        log.info("Subscribed to %s as framework %s", self._master, self._framework_id)
        await self._handler.on_subscribed(self, subscribed)

    async def _on_heartbeat(self, event: dict[str, Any]) -> None:
        await self._handler.on_heartbeat(self)

    async def _on_offers(self, event: dict[str, Any]) -> None:
        offers = _event_payload(event, "offers").get("offers") or []
        await self._handler.on_offers(self, list(offers))

    async def _on_inverse_offers(self, event: dict[str, Any]) -> None:
        offers = _event_payload(event, "inverse_offers").get("inverse_offers") or []
        await self._handler.on_inverse_offers(self, list(offers))

    async def _on_rescind(self, event: dict[str, Any]) -> None:
        offer_id = _event_payload(event, "rescind").get("offer_id") or {}
        await self._handler.on_rescind(self, offer_id)

    async def _on_rescind_inverse_offer(self, event: dict[str, Any]) -> None:
        payload = _event_payload(event, "rescind_inverse_offer")
        await self._handler.on_rescind_inverse_offer(self, payload.get("inverse_offer_id") or {})

    async def _on_update(self, event: dict[str, Any]) -> None:
        status = _event_payload(event, "update").get("status") or {}
        await self._handler.on_update(self, status)
        if (
            self._implicit_acks
            and status.get("uuid")
            and self._stream_id is not None
            and not self._stopping
        ):
            try:
                await self.acknowledge_update(status)
            except (aiohttp.ClientError, OSError, TimeoutError, SchedulerError) as exc:
                # The master went away under us: the agent resends the update once we
                # (and it) are back, so reconnect instead of failing the driver.
                raise _StreamEnded(f"acknowledgement failed: {exc}") from exc

    async def _on_operation_update(self, event: dict[str, Any]) -> None:
        status = _event_payload(event, "update_operation_status").get("status") or {}
        await self._handler.on_operation_update(self, status)

    async def _on_message(self, event: dict[str, Any]) -> None:
        await self._handler.on_message(self, _event_payload(event, "message"))

    async def _on_failure(self, event: dict[str, Any]) -> None:
        await self._handler.on_failure(self, _event_payload(event, "failure"))

    async def _on_error(self, event: dict[str, Any]) -> None:
        message = str(_event_payload(event, "error").get("message", ""))
        log.warning("Master sent ERROR: %s", message)
        await self._handler.on_error(self, message)

    # ------------------------------------------------------------------ HTTP

    async def _post(self, body: bytes, call_type: str) -> aiohttp.ClientResponse:
        """POST to the master, following redirects to the leader; the caller reads.

        SUBSCRIBE follows ``307``s; any other call answered ``307`` was sent on a
        subscription to a master that no longer leads, so the subscription is dropped
        (the run loop makes it again at the leader) and the call raises
        :class:`NotSubscribedError`.
        """
        if self._session is None:
            raise NotSubscribedError("The driver is not running")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if call_type != "SUBSCRIBE" and self._stream_id is not None:
            headers["Mesos-Stream-Id"] = self._stream_id
        for _ in range(self._max_redirects + 1):
            if self._master is None:
                raise NotSubscribedError(f"Cannot send {call_type}: no leading master known")
            response = await self._session.post(
                f"http://{self._master}{API_PATH}",
                data=body,
                headers=headers,
                auth=self._auth,
                allow_redirects=False,
            )
            if response.status not in _REDIRECTS:
                return response
            location = response.headers.get("Location", "")
            response.release()
            leader = _leader_from_location(location)
            log.info("Master %s redirected %s to %s", self._master, call_type, leader)
            previous, self._master = self._master, leader
            if call_type != "SUBSCRIBE":
                reason = f"master {previous} no longer leads (it redirected {call_type} to {leader})"
                self._drop(reason)
                raise NotSubscribedError(f"Cannot send {call_type}: {reason}; re-subscribing")
        raise SchedulerError(f"{call_type}: more than {self._max_redirects} redirects")

    async def call(self, call_type: str, payload: Mapping[str, Any] | None = None) -> bytes:
        """Send one call (``{"type", "framework_id", "<type>": payload}``); return the body.

        Raises :class:`NotSubscribedError` without a live subscription (or when the
        master turns out not to lead: the driver then re-subscribes at the leader),
        :class:`CallError` on an HTTP status other than 200/202, and aiohttp's
        errors, ``OSError`` or ``TimeoutError`` when the master cannot be reached.
        """
        if self._stream_id is None or self._framework_id is None:
            raise NotSubscribedError(f"Cannot send {call_type}: not subscribed")
        body: dict[str, Any] = {"type": call_type, "framework_id": {"value": self._framework_id}}
        if payload is not None:
            body[call_type.lower()] = payload
        try:
            async with asyncio.timeout(self._call_timeout):
                response = await self._post(_json_encode(body), call_type)
                try:
                    data = await response.read()
                finally:
                    response.release()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            # Marks it as the driver's (see _dispatch_event), and says which call.
            exc.add_note(f"{_CALL_NOTE} {call_type} to master {self._master_name}")
            raise
        if response.status == 503:
            # "No leader known": this master does not lead (any more).
            reason = f"master {self._master_name} answered {call_type} with 503"
            self._drop(reason)
            raise NotSubscribedError(f"Cannot send {call_type}: {reason}; re-subscribing")
        if response.status not in (200, 202):
            raise CallError(call_type, response.status, data.decode("utf-8", "replace"))
        return data

    # ------------------------------------------------------------------ calls

    async def accept(
        self,
        offer_ids: Iterable[IdLike],
        operations: Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """ACCEPT offers with ``Offer.Operation``s; unused resources are declined with ``filters``."""
        payload: dict[str, Any] = {
            "offer_ids": [to_id(o) for o in offer_ids],
            "operations": [dict(op) for op in operations],
        }
        if filters is not None:
            payload["filters"] = dict(filters)
        await self.call("ACCEPT", payload)

    async def launch(
        self,
        offer_ids: Iterable[IdLike],
        task_infos: Sequence[Mapping[str, Any]],
        filters: Mapping[str, Any] | None = None,
    ) -> None:
        """ACCEPT with one LAUNCH operation for ``task_infos``."""
        await self.accept(offer_ids, [launch_operation(task_infos)], filters)

    async def decline(
        self, offer_ids: Iterable[IdLike], filters: Mapping[str, Any] | None = None
    ) -> None:
        """DECLINE offers; ``filters`` e.g. ``{"refuse_seconds": 60}`` (Mesos default 5)."""
        payload: dict[str, Any] = {"offer_ids": [to_id(o) for o in offer_ids]}
        if filters is not None:
            payload["filters"] = dict(filters)
        await self.call("DECLINE", payload)

    async def revive(self, roles: Sequence[str] | None = None) -> None:
        """REVIVE offers (all roles unless given) and clear decline filters."""
        await self.call("REVIVE", {"roles": list(roles)} if roles else None)

    async def suppress(self, roles: Sequence[str] | None = None) -> None:
        """SUPPRESS offers (all roles unless given)."""
        await self.call("SUPPRESS", {"roles": list(roles)} if roles else None)

    async def kill(
        self,
        task_id: IdLike,
        agent_id: IdLike | None = None,
        kill_policy: Mapping[str, Any] | None = None,
    ) -> None:
        """KILL a task."""
        payload: dict[str, Any] = {"task_id": to_id(task_id)}
        if agent_id is not None:
            payload["agent_id"] = to_id(agent_id)
        if kill_policy is not None:
            payload["kill_policy"] = dict(kill_policy)
        await self.call("KILL", payload)

    async def shutdown(self, executor_id: IdLike, agent_id: IdLike) -> None:
        """SHUTDOWN an executor."""
        await self.call(
            "SHUTDOWN", {"executor_id": to_id(executor_id), "agent_id": to_id(agent_id)}
        )

    async def acknowledge(self, agent_id: IdLike, task_id: IdLike, uuid: str) -> None:
        """ACKNOWLEDGE a status update; ``uuid`` is the update's base64 ``uuid``."""
        await self.call(
            "ACKNOWLEDGE",
            {"agent_id": to_id(agent_id), "task_id": to_id(task_id), "uuid": uuid},
        )

    async def acknowledge_update(self, status: Mapping[str, Any]) -> None:
        """ACKNOWLEDGE a ``TaskStatus`` (no-op for master-generated updates without uuid)."""
        uuid = status.get("uuid")
        if not uuid:
            return
        await self.acknowledge(status["agent_id"], status["task_id"], str(uuid))

    async def reconcile(self, tasks: Iterable[IdLike | tuple[IdLike, IdLike | None]] = ()) -> None:
        """RECONCILE tasks (``task_id`` or ``(task_id, agent_id)``); none = all known tasks."""
        items: list[dict[str, Any]] = []
        for task in tasks:
            if isinstance(task, tuple):
                task_id, agent_id = task
                item = {"task_id": to_id(task_id)}
                if agent_id is not None:
                    item["agent_id"] = to_id(agent_id)
            else:
                item = {"task_id": to_id(task)}
            items.append(item)
        await self.call("RECONCILE", {"tasks": items})

    async def message(self, agent_id: IdLike, executor_id: IdLike, data: bytes) -> None:
        """MESSAGE an executor (best effort)."""
        await self.call(
            "MESSAGE",
            {
                "agent_id": to_id(agent_id),
                "executor_id": to_id(executor_id),
                "data": base64.b64encode(data).decode("ascii"),
            },
        )

    async def request(self, requests: Sequence[Mapping[str, Any]]) -> None:
        """REQUEST resources (``[{agent_id?, resources}]``; the built-in allocator ignores it)."""
        await self.call("REQUEST", {"requests": [dict(r) for r in requests]})

    async def teardown(self) -> None:
        """TEARDOWN the framework (kills its tasks) and stop the driver."""
        # Mark the end first: the master closes the stream once the call lands,
        # and that must not look like a stream loss to reconnect from.
        self._tearing_down = True
        call = asyncio.ensure_future(self.call("TEARDOWN"))
        call.add_done_callback(_retrieve)  # read here, unless our caller was cancelled
        self._teardown_call = call  # run() lets it finish before closing the session
        try:
            await asyncio.shield(call)
        except aiohttp.ServerDisconnectedError:
            # The request went out and the connection closed unanswered. If our stream
            # was closed cleanly too, the master removed the framework: done.
            if not await self._closed_by_master():
                self._tearing_down = False
                raise
            log.info("TEARDOWN: the master closed the connection after closing our "
                     "stream; the framework is removed")
        except BaseException:
            self._tearing_down = False
            raise
        finally:
            self._teardown_call = None
        await self.stop()

    async def _closed_by_master(self) -> bool:
        """Whether the live stream ends (within ``call_timeout``) with a clean close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stream_done.wait(), self._call_timeout)
        return self._stream_done.is_set() and self._closed_cleanly

    async def update_framework(
        self,
        framework_info: Mapping[str, Any] | None = None,
        suppressed_roles: Sequence[str] | None = None,
    ) -> None:
        """UPDATE_FRAMEWORK; the new info (and roles) also apply to later re-subscriptions."""
        if framework_info is not None:
            info = dict(framework_info)
            info.pop("id", None)
            info.setdefault("user", self._framework_info.get("user", ""))
            self._framework_info = info
        if suppressed_roles is not None:
            self._suppressed_roles = list(suppressed_roles)
        payload: dict[str, Any] = {"framework_info": self.framework_info}
        if self._suppressed_roles:
            payload["suppressed_roles"] = list(self._suppressed_roles)
        await self.call("UPDATE_FRAMEWORK", payload)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (its owner reports it, or has gone)."""
    if not future.cancelled():
        future.exception()


async def _read_text(response: aiohttp.ClientResponse) -> str:
    try:
        return (await response.read()).decode("utf-8", "replace")
    except (aiohttp.ClientError, OSError):
        return ""
