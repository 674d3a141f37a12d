"""The fetcher and sandbox garbage collection through a real agent.

A tarball served by an HTTP server in the test (127.0.0.1) is fetched, extracted and
cached once for two tasks; a URI that cannot be fetched fails the task with
REASON_CONTAINER_LAUNCH_FAILED naming it; a finished executor's sandbox is removed
after ``--gc_delay``.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

SKIP = ("HEARTBEAT", "OFFERS", "RESCIND", "FAILURE")
FRAMEWORK = {"user": "root", "name": "fetching", "checkpoint": False}


def tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"fetched and extracted\n"
        info = tarfile.TarInfo("bundle/data.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Server:
    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.url = ""


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    state = Server()
    body = tarball()

    async def bundle(request: web.Request) -> web.Response:
        state.hits[request.path] = state.hits.get(request.path, 0) + 1
        return web.Response(body=body, content_type="application/gzip")

    app = web.Application()
    app.router.add_get("/bundle.tar.gz", bundle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()


def task(task_id: str, agent_id: str, command: str, uris: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "command": {"value": command, "uris": uris},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}]}


async def launch(s: RawScheduler, tasks: list[dict[str, Any]]) -> None:
    offer = (await s.next_event("OFFERS", timeout=15))["offers"]["offers"][0]
    for t in tasks:
        t["agent_id"] = offer["agent_id"]
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}]}})
    assert code == 202, text


async def final_states(s: RawScheduler, task_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Acknowledge updates until every task in ``task_ids`` is terminal."""
    done: dict[str, dict[str, Any]] = {}
    while set(done) != task_ids:
        status = (await s.next_event("UPDATE", timeout=30, skip=SKIP))["update"]["status"]
        if "uuid" in status:
            await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]}})
        if status["state"] not in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"):
            done[status["task_id"]["value"]] = status
    return done


async def test_a_uri_is_fetched_extracted_and_cached_once_for_two_tasks(
        tmp_path: Path, server: Server) -> None:
    agent_flags = [f"--fetcher_cache_dir={tmp_path / 'fetch-cache'}"]
    with Cluster(tmp_path, agents=1, agent_flags=agent_flags) as cluster:
        s = RawScheduler(cluster.master_url)
        try:
            await s.subscribe(FRAMEWORK)
            uri = {"value": f"{server.url}/bundle.tar.gz", "extract": True, "cache": True}
            missing = {"value": f"{server.url}/missing.tar.gz"}
            await launch(s, [task("one", "", "cat bundle/data.txt", [uri]),
                             task("two", "", "cat bundle/data.txt", [uri]),
                             task("broken", "", "true", [missing])])
            states = await final_states(s, {"one", "two", "broken"})
        finally:
            await s.close()
        assert states["one"]["state"] == states["two"]["state"] == "TASK_FINISHED", states
        assert server.hits == {"/bundle.tar.gz": 1}  # the second task hit the cache
        outputs = [p.read_text() for p in tmp_path.glob(
            "agent0/slaves/*/frameworks/*/executors/*/runs/*-*/stdout")]  # not runs/latest
        assert sum("fetched and extracted" in text for text in outputs) == 2, outputs
        broken = states["broken"]
        assert broken["state"] == "TASK_FAILED"
        assert broken["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
        assert "missing.tar.gz" in broken["message"] and "404" in broken["message"]


async def test_a_finished_executors_sandbox_is_collected_after_gc_delay(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1, agent_flags=["--gc_delay=2secs"]) as cluster:
        s = RawScheduler(cluster.master_url)
        try:
            await s.subscribe(FRAMEWORK)
            await launch(s, [task("short", "", "echo done", [])])
            states = await final_states(s, {"short"})
            assert states["short"]["state"] == "TASK_FINISHED"
            runs = "agent0/slaves/*/frameworks/*/executors/short/runs/*-*"
            sandboxes = list(tmp_path.glob(runs))
            assert sandboxes, "the sandbox was never there"
            wait_for(lambda: not any(p.exists() for p in sandboxes), 20,
                     "the sandbox to be garbage collected")
        finally:
            await s.close()
