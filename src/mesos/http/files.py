"""What the master's and the agent's ``/files`` share: answers, checks, listings, reads.

Each daemon decides which paths it serves (the agent its sandboxes,
:mod:`mesos.agent.files`; the master its attached log, :mod:`mesos.master.files`);
the shapes of the answers and the errors are the same on both, so they live here
rather than in either daemon's package. The helpers that touch the file system are
blocking: callers run them in a thread.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
from typing import Any

from aiohttp import web

from mesos.http import responses

__all__ = ["MAX_READ", "FilesError", "dir_entries", "error_response", "file_info",
           "file_info_v1", "json_response", "listing", "owner", "parse_int", "read_file",
           "require_regular"]

# Mesos caps one read at 16 pages.
MAX_READ = os.sysconf("SC_PAGESIZE") * 16 if hasattr(os, "sysconf") else 65536


class FilesError(Exception):
    """A refused files request; ``status`` is the HTTP status it answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def json_response(request: web.Request, data: Any) -> web.Response:
    """JSON, or ``callback(JSON);`` with ``?jsonp=callback``."""
    text = json.dumps(data, separators=(",", ":"))
    callback = request.query.get("jsonp")
    if callback:
        return web.Response(text=f"{callback}({text});", content_type="text/javascript")
    return web.Response(text=text, content_type="application/json")


def error_response(exc: FilesError) -> web.Response:
    """The plain-text answer for a refusal (Mesos ends its 400 messages with a newline)."""
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
    """One entry of a legacy ``/files/browse`` listing, as Mesos' ``jsonFileInfo``."""
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


def file_info_v1(virtual_path: str, st: os.stat_result) -> dict[str, Any]:
    """One LIST_FILES entry (v1 ``FileInfo``: mtime in nanoseconds, numeric mode)."""
    return {**file_info(virtual_path, st), "mtime": {"nanoseconds": st.st_mtime_ns},
            "mode": st.st_mode}


def dir_entries(real: str, requested: str) -> list[tuple[str, os.stat_result]]:
    """``(path under requested, stat)`` of each entry of the directory ``real``, by
    name; empty when ``real`` is not a directory (blocking)."""
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


def require_regular(mode: int, verb: str) -> None:
    """FilesError 400 unless ``mode`` is a regular file's: directories, FIFOs and
    devices are never read or downloaded."""
    if stat.S_ISDIR(mode):
        raise FilesError(400, f"Cannot {verb} a directory.")
    if not stat.S_ISREG(mode):
        raise FilesError(400, f"Cannot {verb} a file that is not a regular file.")


def read_file(real: str, offset: int, length: int) -> tuple[bytes, int]:
    """``(data, offset)`` as ``/files/read`` answers (blocking; never waits on a FIFO)."""
    require_regular(os.stat(real).st_mode, "read")
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)  # what was opened, should the path have changed meanwhile
        require_regular(st.st_mode, "read")
        if offset == -1 or offset >= st.st_size:
            return b"", st.st_size
        if length == -1:
            length = st.st_size - offset
        return os.pread(fd, min(length, MAX_READ), offset), offset
    finally:
        os.close(fd)
