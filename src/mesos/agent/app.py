"""The agent's HTTP surface: routes, and the serve loop of ``mesos-agent``.

Every endpoint is reachable both bare (``/state``) and under the agent's libprocess
id (``/slave(1)/state``), as in Mesos.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from mesos.agent import api_operator, api_v1, files
from mesos.agent.api_executor import executor_api
from mesos.agent.keys import AGENT
from mesos.agent.service import Agent

log = logging.getLogger("mesos.agent")

PREFIXES = ("", "/slave(1)")


def build_app(agent: Agent) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[AGENT] = agent
    r = app.router
    for prefix in PREFIXES:
        r.add_route("*", f"{prefix}/api/v1/executor", executor_api)
        for path, handler in (
            ("state", api_operator.state), ("state.json", api_operator.state),
            ("flags", api_operator.flags), ("health", api_operator.health),
        ):
            r.add_get(f"{prefix}/{path}", handler)
    r.add_get("/metrics/snapshot", api_operator.metrics)
    r.add_get("/version", api_operator.version)
    r.add_get("/monitor/statistics", api_operator.monitor_statistics)
    for prefix in PREFIXES:
        r.add_get(f"{prefix}/containers", api_operator.containers)
    r.add_get("/monitor/statistics.json", api_operator.monitor_statistics)
    r.add_get("/files/browse", files.browse)
    r.add_get("/files/browse.json", files.browse)
    r.add_get("/files/read", files.read)
    r.add_get("/files/read.json", files.read)
    r.add_get("/files/download", files.download)
    r.add_get("/files/download.json", files.download)
    r.add_get("/files/debug", files.debug)
    api_v1.add_routes(app)
    return app


async def serve(agent: Agent) -> None:
    """Listen, talk to the master, and on SIGTERM/SIGINT shut executors down and exit."""
    app = build_app(agent)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, agent.flags.ip, agent.flags.port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("Agent %s listening on http://%s:%s", agent.pid, agent.flags.ip, agent.flags.port)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.stopping.set)
    try:
        await agent.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
