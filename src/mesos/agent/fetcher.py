"""The fetcher: put a CommandInfo's URIs into a sandbox before its executor starts.

Mesos semantics for each ``CommandInfo.URI`` (``value``, ``executable``, ``extract``,
``cache``, ``output_file``):

* ``value`` is ``http://``, ``https://``, ``file:///path`` or an absolute path. Other
  schemes (``hdfs://``, ``s3://``, ``ftp://``) need a Hadoop client or similar that this
  agent does not have: they fail with "unsupported scheme" instead of half-working.
* The file lands in the sandbox as ``output_file`` (relative, no ``..``; may name a
  subdirectory) or, by default, as the last path component of the URI.
* ``executable`` makes it mode 0755 and is never extracted; otherwise ``extract``
  (default true) unpacks ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``,
  ``.tar.xz``/``.txz`` and ``.zip`` next to it, and gunzips a lone ``.gz`` file. The
  archive itself stays, as in Mesos. Members that would land outside the sandbox
  (absolute names, ``..``, links pointing out, writes through such links) make the
  whole fetch fail: the agent runs as root and must not be tricked into writing
  anywhere else.
* ``cache`` keeps the download in a per-agent cache (``--fetcher_cache_dir``, bounded
  by ``--fetcher_cache_size``, least recently used entries evicted first, entries
  being copied never evicted), keyed by (user, URI), and copies it into each sandbox.
  Concurrent fetches of one key download once. A download whose size is unknown or
  larger than the cache (or than what in-use entries leave) goes straight to the
  sandbox with a warning, as Mesos' fallback does.

Everything runs on the agent's event loop: downloads with aiohttp, file work in a
thread. A download that delivers no bytes for ``--fetcher_stall_timeout`` is aborted.
Any failure is a ``FetchError`` naming the URI and the cause, which the agent turns
into TASK_FAILED with REASON_CONTAINER_LAUNCH_FAILED.

When the agent runs as root and the task has a user, everything fetched is chowned
to that user (never following links), so the task can use and delete it. A sandbox
whose path passes through a symbolic link below the agent's work directory is
refused outright: following one planted by a task would write and chown as root
outside any sandbox. (Sandboxes a task's user can already write in are fetched into
by way of a staging directory instead; see ``mesos.agent.group_fetch``.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import logging
import lzma
import os
import posixpath
import pwd
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp

from mesos.agent.fetcher_cache import CacheEntry, FetcherCache
from mesos.flags import Bytes, Duration, Flag, format_duration
from mesos.v1 import mesos as v1

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_CACHE_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "FLAGS",
    "FetchError",
    "FetchResult",
    "Fetcher",
    "archive_kind",
]

log = logging.getLogger(__name__)

DEFAULT_CACHE_SIZE = 2 << 30  # Mesos: 2GB
DEFAULT_CACHE_DIR = "/tmp/mesos/fetch"  # Mesos: <os temp dir>/mesos/fetch
DEFAULT_STALL_TIMEOUT = 60.0  # Mesos: 1mins

# For src/mesos/agent/flags.py: same names and defaults as Mesos' agent flags.
FLAGS: list[Flag] = [
    Flag("fetcher_cache_size", Bytes, "2GB",
         "Size of the fetcher cache (URIs with cache=true); least recently used "
         "entries not in use are evicted to make room."),
    Flag("fetcher_cache_dir", str, DEFAULT_CACHE_DIR,
         "Parent directory of the fetcher cache; each agent uses "
         "<fetcher_cache_dir>/slaves/<agent_id>, wiped when the agent starts."),
    Flag("fetcher_stall_timeout", Duration, "1mins",
         "A URI download that receives no data for this long is aborted and the task "
         "fails."),
]

_CHUNK = 256 * 1024
_SCHEMES = ("http", "https", "file")

# Longest suffix first, so that ".tar.gz" wins over ".gz".
_ARCHIVES: list[tuple[str, str]] = [
    (".tar.gz", "tar"), (".tar.bz2", "tar"), (".tar.xz", "tar"),
    (".tgz", "tar"), (".tbz2", "tar"), (".txz", "tar"), (".tar", "tar"),
    (".zip", "zip"), (".gz", "gz"),
]

CacheOutcome = Literal["off", "hit", "miss", "bypass"]


class FetchError(Exception):
    """A URI could not be fetched; ``str()`` says which and why (for the task status)."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"Failed to fetch '{uri}': {reason}")
        self.uri = uri
        self.reason = reason


class _Refused(Exception):
    """An archive member would escape the sandbox, or the archive has a forbidden member."""


@dataclass(frozen=True)
class FetchResult:
    """What one URI became: its file in the sandbox and how it got there."""

    uri: str
    path: str  # absolute path of the fetched file in the sandbox
    size: int  # bytes of the fetched file (before extraction)
    seconds: float
    cache: CacheOutcome
    extracted: tuple[str, ...] = ()  # absolute paths extraction created


def archive_kind(name: str) -> Literal["tar", "zip", "gz"] | None:
    """What ``extract`` does with a file of this name (``None``: leave it as it is)."""
    low = name.lower()
    for suffix, kind in _ARCHIVES:
        if low.endswith(suffix) and len(low) > len(suffix):
            return kind  # type: ignore[return-value]
    return None


# --------------------------------------------------------------------------- URIs


@dataclass(frozen=True)
class _Location:
    kind: Literal["http", "file"]
    target: str  # the URL, or the local path
    basename: str


def _locate(value: str) -> _Location:
    """Classify a URI value; unsupported forms fail here, before anything is written."""
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in _SCHEMES:
            raise FetchError(
                value, f"unsupported scheme '{scheme}' (supported: http, https, file, "
                "and absolute paths)")
        parts = urlsplit(value)
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise FetchError(value, f"file URI names a remote host '{parts.netloc}'")
            path = unquote(parts.path)
            if not path.startswith("/"):
                raise FetchError(value, "file URI has no absolute path")
            return _Location("file", path, posixpath.basename(path))
        if not parts.hostname:
            raise FetchError(value, "URL has no host")
        return _Location("http", value, unquote(posixpath.basename(parts.path)))
    if value.startswith("/"):
        return _Location("file", value, posixpath.basename(value))
    raise FetchError(value, "relative paths are not supported (give an absolute path or a URL)")


def _output_name(uri: v1.URI, location: _Location) -> str:
    """The sandbox-relative name of the fetched file; refuses names that leave the sandbox."""
    if uri.output_file:
        name = uri.output_file
        if name.startswith("/"):
            raise FetchError(uri.value, f"output_file '{name}' must be relative to the sandbox")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or "\0" in name:
            raise FetchError(uri.value, f"output_file '{name}' must stay inside the sandbox")
        return "/".join(parts)
    base = location.basename
    if base in ("", ".", "..") or "\0" in base:
        raise FetchError(uri.value, "cannot name the file from the URI; set output_file")
    return base


# --------------------------------------------------------------------------- sources


class _Stream(Protocol):
    size: int | None

    async def save(self, path: str) -> int: ...


class _FileStream:
    """A local file: size from stat, copied in a thread."""

    def __init__(self, uri: str, path: str, size: int) -> None:
        self.uri, self.path = uri, path
        self.size: int | None = size

    async def save(self, path: str) -> int:
        try:
            return await asyncio.to_thread(_copy_file, self.path, path)
        except OSError as exc:
            raise FetchError(self.uri, f"cannot copy '{self.path}': {exc.strerror or exc}") from exc


class _HttpStream:
    """A response body streamed to disk; each read bounded by the stall timeout."""

    def __init__(self, uri: str, response: aiohttp.ClientResponse, stall: float) -> None:
        self.uri, self.response, self.stall = uri, response, stall
        self.size = response.content_length

    async def save(self, path: str) -> int:
        total = 0
        fh: IO[bytes] = await asyncio.to_thread(open, path, "wb")
        try:
            while True:
                try:
                    async with asyncio.timeout(self.stall):
                        chunk = await self.response.content.read(_CHUNK)
                except TimeoutError:
                    raise FetchError(
                        self.uri, f"download stalled: no data for "
                        f"{format_duration(self.stall)} after {total} bytes") from None
                except aiohttp.ClientError as exc:
                    why = str(exc) or repr(exc)
                    raise FetchError(
                        self.uri, f"download broke off after {total} bytes: {why}") from exc
                if not chunk:
                    break
                await asyncio.to_thread(fh.write, chunk)
                total += len(chunk)
        finally:
            await asyncio.to_thread(fh.close)
        if self.size is not None and total != self.size:
            raise FetchError(self.uri, f"truncated: received {total} of {self.size} bytes")
        return total


# --------------------------------------------------------------------------- fetcher


class Fetcher:
    """One per agent: fetches URIs into sandboxes and owns the cache and HTTP client."""

    def __init__(
        self,
        cache_dir: str,
        cache_size: int = DEFAULT_CACHE_SIZE,
        stall_timeout: float = DEFAULT_STALL_TIMEOUT,
        trusted_root: str | None = None,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError(f"stall timeout must be positive, got {stall_timeout}")
        self.cache = FetcherCache(cache_dir, cache_size)
        self.stall_timeout = stall_timeout
        # The agent's work directory: it may itself be reached through a symlink, but
        # nothing below it on the way to a sandbox may be one (see _check_sandbox).
        self.trusted_root = trusted_root
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_flags(cls, flags: Any, agent_id: str) -> Fetcher:
        """The agent's fetcher: cache under ``<fetcher_cache_dir>/slaves/<agent_id>``."""
        return cls(
            os.path.join(flags.fetcher_cache_dir, "slaves", agent_id),
            cache_size=flags.fetcher_cache_size,
            stall_timeout=flags.fetcher_stall_timeout,
            trusted_root=getattr(flags, "work_dir", None),
        )

    async def recover(self) -> None:
        """Start with an empty cache, as Mesos does: entries of a previous run are unknown."""
        self.cache.clear()
        directory = self.cache.directory

        def wipe() -> None:
            shutil.rmtree(directory, ignore_errors=True)
            os.makedirs(directory, exist_ok=True)

        await asyncio.to_thread(wipe)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self, uris: Sequence[v1.URI], sandbox: str, user: str | None = None
    ) -> list[FetchResult]:
        """Fetch every URI into ``sandbox``, in order; the first failure raises FetchError.

        ``user`` is the task's (or framework's) user: part of the cache key, and the
        owner of the fetched files when the agent runs as root.
        """
        owner = _owner(user, uris[0].value) if uris else None
        if uris:
            why = await asyncio.to_thread(_check_sandbox, sandbox, self.trusted_root)
            if why is not None:
                raise FetchError(uris[0].value, why)
        results = []
        for uri in uris:
            try:
                results.append(await self._fetch_one(uri, sandbox, user or "", owner))
            except FetchError as exc:
                log.warning("%s", exc)
                raise
            except Exception as exc:
                # The agent maps FetchError to TASK_FAILED; a bug here must do the same
                # rather than take the launch path down with an unexpected exception.
                log.exception("Unexpected error fetching '%s'", uri.value)
                raise FetchError(uri.value, f"unexpected error: {exc!r}") from exc
        return results

    async def _fetch_one(
        self, uri: v1.URI, sandbox: str, user: str, owner: tuple[int, int] | None
    ) -> FetchResult:
        started = time.monotonic()
        location = _locate(uri.value)
        name = _output_name(uri, location)
        log.info("Fetching '%s' into sandbox '%s' as '%s'%s", uri.value, sandbox, name,
                 " (cache)" if uri.cache else "")
        try:
            dest, made = await asyncio.to_thread(_prepare_destination, sandbox, name)
        except (OSError, _Refused) as exc:
            raise FetchError(uri.value, f"cannot create '{name}' in the sandbox: {exc}") from exc
        outcome: CacheOutcome = "off"
        try:
            if uri.cache:
                size, outcome = await self._fetch_cached(uri.value, location, dest, user)
            else:
                async with self._open(uri.value, location) as source:
                    size = await _save(source, dest)
        except OSError as exc:  # the sandbox or the cache directory is not writable, or full
            raise FetchError(uri.value, f"cannot store '{name}': {exc}") from exc
        try:
            extracted = await asyncio.to_thread(_finish, dest, uri, sandbox)
            if owner is not None:
                await asyncio.to_thread(_chown_all, [*made, dest, *extracted], owner)
        except _Refused as exc:
            raise FetchError(uri.value, f"refused to extract '{name}': {exc}") from exc
        except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error,
                lzma.LZMAError, NotImplementedError, RuntimeError) as exc:
            # zipfile raises RuntimeError for encrypted members, NotImplementedError for
            # compression methods it lacks.
            raise FetchError(uri.value, f"bad archive '{name}': {exc}") from exc
        except OSError as exc:
            raise FetchError(uri.value, f"cannot unpack or set up '{name}': {exc}") from exc
        seconds = time.monotonic() - started
        log.info("Fetched '%s' to '%s': %d bytes in %.3fs (cache %s)%s", uri.value, dest, size,
                 seconds, outcome, f", extracted {len(extracted)} entries" if extracted else "")
        return FetchResult(uri.value, dest, size, seconds, outcome, tuple(extracted))

    async def _fetch_cached(
        self, value: str, location: _Location, dest: str, user: str
    ) -> tuple[int, CacheOutcome]:
        """Serve ``dest`` from the cache, filling it first on a miss."""
        key = (user, value)
        outcome: CacheOutcome = "hit"
        async with self.cache.key_lock(key):
            entry = self.cache.lookup(key)
            if entry is None:
                async with self._open(value, location) as source:
                    entry, why = await self._fill(key, source)
                    if entry is None:
                        log.warning("Fetching '%s' without the cache: %s", value, why)
                        return await _save(source, dest), "bypass"
                outcome = "miss"
            self.cache.acquire(entry)
        try:
            return await _save(_FileStream(value, entry.path, entry.size), dest), outcome
        except FetchError as exc:
            # The cache file is unreadable (deleted behind the agent's back?): forget the
            # entry and fetch directly, as Mesos falls back when the cache fails.
            log.warning("Cache entry of '%s' failed (%s); fetching without the cache",
                        value, exc.reason)
            self.cache.discard(entry)
        finally:
            self.cache.release(entry)
        async with self._open(value, location) as source:
            return await _save(source, dest), "bypass"

    async def _fill(self, key: tuple[str, str], stream: _Stream) -> tuple[CacheEntry | None, str]:
        """Download ``stream`` into a new cache entry, or say why the cache cannot take it."""
        if stream.size is None:
            return None, "its size is not known in advance"
        entry, victims = self.cache.reserve(key, stream.size)
        if entry is None:
            if stream.size > self.cache.capacity:
                return None, (f"{stream.size} bytes is more than the whole cache "
                              f"({self.cache.capacity} bytes)")
            return None, f"the cache has no room for {stream.size} bytes besides entries in use"
        for victim in victims:
            log.info("Evicting '%s' (%d bytes) from the fetcher cache", victim.key[1], victim.size)
        await asyncio.to_thread(_remove_files, [v.path for v in victims])
        try:
            await asyncio.to_thread(os.makedirs, self.cache.directory, exist_ok=True)
            size = await _save(stream, entry.path)
        except BaseException:
            self.cache.discard(entry)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
            raise
        self.cache.commit(entry, size)
        return entry, ""

    @contextlib.asynccontextmanager
    async def _open(self, value: str, location: _Location) -> AsyncIterator[_Stream]:
        """Open the source: the size is known (if at all) before any byte is written."""
        if location.kind == "file":
            try:
                st = await asyncio.to_thread(os.stat, location.target)
            except OSError as exc:
                raise FetchError(value, f"cannot read '{location.target}': "
                                 f"{exc.strerror or exc}") from exc
            if not stat.S_ISREG(st.st_mode):
                raise FetchError(value, f"'{location.target}' is not a regular file")
            yield _FileStream(value, location.target, st.st_size)
            return
        session = self._client()
        try:
            async with asyncio.timeout(self.stall_timeout):
                response = await session.get(location.target)
        except TimeoutError:
            raise FetchError(value, "no response within the stall timeout of "
                             f"{format_duration(self.stall_timeout)}") from None
        except aiohttp.ClientConnectorError as exc:
            raise FetchError(value, f"connection failed: {_connect_failure(exc)}") from exc
        except aiohttp.ClientError as exc:
            raise FetchError(value, f"connection failed: {exc}") from exc
        try:
            if not 200 <= response.status < 300:
                raise FetchError(value, f"HTTP {response.status} {response.reason or ''}".rstrip())
            yield _HttpStream(value, response, self.stall_timeout)
        finally:
            response.release()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Raw bytes, as curl gives Mesos: a .tar.gz served with Content-Encoding: gzip
            # must not arrive unpacked, and Content-Length must count what is written.
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.stall_timeout),
            )
        return self._session


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """'cannot connect to h:p: Connection refused' rather than aiohttp's wording."""
    where = f"cannot connect to {exc.host}:{exc.port}"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"{where}: TLS: {exc.os_error}"
    errno = exc.os_error.errno
    return f"{where}: {os.strerror(errno) if errno else exc.os_error}"


async def _save(stream: _Stream, dest: str) -> int:
    """Write ``stream`` to a temporary name next to ``dest``, then rename it into place.

    The rename replaces whatever ``dest`` was (even a symlink an earlier archive left)
    without following it, and a failed download leaves nothing behind.
    """
    fd, tmp = await asyncio.to_thread(
        tempfile.mkstemp, prefix=".fetching-", dir=os.path.dirname(dest))
    os.close(fd)
    try:
        size = await stream.save(tmp)
        await asyncio.to_thread(_install, tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return size


def _install(tmp: str, dest: str) -> None:
    os.chmod(tmp, 0o644)  # what curl under the usual umask gives; mkstemp made it 0600
    os.replace(tmp, dest)


def _copy_file(src: str, dest: str) -> int:
    shutil.copyfile(src, dest)
    return os.stat(dest).st_size


def _open_plain(path: str) -> IO[bytes]:
    return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")


def _owner(user: str | None, uri: str) -> tuple[int, int] | None:
    """(uid, gid) to chown fetched files to, when the agent is root and there is a user."""
    if not user or os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise FetchError(uri, f"user '{user}' does not exist on this agent") from None
    return pw.pw_uid, pw.pw_gid


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _chown_all(paths: list[str], owner: tuple[int, int]) -> None:
    uid, gid = owner
    for path in paths:
        os.chown(path, uid, gid, follow_symlinks=False)


# --------------------------------------------------------------------------- sandbox paths


def _check_sandbox(sandbox: str, trusted_root: str | None) -> str | None:
    """Why ``sandbox`` must not be fetched into (None: it may be).

    A sandbox reached through a symbolic link below the agent's work directory (or,
    without one, anywhere on its path) is refused: a task that can write in a
    directory on the way could have planted it to make the agent, as root, write
    and chown files elsewhere.
    """
    literal = os.path.normpath(os.path.abspath(sandbox))
    expected = literal
    if trusted_root is not None:
        root = os.path.normpath(os.path.abspath(trusted_root))
        if _inside(literal, root):
            expected = os.path.normpath(
                os.path.join(os.path.realpath(root), os.path.relpath(literal, root)))
    if os.path.realpath(literal) != expected:
        return (f"the sandbox '{sandbox}' is reached through a symbolic link; refusing to "
                "fetch into it")
    return None


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _enter_dir(root: str, current: str, part: str, made: list[str]) -> str:
    """``current/part`` as a real directory inside ``root``, created if missing."""
    path = os.path.join(current, part)
    if not os.path.lexists(path):
        os.mkdir(path, 0o755)
        made.append(path)
    real = os.path.realpath(path)
    if not _inside(real, root):
        raise _Refused(f"'{path}' leads outside the sandbox")
    if not os.path.isdir(real):
        raise _Refused(f"'{path}' is not a directory")
    return real


def _safe_parent(root: str, base: str, name: str, made: list[str]) -> str:
    """The real directory that will hold ``base/name``, checked to be inside ``root``."""
    current = base
    for part in name.split("/")[:-1]:
        current = _enter_dir(root, current, part, made)
    return current


def _prepare_destination(sandbox: str, name: str) -> tuple[str, list[str]]:
    """Absolute path for ``name`` in the sandbox, and the directories created for it."""
    root = os.path.realpath(sandbox)
    if not os.path.isdir(root):
        raise OSError(f"sandbox '{sandbox}' is not a directory")
    made: list[str] = []
    parent = _safe_parent(root, root, name, made)
    dest = os.path.join(parent, name.rsplit("/", 1)[-1])
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise _Refused(f"'{dest}' is a directory")
    return dest, made


def _clear_slot(path: str) -> None:
    """Make room for a new entry at ``path``: remove a file or link, never a directory."""
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            raise _Refused(f"a member would replace the directory '{path}'")
        os.unlink(path)


# --------------------------------------------------------------------------- extraction


def _finish(dest: str, uri: v1.URI, sandbox: str) -> list[str]:
    """Apply ``executable`` or ``extract`` to the fetched file; returns what was created."""
    if uri.executable:
        os.chmod(dest, 0o755)
        return []
    if not uri.extract:
        return []
    kind = archive_kind(os.path.basename(dest))
    if kind is None:
        return []
    root = os.path.realpath(sandbox)
    base = os.path.dirname(dest)
    if kind == "gz":
        return [_gunzip(dest)]
    if kind == "zip":
        with zipfile.ZipFile(dest) as zf:
            return _extract(_zip_members(zf), root, base)
    with tarfile.open(dest, "r:*") as tf:
        return _extract(_tar_members(tf), root, base)


def _gunzip(path: str) -> str:
    out = path[: -len(".gz")]
    _clear_slot(out)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with gzip.open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)
    return out


@dataclass(frozen=True)
class _Member:
    """An archive entry, format-neutral: what to create and how to read its bytes."""

    name: str  # relative, '/'-separated, normalised
    kind: Literal["file", "dir", "symlink", "hardlink"]
    mode: int
    link: str = ""  # symlink target, or hardlink source (archive-relative)
    open: Callable[[], IO[bytes] | None] | None = None


def _normalise(raw: str) -> str:
    """Archive name -> relative path, or _Refused when it is absolute or climbs with ``..``."""
    if raw.startswith("/") or "\0" in raw:
        raise _Refused(f"member '{raw}' has an absolute or invalid name")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"member '{raw}' climbs out with '..'")
    return "/".join(parts)


def _tar_members(tf: tarfile.TarFile) -> Iterator[_Member]:
    for info in tf:
        name = _normalise(info.name)
        if not name:
            continue
        mode = info.mode & 0o777
        if info.isdir():
            yield _Member(name, "dir", mode)
        elif info.issym():
            yield _Member(name, "symlink", mode, info.linkname)
        elif info.islnk():
            try:
                source = _normalise(info.linkname)
            except _Refused:
                raise _Refused(f"hard link '{name}' points outside the archive "
                               f"('{info.linkname}')") from None
            yield _Member(name, "hardlink", mode, source)
        elif info.isfile():
            yield _Member(name, "file", mode, open=functools.partial(tf.extractfile, info))
        else:
            raise _Refused(f"member '{info.name}' is a device, fifo or other special file")


def _zip_members(zf: zipfile.ZipFile) -> Iterator[_Member]:
    for info in zf.infolist():
        name = _normalise(info.filename)
        if not name:
            continue
        unix = info.external_attr >> 16
        mode = (unix & 0o777) or (0o755 if info.is_dir() else 0o644)
        if stat.S_ISLNK(unix):
            yield _Member(name, "symlink", mode, zf.read(info).decode("utf-8", "replace"))
        elif info.is_dir():
            yield _Member(name, "dir", mode)
        else:
            yield _Member(name, "file", mode, open=functools.partial(zf.open, info))


def _check_link_text(member: _Member, base_rel: str) -> None:
    """Refuse a symlink whose target, read as text, points outside the sandbox."""
    if member.link.startswith("/") or "\0" in member.link:
        raise _Refused(f"symlink '{member.name}' points to an absolute path '{member.link}'")
    where = posixpath.dirname(posixpath.join(base_rel, member.name))
    resolved = posixpath.normpath(posixpath.join(where, member.link))
    if resolved == ".." or resolved.startswith("../"):
        raise _Refused(f"symlink '{member.name}' points outside the sandbox ('{member.link}')")


def _extract(members: Iterator[_Member], root: str, base: str) -> list[str]:
    """Create every member under ``base``; nothing may land or point outside ``root``.

    Every name and link text is checked before the first write; then every write goes
    through ``_safe_parent`` (the real path of each directory on the way must be inside
    ``root``, so an earlier member's symlink cannot redirect a later write), files are
    created with O_EXCL|O_NOFOLLOW, and at the end every symlink created must still
    resolve inside ``root`` (a later member can change what an earlier link means).
    Setuid, setgid and sticky bits are dropped.
    """
    base_rel = os.path.relpath(base, root)
    base_rel = "" if base_rel == "." else base_rel
    checked = list(members)  # every name is checked before anything is written
    for member in checked:
        if member.kind == "symlink":
            _check_link_text(member, base_rel)
    created: list[str] = []
    links: list[tuple[str, str]] = []
    for member in checked:
        parent = _safe_parent(root, base, member.name, created)
        path = os.path.join(parent, member.name.rsplit("/", 1)[-1])
        if member.kind == "dir":
            if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)):
                os.unlink(path)
            if not os.path.lexists(path):
                os.mkdir(path)
                created.append(path)
            os.chmod(path, member.mode | 0o700)
            continue
        _clear_slot(path)
        if member.kind == "symlink":
            if not _inside(os.path.realpath(os.path.join(parent, member.link)), root):
                raise _Refused(f"symlink '{member.name}' points outside the sandbox")
            os.symlink(member.link, path)
            links.append((member.name, path))
        elif member.kind == "hardlink":
            src_parent = _safe_parent(root, base, member.link, created)
            src = os.path.join(src_parent, member.link.rsplit("/", 1)[-1])
            if not os.path.isfile(src) or os.path.islink(src):
                raise _Refused(f"hard link '{member.name}' to '{member.link}', not a file here")
            _write_file(path, member.mode, functools.partial(_open_plain, src))
        else:
            assert member.open is not None
            _write_file(path, member.mode, member.open)
        created.append(path)
    for name, path in links:
        if not _inside(os.path.realpath(path), root):
            os.unlink(path)
            raise _Refused(f"symlink '{name}' ends up pointing outside the sandbox")
    return created


def _write_file(path: str, mode: int, opener: Callable[[], IO[bytes] | None]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as dst:
        src = opener()
        if src is not None:
            with src:
                shutil.copyfileobj(src, dst, _CHUNK)
        os.fchmod(dst.fileno(), mode & 0o777)
