"""The agent's link to the master over a real socket: back-off after a master that dies.

A master killed mid-stream ends the agent's event stream with a transfer error rather
than a clean end. The session it had accepted must still count as a success, so the
agent's next SUBSCRIBE waits one back-off step, not a doubled one. Before the fix every
failover doubled the wait (1, 2, 4, 8 ... seconds) until the one-minute cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest
from aiohttp import web

from mesos.agent.master_link import MasterLink, call
from mesos.v1 import codec, recordio

pytestmark = pytest.mark.slow

FACTOR = 0.05
SUBSCRIBED = {"type": "SUBSCRIBED", "subscribed": {"agent_id": {"value": "S0"}}}


class DyingMaster:
    """Accepts each SUBSCRIBE, sends SUBSCRIBED, then drops the connection mid-stream."""

    def __init__(self) -> None:
        self.subscriptions = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.subscriptions += 1
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Mesos-Stream-Id": f"s{self.subscriptions}"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(recordio.encode(codec.encode(SUBSCRIBED)))
        await asyncio.sleep(0.05)
        if request.transport is not None:  # None once the agent itself has gone
            request.transport.abort()  # no terminating chunk: the client sees an error
        return response


async def test_a_master_dying_mid_stream_does_not_grow_the_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    master = DyingMaster()
    app = web.Application()
    app.router.add_post("/api/v1/internal/agent", master.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    disconnects: list[int] = []
    link = MasterLink(f"127.0.0.1:{port}", subscribe_call=lambda: call("SUBSCRIBE", None),
                      on_event=lambda event: None,
                      on_disconnected=lambda: disconnects.append(1),
                      backoff_factor=FACTOR)
    caplog.set_level(logging.INFO, logger="mesos.agent")
    running = asyncio.get_running_loop().create_task(link.run())
    try:
        for _ in range(200):  # at most 10 s
            if master.subscriptions >= 5:
                break
            await asyncio.sleep(0.05)
    finally:
        link.stop()
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
        await runner.cleanup()
    assert master.subscriptions >= 5, "the agent stopped re-subscribing"
    assert len(disconnects) >= 4
    delays = [float(m.group(1)) for r in caplog.records
              if (m := re.search(r"Re-subscribing with the master in ([0-9.]+)s", r.getMessage()))]
    assert len(delays) >= 4, delays
    # Every accepted session resets the back-off: each wait is the first step (factor times
    # a jitter in [0.5, 1]), never the doubled steps that failed attempts earn.
    assert all(d <= FACTOR + 0.005 for d in delays), delays
