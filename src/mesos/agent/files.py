"""``/files/browse``, ``/files/read``, ``/files/download``: sandboxes over HTTP.

Only sandboxes are served: what lies in some
``<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<exec>/runs/<container>``. A
request names either a real path (``/tmp/w/slaves/<id>/frameworks/.../runs/<container>/stdout``)
or the virtual path Mesos attaches for every executor,
``/frameworks/<fw>/executors/<exec>/runs/latest`` (or ``runs/<container>``), plus a
suffix. Symlinks are resolved before the check, so ``..`` and links cannot leave the
sandboxes (403); a link from one sandbox into another is followed. Missing files are
404; a missing ``path``, a NUL in it or a bad number 400; reading or downloading
anything but a regular file (a directory, a FIFO, ...) 400. File system work runs in
a thread, never on the event loop. The answers' shapes and the checks that do not
depend on sandboxes are shared with the master (:mod:`mesos.http.files`).
"""

from __future__ import annotations

import asyncio
import os
import re

from aiohttp import web

from mesos.agent import paths
from mesos.agent.keys import AGENT
from mesos.http import responses
from mesos.http.files import (
    FilesError,
    dir_entries,
    error_response,
    json_response,
    listing,
    parse_int,
    read_file,
    require_regular,
)

# FilesError, dir_entries and read_file are re-exported: the v1 operator API
# (mesos.agent.api_v1) reaches them through this module next to resolve().
__all__ = ["FilesError", "browse", "debug", "dir_entries", "download", "in_sandbox", "read",
           "read_file", "resolve"]

_VIRTUAL = re.compile(r"^/frameworks/([^/]+)/executors/([^/]+)/runs/([^/]+)(/.*)?$")


def resolve(work_dir: str, agent_id: str | None, path: str) -> str:
    """The real, canonical path for a requested one; FilesError if refused."""
    if not path:
        raise FilesError(400, "Expecting 'path=value' in query.")
    if "\x00" in path:
        raise FilesError(400, "Expecting 'path' without NUL bytes.")
    match = _VIRTUAL.match(path.rstrip("/") or "/")
    if match is not None:
        if agent_id is None:
            raise FilesError(404, f"'{path}' not found")
        fw, ex, run, rest = match.groups()
        base = os.path.join(paths.executor_dir(work_dir, agent_id, fw, ex), "runs", run)
        candidate = base + (rest or "")
    elif os.path.isabs(path):
        candidate = path
    else:
        raise FilesError(404, f"'{path}' not found")
    root = os.path.realpath(work_dir)
    real = os.path.realpath(candidate)
    if not in_sandbox(root, real):
        raise FilesError(403, f"'{path}' is inaccessible")
    if not os.path.exists(real):
        raise FilesError(404, f"'{path}' not found")
    return real


def in_sandbox(root: str, real: str) -> bool:
    """Whether ``real`` is a run directory ``slaves/*/frameworks/*/executors/*/runs/*``
    under ``root`` or lies inside one (both canonical paths)."""
    prefix = root.rstrip(os.sep) + os.sep
    if not real.startswith(prefix):
        return False
    parts = real[len(prefix):].split(os.sep)
    return len(parts) >= 8 and (parts[0], parts[2], parts[4], parts[6]) == (
        "slaves", "frameworks", "executors", "runs")


async def _resolve_request(request: web.Request) -> str:
    agent = request.app[AGENT]
    return await asyncio.to_thread(
        resolve, agent.core.config.work_dir, agent.core.agent_id, request.query.get("path", ""))


async def browse(request: web.Request) -> web.Response:
    try:
        real = await _resolve_request(request)
        entries = await asyncio.to_thread(listing, real, request.query["path"].rstrip("/"))
    except FilesError as exc:
        return error_response(exc)
    except OSError as exc:
        return responses.text(500, f"Failed to browse: {exc.strerror or exc}")
    return json_response(request, entries)


async def read(request: web.Request) -> web.Response:
    try:
        offset = parse_int(request, "offset")
        length = parse_int(request, "length")
        real = await _resolve_request(request)
        data, offset = await asyncio.to_thread(read_file, real, offset, length)
    except FilesError as exc:
        return error_response(exc)
    except OSError as exc:
        return responses.text(500, f"Failed to read file: {exc.strerror or exc}")
    return json_response(request, {"data": data.decode("utf-8", errors="replace"), "offset": offset})


async def download(request: web.Request) -> web.StreamResponse:
    try:
        real = await _resolve_request(request)
        mode = (await asyncio.to_thread(os.stat, real)).st_mode
        require_regular(mode, "download")
    except FilesError as exc:
        return error_response(exc)
    except OSError as exc:
        return responses.text(500, f"Failed to download file: {exc.strerror or exc}")
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"attachment; filename={os.path.basename(real)}",
    }
    return web.FileResponse(real, headers=headers)


async def debug(request: web.Request) -> web.Response:
    """The virtual path map (Mesos' ``/files/debug``)."""
    agent = request.app[AGENT]
    out: dict[str, str] = {}
    for executor in agent.core.executors():
        out[paths.virtual_sandbox_path(executor.framework_id, executor.id)] = executor.directory
        out[executor.directory] = executor.directory
    return json_response(request, out)
