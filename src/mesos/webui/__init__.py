"""The web UI: static files the master serves at ``/`` and ``/static/...``.

There is no build step: ``static/`` holds plain HTML, CSS and ES modules that run as
they are in a browser. The UI reads the master's own endpoints (same origin) and
reaches agents directly with JSONP, which their JSON endpoints already answer, so
no proxy and no CORS header is needed. See ``docs/webui.md``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["STATIC_DIR", "add_routes"]

STATIC_DIR = Path(__file__).parent / "static"


async def _index(request: web.Request) -> web.FileResponse:
    # no-cache: a browser revalidates, so an upgraded master is never paired with an old UI.
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    """Serve the UI's page at ``/`` and its assets under ``/static/``.

    Refuses, loudly, an app that already routes ``/``: aiohttp would otherwise keep
    whichever route came first and one of the two pages would silently never show.
    """
    for resource in app.router.resources():
        if resource.canonical in ("/", "/static"):
            raise RuntimeError(f"{resource.canonical!r} is already routed; "
                               "the web UI needs it (remove the other route)")
    app.router.add_get("/", _index, name="webui-index")
    app.router.add_static("/static", STATIC_DIR, name="webui-static", append_version=False)
