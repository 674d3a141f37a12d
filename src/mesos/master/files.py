"""The master's files: its log at the virtual path ``/master/log``, as Mesos attaches it.

Served through ``/files/browse``, ``/files/read``, ``/files/download`` (legacy JSON)
and the operator calls LIST_FILES and READ_FILE. Only attached files are served: a
master started without ``--log_dir`` has none, and every path is then 404. The
answers and checks are those both daemons share (:mod:`mesos.http.files`).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

from aiohttp import web

from mesos.http.files import (
    FilesError,
    error_response,
    file_info,
    file_info_v1,
    json_response,
    parse_int,
    read_file,
)
from mesos.http.keys import MASTER

LOG = "/master/log"


def attached(log_dir: str | None, name: str = "mesos-master") -> dict[str, str]:
    """Virtual path -> real file, for what this master serves."""
    if not log_dir:
        return {}
    return {LOG: os.path.join(log_dir, f"{name}.log")}


def resolve(files: dict[str, str], path: str) -> str:
    """The real file behind ``path``; FilesError (400/404) otherwise."""
    if not path:
        raise FilesError(400, "Expecting 'path=value' in query.")
    real = files.get(path.rstrip("/"))
    if real is None or not os.path.isfile(real):
        raise FilesError(404, f"'{path}' not found")
    return real


def _files(request: web.Request) -> dict[str, str]:
    master = request.app[MASTER]
    return attached(master.flags.log_dir)


def entries(files: dict[str, str], path: str) -> list[tuple[str, os.stat_result]]:
    """What ``path`` names: a directory (``/`` or ``/master``) lists the attached
    files, a file is itself; FilesError (400/404) otherwise."""
    if not path:
        raise FilesError(400, "Expecting 'path=value' in query.")
    if path.rstrip("/") in ("", "/master"):
        return [(v, os.stat(r)) for v, r in sorted(files.items()) if os.path.isfile(r)]
    return [(path.rstrip("/"), os.stat(resolve(files, path)))]


async def browse(request: web.Request) -> web.Response:
    try:
        found = entries(_files(request), request.query.get("path", ""))
    except FilesError as exc:
        return error_response(exc)
    return json_response(request, [file_info(v, st) for v, st in found])


async def read(request: web.Request) -> web.Response:
    try:
        offset, length = parse_int(request, "offset"), parse_int(request, "length")
        real = resolve(_files(request), request.query.get("path", ""))
        data, offset = await asyncio.to_thread(read_file, real, offset, length)
    except FilesError as exc:
        return error_response(exc)
    return json_response(request, {"data": data.decode("utf-8", errors="replace"), "offset": offset})


async def download(request: web.Request) -> web.StreamResponse:
    try:
        real = resolve(_files(request), request.query.get("path", ""))
    except FilesError as exc:
        return error_response(exc)
    return web.FileResponse(real, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": f"attachment; filename={os.path.basename(real)}"})


def list_files(master: Any, path: str) -> list[dict[str, Any]]:
    """LIST_FILES' ``file_infos`` (v1 FileInfo: mtime in nanoseconds, numeric mode)."""
    return [file_info_v1(v, st) for v, st in entries(attached(master.flags.log_dir), path)]


async def read_file_call(master: Any, path: str, offset: int, length: int) -> dict[str, Any]:
    """READ_FILE's answer: the file's size and the bytes read, base64."""
    real = resolve(attached(master.flags.log_dir), path)
    size = os.stat(real).st_size
    data, _ = await asyncio.to_thread(read_file, real, offset, length)
    return {"size": size, "data": base64.b64encode(data).decode("ascii")}
