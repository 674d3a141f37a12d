"""The master's HTTP surface: routes, legacy endpoints, and the serve loop.

A master elected in ZooKeeper (:mod:`mesos.master.leader`) serves two apps in turn on
one listening socket: :func:`build_standby_app` while another master leads (calls are
redirected to the leader, 503 when none is known), then :func:`build_app` with a gate
that refuses every call the moment its leadership is in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mesos import webui
from mesos.http import responses
from mesos.http.keys import MASTER
from mesos.master import files, state_builder, views
from mesos.master.api_agent import agent_api
from mesos.master.api_operator import (
    legacy_create_volumes,
    legacy_destroy_volumes,
    legacy_machine_down,
    legacy_machine_up,
    legacy_prometheus,
    legacy_quota,
    legacy_reserve,
    legacy_roles,
    legacy_schedule,
    legacy_status,
    legacy_teardown,
    legacy_unreserve,
    legacy_weights,
    operator_api,
)
from mesos.master.api_scheduler import scheduler_api
from mesos.master.service import Master
from mesos.v1.mesos import MasterInfo

if TYPE_CHECKING:
    from mesos.master.leader import Standby

log = logging.getLogger("mesos.master")


def _json(request: web.Request, data: Any, status: int = 200) -> web.Response:
    text = json.dumps(data, separators=(",", ":"))
    callback = request.query.get("jsonp")
    if callback:
        return web.Response(status=status, text=f"{callback}({text});",
                            content_type="text/javascript")
    return web.Response(status=status, text=text, content_type="application/json")


async def state(request: web.Request) -> web.Response:
    # Built a slice at a time, so the master keeps answering meanwhile (issue 7).
    body = await state_builder.state_json(request.app[MASTER])
    return state_builder.json_response(request, body)


async def _encode_changed_tasks(app: web.Application) -> AsyncIterator[None]:
    """While the app is served, encode changed tasks for the state views in the
    background (:func:`state_builder.warm_forever`), so that even the first
    /master/state after a failover does not encode 100,000 tasks while it waits."""
    warmer = asyncio.create_task(state_builder.warm_forever(app[MASTER]))
    yield
    warmer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warmer


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


# Answered by any master, leading or not (Mesos: health, flags, version, metrics).
LOCAL_PATHS = frozenset({
    "/health", "/master/health", "/flags", "/master/flags", "/version", "/metrics/snapshot",
})
_REDIRECT_PATHS = frozenset({"/redirect", "/master/redirect"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def leader_address(info: MasterInfo) -> str:
    """``host:port`` of a leader from its MasterInfo (hostname, else its IP)."""
    host = info.hostname or (info.address.ip if info.address and info.address.ip else None)
    if not host and info.pid:
        host = info.pid.rpartition("@")[2].rpartition(":")[0]
    return f"{host}:{info.port}"


def redirect_to_leader(request: web.Request, leader: MasterInfo | None) -> web.Response:
    """307 to the leader, path and query kept (``/master/redirect``: the leader's root);
    503 ``No leader elected`` when none is known."""
    if leader is None:
        return responses.text(503, "No leader elected")
    path = "" if request.path in _REDIRECT_PATHS else request.raw_path
    return web.Response(status=307, headers={"Location": f"//{leader_address(leader)}{path}"})


def leadership_gate(leading: Callable[[], bool]) -> Any:
    """Middleware of an elected master: once ``leading()`` is False (its ZooKeeper
    connection is in doubt; the process is about to exit) nothing but the local
    endpoints is answered, so no call is acknowledged by a master that may have a
    successor."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in LOCAL_PATHS and not leading():
            return responses.text(503, "This master is no longer the leader")
        return await handler(request)

    return gate


def build_app(master: Master, *, leading: Callable[[], bool] | None = None) -> web.Application:
    middlewares = [leadership_gate(leading)] if leading is not None else []
    app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=middlewares)
    app[MASTER] = master
    app.cleanup_ctx.append(_encode_changed_tasks)
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
        r.add_route("GET", f"{prefix}/quota", legacy_quota)
        r.add_route("POST", f"{prefix}/quota", legacy_quota)
        r.add_route("DELETE", f"{prefix}/quota/{{role}}", legacy_quota)
        r.add_post(f"{prefix}/teardown", legacy_teardown)
        r.add_route("GET", f"{prefix}/maintenance/schedule", legacy_schedule)
        r.add_route("POST", f"{prefix}/maintenance/schedule", legacy_schedule)
        r.add_get(f"{prefix}/maintenance/status", legacy_status)
        r.add_get(f"{prefix}/roles", legacy_roles)
        r.add_post(f"{prefix}/machine/down", legacy_machine_down)
        r.add_post(f"{prefix}/machine/up", legacy_machine_up)
        r.add_post(f"{prefix}/reserve", legacy_reserve)
        r.add_post(f"{prefix}/unreserve", legacy_unreserve)
        r.add_post(f"{prefix}/create-volumes", legacy_create_volumes)
        r.add_post(f"{prefix}/destroy-volumes", legacy_destroy_volumes)
    file_handlers: tuple[tuple[str, Handler], ...] = (
        ("browse", files.browse), ("read", files.read), ("download", files.download))
    for name, file_handler in file_handlers:
        r.add_get(f"/files/{name}", file_handler)
        r.add_get(f"/files/{name}.json", file_handler)
    r.add_get("/metrics/snapshot", metrics)
    r.add_get("/metrics/prometheus", legacy_prometheus)
    r.add_get("/version", version)
    webui.add_routes(app)  # the web UI at / and its assets under /static
    return app


def build_standby_app(standby: Standby) -> web.Application:
    """The app of a master that does not lead: its own health, flags, version, metrics
    and /state (saying who leads); every other path is redirected to the leader."""

    async def standby_state(request: web.Request) -> web.Response:
        return _json(request, views.standby_state(standby))

    async def standby_metrics(request: web.Request) -> web.Response:
        return _json(request, views.standby_metrics(standby))

    async def standby_flags(request: web.Request) -> web.Response:
        return _json(request, {"flags": standby.flags.as_dict()})

    async def elsewhere(request: web.Request) -> web.Response:
        leader = standby.leader()
        if leader is not None and leader.id == standby.info["id"]:
            # Elected, still recovering the registry: a redirect would point at itself.
            return responses.text(503, "Master has not finished recovery")
        return redirect_to_leader(request, leader)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    r = app.router
    for prefix in ("", "/master"):
        r.add_get(f"{prefix}/health", health)
        r.add_get(f"{prefix}/flags", standby_flags)
        r.add_get(f"{prefix}/state", standby_state)
        r.add_get(f"{prefix}/state.json", standby_state)
    r.add_get("/metrics/snapshot", standby_metrics)
    r.add_get("/version", version)
    r.add_route("*", "/{tail:.*}", elsewhere)
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
