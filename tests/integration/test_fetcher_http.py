"""The fetcher against real HTTP servers on 127.0.0.1.

An aiohttp server in the test serves a tarball, a zip and a script and counts every
request, so "cached once" is checked at the server. Misbehaving servers (404, a body
that stops, headers that never come, a connection cut short, nothing listening) show
what FetchError says. Stall tests use a short stall timeout; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import io
import socket
import stat
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from mesos.agent.fetcher import Fetcher, FetchError
from mesos.v1 import mesos as v1

SCRIPT = b"#!/bin/sh\necho fetched\n"


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in [("pkg/README", b"hello"), ("pkg/bin/tool", b"#!/bin/sh\n")]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipball() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("site/index.html", "<h1>hi</h1>")
    return buf.getvalue()


def evil_tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


class Server:
    """Serves fixed files and a few misbehaviours; counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.files = {
            "/pkg.tar.gz": tarball(), "/site.zip": zipball(), "/run.sh": SCRIPT,
            "/evil.tar.gz": evil_tarball(),
            **{f"/blob{i}.bin": bytes([i]) * 100 for i in range(4)},
            "/big.bin": b"B" * 5000,
        }
        self.gate = asyncio.Event()  # holds /gated/* until set
        self.release = asyncio.Event()  # lets stalled handlers finish at teardown
        self.port = 0
        self._runner: web.AppRunner | None = None

    @web.middleware
    async def count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.hits[request.path] += 1
        return await handler(request)

    async def file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    async def gated(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        data = self.files["/pkg.tar.gz"]
        resp.content_length = len(data)
        await resp.prepare(request)
        await resp.write(data[:100])
        await asyncio.wait_for(self.gate.wait(), 30)
        await resp.write(data[100:])
        return resp

    async def stall_body(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await asyncio.wait_for(self.release.wait(), 30)
        return resp

    async def stall_headers(self, request: web.Request) -> web.Response:
        await asyncio.wait_for(self.release.wait(), 30)
        return web.Response(text="late")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(3):
            await resp.write(SCRIPT)
        await resp.write_eof()
        return resp

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/run.sh")

    async def start(self) -> None:
        app = web.Application(middlewares=[self.count])
        app.router.add_get("/gated/pkg.tar.gz", self.gated)
        app.router.add_get("/stall-body/data.bin", self.stall_body)
        app.router.add_get("/stall-headers/data.bin", self.stall_headers)
        app.router.add_get("/chunked/run.sh", self.chunked)
        app.router.add_get("/moved/tool", self.moved)
        app.router.add_get("/{name}", self.file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        self.gate.set()
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def fetcher(tmp_path: Path) -> AsyncIterator[Fetcher]:
    f = Fetcher(str(tmp_path / "cache"), cache_size=1 << 20, stall_timeout=10.0)
    await f.recover()
    try:
        yield f
    finally:
        await f.close()


def sandbox(tmp_path: Path, name: str = "sandbox") -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


# --------------------------------------------------------------------------- happy paths


async def test_tarball_zip_and_script_are_fetched(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    box = sandbox(tmp_path)
    results = await fetcher.fetch([
        v1.URI(value=server.url("/pkg.tar.gz")),
        v1.URI(value=server.url("/site.zip")),
        v1.URI(value=server.url("/run.sh"), executable=True),
    ], str(box))
    assert (box / "pkg" / "README").read_bytes() == b"hello"
    assert (box / "site" / "index.html").read_text() == "<h1>hi</h1>"
    assert (box / "run.sh").read_bytes() == SCRIPT
    assert stat.S_IMODE((box / "run.sh").stat().st_mode) == 0o755
    assert [r.size for r in results] == [len(server.files[p])
                                         for p in ("/pkg.tar.gz", "/site.zip", "/run.sh")]
    assert server.hits["/pkg.tar.gz"] == 1


async def test_cached_uri_is_downloaded_once_for_two_tasks(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    uri = v1.URI(value=server.url("/pkg.tar.gz"), cache=True)
    first = await fetcher.fetch([uri], str(sandbox(tmp_path, "task1")))
    second = await fetcher.fetch([uri], str(sandbox(tmp_path, "task2")))
    assert [first[0].cache, second[0].cache] == ["miss", "hit"]
    assert server.hits["/pkg.tar.gz"] == 1
    for task in ("task1", "task2"):
        assert (tmp_path / task / "pkg" / "README").read_bytes() == b"hello"
    # Without cache=true every fetch downloads again.
    await fetcher.fetch([v1.URI(value=server.url("/pkg.tar.gz"))], str(sandbox(tmp_path, "t3")))
    assert server.hits["/pkg.tar.gz"] == 2


async def test_concurrent_fetches_of_one_uri_download_once(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    uri = v1.URI(value=server.url("/gated/pkg.tar.gz"), cache=True)
    one = asyncio.create_task(fetcher.fetch([uri], str(sandbox(tmp_path, "a"))))
    two = asyncio.create_task(fetcher.fetch([uri], str(sandbox(tmp_path, "b"))))
    key = ("", uri.value)
    await until(lambda: server.hits["/gated/pkg.tar.gz"] == 1 and fetcher.cache.pending(key) == 2,
                "both fetches to be under way while the download is held")
    server.gate.set()
    results = await asyncio.wait_for(asyncio.gather(one, two), 60)
    assert sorted(r[0].cache for r in results) == ["hit", "miss"]
    assert server.hits["/gated/pkg.tar.gz"] == 1
    assert (tmp_path / "a" / "pkg" / "README").exists()
    assert (tmp_path / "b" / "pkg" / "README").exists()
    assert fetcher.cache.pending(key) == 0


async def test_lru_eviction_counts_downloads(server: Server, tmp_path: Path) -> None:
    fetcher = Fetcher(str(tmp_path / "cache"), cache_size=250, stall_timeout=10.0)
    box = sandbox(tmp_path)
    try:
        async def get(i: int) -> str:
            uri = v1.URI(value=server.url(f"/blob{i}.bin"), cache=True)
            [res] = await fetcher.fetch([uri], str(box))
            return res.cache

        assert [await get(0), await get(1), await get(0), await get(2)] == [
            "miss", "miss", "hit", "miss"]  # blob1 evicted, blob0 was used more recently
        assert [await get(0), await get(1)] == ["hit", "miss"]
        assert server.hits["/blob0.bin"] == 1 and server.hits["/blob1.bin"] == 2
        assert fetcher.cache.used <= 250
        assert len(list((tmp_path / "cache").iterdir())) == len(fetcher.cache) == 2
    finally:
        await fetcher.close()


async def test_too_big_or_unsized_downloads_bypass_the_cache(
    server: Server, tmp_path: Path
) -> None:
    fetcher = Fetcher(str(tmp_path / "cache"), cache_size=1000, stall_timeout=10.0)
    box = sandbox(tmp_path)
    try:
        big = v1.URI(value=server.url("/big.bin"), cache=True)
        chunked = v1.URI(value=server.url("/chunked/run.sh"), cache=True)
        results = await fetcher.fetch([big, big, chunked], str(box))
        assert [r.cache for r in results] == ["bypass", "bypass", "bypass"]
        assert server.hits["/big.bin"] == 2
        assert (box / "big.bin").stat().st_size == 5000
        assert (box / "run.sh").read_bytes() == SCRIPT * 3
        assert len(fetcher.cache) == 0
    finally:
        await fetcher.close()


async def test_redirect_is_followed_and_named_after_the_uri(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    box = sandbox(tmp_path)
    [res] = await fetcher.fetch([v1.URI(value=server.url("/moved/tool"))], str(box))
    assert res.path == str(box / "tool")
    assert (box / "tool").read_bytes() == SCRIPT
    assert (server.hits["/moved/tool"], server.hits["/run.sh"]) == (1, 1)


async def test_cancelled_fetch_leaves_nothing_and_releases_the_key(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    """The agent cancels a fetch when the task is killed during it."""
    uri = v1.URI(value=server.url("/gated/pkg.tar.gz"), cache=True)
    box = sandbox(tmp_path)
    pending = asyncio.create_task(fetcher.fetch([uri], str(box)))
    await until(lambda: server.hits["/gated/pkg.tar.gz"] == 1, "the download to start")
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(pending, 30)
    assert list(box.iterdir()) == []
    assert list((tmp_path / "cache").iterdir()) == []
    assert len(fetcher.cache) == 0 and fetcher.cache.pending(("", uri.value)) == 0
    server.gate.set()
    [res] = await fetcher.fetch([uri], str(box))
    assert res.cache == "miss" and (box / "pkg" / "README").exists()


# --------------------------------------------------------------------------- failures


async def test_404_names_the_uri_and_status(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    box = sandbox(tmp_path)
    url = server.url("/nothing-here.tar.gz")
    for cache in (False, True):
        with pytest.raises(FetchError) as err:
            await fetcher.fetch([v1.URI(value=url, cache=cache)], str(box))
        assert url in str(err.value) and "HTTP 404 Not Found" in str(err.value)
    assert list(box.iterdir()) == []
    assert len(fetcher.cache) == 0


async def test_connection_refused_names_the_uri(fetcher: Fetcher, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago, nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/pkg.tar.gz"
    with pytest.raises(FetchError) as err:
        await fetcher.fetch([v1.URI(value=url)], str(sandbox(tmp_path)))
    assert url in str(err.value) and "connection failed" in str(err.value)
    assert "refused" in str(err.value).lower()


async def test_body_that_stops_is_aborted_after_the_stall_timeout(
    server: Server, tmp_path: Path
) -> None:
    fetcher = Fetcher(str(tmp_path / "cache"), cache_size=1 << 20, stall_timeout=0.5)
    box = sandbox(tmp_path)
    try:
        url = server.url("/stall-body/data.bin")
        with pytest.raises(FetchError) as err:
            await asyncio.wait_for(fetcher.fetch([v1.URI(value=url, cache=True)], str(box)), 30)
        assert url in str(err.value)
        assert "download stalled: no data for 500ms after 10 bytes" in str(err.value)
        assert list(box.iterdir()) == []  # the partial download was removed
        assert len(fetcher.cache) == 0
        assert list((tmp_path / "cache").iterdir()) == []
    finally:
        await fetcher.close()


async def test_headers_that_never_come_are_aborted(server: Server, tmp_path: Path) -> None:
    fetcher = Fetcher(str(tmp_path / "cache"), cache_size=1 << 20, stall_timeout=0.5)
    try:
        url = server.url("/stall-headers/data.bin")
        with pytest.raises(FetchError, match="no response within the stall timeout"):
            await asyncio.wait_for(fetcher.fetch([v1.URI(value=url)], str(sandbox(tmp_path))), 30)
    finally:
        await fetcher.close()


async def test_connection_cut_short_is_a_fetch_error(fetcher: Fetcher, tmp_path: Path) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
        await writer.drain()
        writer.close()

    raw = await asyncio.start_server(cut, "127.0.0.1", 0)
    try:
        port = raw.sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/data.bin"
        with pytest.raises(FetchError) as err:
            await asyncio.wait_for(fetcher.fetch([v1.URI(value=url)], str(sandbox(tmp_path))), 30)
        assert url in str(err.value)
        # aiohttp may hand over the 10 bytes before it notices the short body, or not.
        assert "download broke off after" in str(err.value)
        assert "received 10 of 1000 bytes" in str(err.value)
    finally:
        raw.close()
        await raw.wait_closed()


async def test_traversal_archive_over_http_is_refused(
    server: Server, fetcher: Fetcher, tmp_path: Path
) -> None:
    box = sandbox(tmp_path)
    with pytest.raises(FetchError, match=r"refused to extract 'evil\.tar\.gz'"):
        await fetcher.fetch([v1.URI(value=server.url("/evil.tar.gz"))], str(box))
    assert not (tmp_path / "escaped.txt").exists()
