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
a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import re
import stat
from typing import Any

from aiohttp import web

from mesos.agent import paths
from mesos.agent.keys import AGENT
from mesos.http import responses

__all__ = ["browse", "dir_entries", "download", "error_response", "in_sandbox", "json_response",
           "listing", "owner", "parse_int", "read", "read_file", "resolve"]

_VIRTUAL = re.compile(r"^/frameworks/([^/]+)/executors/([^/]+)/runs/([^/]+)(/.*)?$")
# Mesos caps one read at 16 pages.
MAX_READ = os.sysconf("SC_PAGESIZE") * 16 if hasattr(os, "sysconf") else 65536


class FilesError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def json_response(request: web.Request, data: Any) -> web.Response:
    """JSON, or ``callback(JSON);`` with ``?jsonp=callback``."""
    text = json.dumps(data, separators=(",", ":"))
    callback = request.query.get("jsonp")
    if callback:
        return web.Response(text=f"{callback}({text});", content_type="text/javascript")
    return web.Response(text=text, content_type="application/json")


async def _resolve_request(request: web.Request) -> str:
    agent = request.app[AGENT]
    return await asyncio.to_thread(
        resolve, agent.core.config.work_dir, agent.core.agent_id, request.query.get("path", ""))


def error_response(exc: FilesError) -> web.Response:
    return responses.text(exc.status, str(exc) + ("\n" if exc.status == 400 else ""))


def _name(lookup: Any, ident: int) -> str:
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)


def owner(st: os.stat_result) -> tuple[str, str]:
    """The user and group names of a file (the numbers when unknown)."""
    return _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)


def file_info(virtual_path: str, st: os.stat_result) -> dict[str, Any]:
    """One entry of a listing, as Mesos' ``jsonFileInfo``."""
    uid, gid = owner(st)
    return {
        "path": virtual_path,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "mtime": int(st.st_mtime),
        "mode": stat.filemode(st.st_mode),
        "uid": uid,
        "gid": gid,
    }


def dir_entries(real: str, requested: str) -> list[tuple[str, os.stat_result]]:
    """``(path under requested, stat)`` of each entry of the directory ``real``, by
    name; empty when ``real`` is not a directory (blocking). Shared with the v1 API."""
    out: list[tuple[str, os.stat_result]] = []
    if os.path.isdir(real):
        for name in sorted(os.listdir(real)):
            try:
                st = os.stat(os.path.join(real, name))
            except OSError:
                continue
            out.append((f"{requested}/{name}", st))
    return out


def listing(real: str, requested: str) -> list[dict[str, Any]]:
    """The entries of the directory ``real``, named under ``requested`` (blocking)."""
    return [file_info(path, st) for path, st in dir_entries(real, requested)]


async def browse(request: web.Request) -> web.Response:
    try:
        real = await _resolve_request(request)
        entries = await asyncio.to_thread(listing, real, request.query["path"].rstrip("/"))
    except FilesError as exc:
        return error_response(exc)
    except OSError as exc:
        return responses.text(500, f"Failed to browse: {exc.strerror or exc}")
    return json_response(request, entries)


def parse_int(request: web.Request, name: str) -> int:
    """``offset``/``length``: -1 when absent; FilesError 400 when not a number >= -1."""
    raw = request.query.get(name)
    if raw is None:
        return -1
    try:
        value = int(raw)
    except ValueError:
        raise FilesError(400, f"Failed to parse {name}: Failed to convert '{raw}' to number.") from None
    if value < -1:
        raise FilesError(400, f"Negative {name} provided: {value}.")
    return value


def _require_regular(mode: int, verb: str) -> None:
    if stat.S_ISDIR(mode):
        raise FilesError(400, f"Cannot {verb} a directory.")
    if not stat.S_ISREG(mode):
        raise FilesError(400, f"Cannot {verb} a file that is not a regular file.")


def read_file(real: str, offset: int, length: int) -> tuple[bytes, int]:
    """``(data, offset)`` as ``/files/read`` answers (blocking; never waits on a FIFO)."""
    _require_regular(os.stat(real).st_mode, "read")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)  # what was opened, should the path have changed meanwhile
        _require_regular(st.st_mode, "read")
        if offset == -1 or offset >= st.st_size:
            return b"", st.st_size
        if length == -1:
            length = st.st_size - offset
        return os.pread(fd, min(length, MAX_READ), offset), offset
    finally:
        os.close(fd)


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
        _require_regular(mode, "download")
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
