"""The one long-lived stream: a subscriber's RecordIO event feed over chunked HTTP.

Schedulers, executors, agents and operators all subscribe the same way: they POST a
SUBSCRIBE call and keep reading a ``200 OK`` chunked body of RecordIO records. The
owner of the state (master or agent core) never awaits a socket: it calls
:meth:`EventStream.send`, which only queues bytes, and the request handler that
created the stream drains the queue in :meth:`EventStream.run`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from aiohttp import web

from mesos.v1 import recordio

log = logging.getLogger(__name__)

# How often idle streams are checked for a client that went away. aiohttp does not
# cancel handlers on disconnect, so one sweeper per event loop looks at every open
# stream's transport and wakes the ones whose client left. (A timed wait in each
# stream instead cost 2 wake-ups a second per stream: 20,000 a second on a master
# with 10,000 agents, which kept its loop busy while idle.)
_LIVENESS_POLL_SECONDS = 0.5


class _Sweeper:
    """Wakes idle streams whose client disconnected; one per event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.streams: set[EventStream] = set()
        self.loop = loop
        self.task: asyncio.Task[None] | None = None

    def add(self, stream: EventStream) -> None:
        self.streams.add(stream)
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self._sweep())

    def discard(self, stream: EventStream) -> None:
        self.streams.discard(stream)

    async def _sweep(self) -> None:
        while self.streams:
            await asyncio.sleep(_LIVENESS_POLL_SECONDS)
            for stream in list(self.streams):
                if stream._client_gone():
                    stream._wakeup.set()


_sweepers: dict[asyncio.AbstractEventLoop, _Sweeper] = {}


def _sweeper() -> _Sweeper:
    loop = asyncio.get_running_loop()
    sweeper = _sweepers.get(loop)
    if sweeper is None:
        for old in [k for k in _sweepers if k.is_closed()]:
            del _sweepers[old]
        sweeper = _sweepers[loop] = _Sweeper(loop)
    return sweeper


class EventStream:
    """A queue of events written, in order, to one subscriber's chunked response."""

    def __init__(
        self,
        request: web.Request,
        *,
        stream_id: str | None = None,
        content_type: str = "application/json",
        heartbeat: bytes | None = None,
        heartbeat_interval: float | None = None,
        on_close: Callable[[EventStream], None] | None = None,
    ) -> None:
        self.request = request
        self.stream_id = stream_id
        self.content_type = content_type
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._on_close = on_close
        self._queue: collections.deque[bytes] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._response: web.StreamResponse | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, event: bytes) -> None:
        """Queue one encoded event (JSON bytes); never blocks. Dropped once closed."""
        if self._closed:
            return
        self._queue.append(recordio.encode(event))
        self._wakeup.set()

    def close(self) -> None:
        """Finish the stream after what is already queued has been written."""
        if not self._closed:
            self._closed = True
            self._wakeup.set()

    async def prepare(self) -> web.StreamResponse:
        headers = {"Content-Type": self.content_type, "Cache-Control": "no-cache"}
        if self.stream_id is not None:
            headers["Mesos-Stream-Id"] = self.stream_id
        response = web.StreamResponse(status=200, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(self.request)
        self._response = response
        return response

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def run(self) -> web.StreamResponse:
        """Write queued events until closed or the client disconnects."""
        response = self._response or await self.prepare()
        next_heartbeat = (
            time.monotonic() + self._heartbeat_interval if self._heartbeat_interval else None
        )
        sweeper = _sweeper()
        sweeper.add(self)
        try:
            while True:
                if self._queue:
                    chunk = b"".join(self._queue)
                    self._queue.clear()
                    await response.write(chunk)
                    continue
                if self._closed:
                    break
                if self._client_gone():
                    break
                timeout: float | None = None  # the sweeper wakes us if the client left
                if next_heartbeat is not None:
                    now = time.monotonic()
                    if now >= next_heartbeat and self._heartbeat is not None:
                        self.send(self._heartbeat)
                        assert self._heartbeat_interval is not None
                        next_heartbeat = now + self._heartbeat_interval
                        continue
                    timeout = max(0.0, next_heartbeat - now)
                self._wakeup.clear()
                if timeout is None:
                    await self._wakeup.wait()
                    continue
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout)
                except TimeoutError:
                    pass
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError) as exc:
            log.debug("Stream %s ended: %r", self.stream_id, exc)
            sweeper.discard(self)
            self._finish()
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        sweeper.discard(self)
        self._finish()
        try:
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        return response

    def _finish(self) -> None:
        self._closed = True
        self._queue.clear()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback(self)
