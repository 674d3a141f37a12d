"""The master's HTTP surface: routes, legacy endpoints, and the serve loop."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

from aiohttp import web

from mesos.http import responses
from mesos.http.keys import MASTER
from mesos.master import views
from mesos.master.api_agent import agent_api
from mesos.master.api_operator import (
    legacy_machine_down,
    legacy_machine_up,
    legacy_prometheus,
    legacy_quota,
    legacy_roles,
    legacy_schedule,
    legacy_status,
    legacy_weights,
    operator_api,
)
from mesos.master.api_scheduler import scheduler_api
from mesos.master.service import Master

log = logging.getLogger("mesos.master")


def _json(request: web.Request, data: Any, status: int = 200) -> web.Response:
    text = json.dumps(data, separators=(",", ":"))
    callback = request.query.get("jsonp")
    if callback:
        return web.Response(status=status, text=f"{callback}({text});",
                            content_type="text/javascript")
    return web.Response(status=status, text=text, content_type="application/json")


async def state(request: web.Request) -> web.Response:
    return _json(request, views.state(request.app[MASTER]))


async def state_summary(request: web.Request) -> web.Response:
    return _json(request, views.state_summary(request.app[MASTER]))


async def frameworks(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    wanted = request.query.get("framework_id")
    active = [views.framework_json(master, f) for f in master.frameworks.values()
              if not wanted or f.id == wanted]
    completed = [views.framework_json(master, f) for f in master.completed_frameworks
                 if not wanted or f.id == wanted]
    return _json(request, {"frameworks": active, "completed_frameworks": completed,
                           "unregistered_frameworks": []})


async def slaves(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    wanted = request.query.get("slave_id")
    items = [views.agent_json(master, a, full=True) for a in master.agents.values()
             if not wanted or a.id == wanted]
    return _json(request, {"slaves": items,
                           "recovered_slaves": views.recovered_agents(master, wanted)})


async def tasks(request: web.Request) -> web.Response:
    try:
        return _json(request, views.tasks(request.app[MASTER], dict(request.query)))
    except ValueError as exc:
        return responses.bad_request(str(exc))


async def metrics(request: web.Request) -> web.Response:
    return _json(request, views.metrics(request.app[MASTER]))


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def version(request: web.Request) -> web.Response:
    return _json(request, views.version())


async def flags(request: web.Request) -> web.Response:
    return _json(request, {"flags": request.app[MASTER].flags.as_dict()})


async def redirect(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    raise web.HTTPTemporaryRedirect(location=f"//{master.hostname}:{master.port}")


async def index(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    body = (
        "<!doctype html><title>Mesos master</title>"
        f"<h1>Mesos master {master.id}</h1>"
        "<ul>"
        + "".join(f'<li><a href="{p}">{p}</a></li>'
                  for p in ("/master/state", "/master/state-summary", "/master/frameworks",
                            "/master/slaves", "/master/tasks", "/metrics/snapshot",
                            "/health", "/version", "/master/flags"))
        + "</ul>"
    )
    return web.Response(text=body, content_type="text/html")


def build_app(master: Master) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[MASTER] = master
    r = app.router
    for prefix in ("", "/master"):
        r.add_route("*", f"{prefix}/api/v1/scheduler", scheduler_api)
    r.add_route("*", "/api/v1/internal/agent", agent_api)
    r.add_route("*", "/master/api/v1/internal/agent", agent_api)
    r.add_route("*", "/api/v1", operator_api)
    r.add_route("*", "/api/v1/{tail:.*}", operator_api)
    for path, handler in (
        ("state", state), ("state.json", state), ("state-summary", state_summary),
        ("frameworks", frameworks), ("slaves", slaves), ("tasks", tasks), ("tasks.json", tasks),
        ("health", health), ("flags", flags), ("redirect", redirect),
    ):
        r.add_get(f"/master/{path}", handler)
        r.add_get(f"/{path}", handler)
    for prefix in ("", "/master"):
        r.add_route("GET", f"{prefix}/weights", legacy_weights)
        r.add_route("PUT", f"{prefix}/weights", legacy_weights)
        r.add_get(f"{prefix}/quota", legacy_quota)
        r.add_route("GET", f"{prefix}/maintenance/schedule", legacy_schedule)
        r.add_route("POST", f"{prefix}/maintenance/schedule", legacy_schedule)
        r.add_get(f"{prefix}/maintenance/status", legacy_status)
        r.add_get(f"{prefix}/roles", legacy_roles)
        r.add_post(f"{prefix}/machine/down", legacy_machine_down)
        r.add_post(f"{prefix}/machine/up", legacy_machine_up)
    r.add_get("/metrics/snapshot", metrics)
    r.add_get("/metrics/prometheus", legacy_prometheus)
    r.add_get("/version", version)
    r.add_get("/", index)
    return app


async def serve(master: Master) -> None:
    app = build_app(master)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, master.flags.ip, master.flags.port, reuse_address=True)
    await site.start()
    master.start()
    log.info("Master listening on http://%s:%s", master.flags.ip, master.flags.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Master shutting down")
    await master.stop()
    await runner.cleanup()
