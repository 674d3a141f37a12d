"""``/files/*`` of the agent: only sandboxes, only regular files, nothing on the loop.

The handlers run in an in-process aiohttp server over a stand-in for the agent (they
only read its work dir and agent id).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mesos.agent import files
from mesos.agent.app import build_app

AGENT_ID = "S0"
FW = "fw"


class Box:
    """A work dir with one sandbox (``runs/c1`` and its ``latest`` link) and other things."""

    def __init__(self, root: Path) -> None:
        self.work = root / "work"
        executor = self.work / "slaves" / AGENT_ID / "frameworks" / FW / "executors" / "ex"
        self.run = executor / "runs" / "c1"
        self.run.mkdir(parents=True)
        (executor / "runs" / "latest").symlink_to("c1")
        (self.run / "stdout").write_text("hello\n")
        bin_dir = self.work / "executors-bin"
        bin_dir.mkdir()
        (bin_dir / "command.pyc").write_bytes(b"code")
        self.virtual = f"/frameworks/{FW}/executors/ex/runs/latest"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Box, TestClient[Any, Any]]]:
    box = Box(tmp_path)
    core = SimpleNamespace(config=SimpleNamespace(work_dir=str(box.work)), agent_id=AGENT_ID,
                           executors=lambda: iter(()))
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(SimpleNamespace(core=core))))  # type: ignore[arg-type]
    await client.start_server()
    try:
        yield box, client
    finally:
        await client.close()


async def get(client: TestClient[Any, Any], endpoint: str, path: str, **params: Any) -> int:
    async with client.get(endpoint, params={"path": path, **params}) as resp:
        await resp.read()
        return resp.status


async def test_sandboxes_are_served_and_nothing_else(
    served: tuple[Box, TestClient[Any, Any]],
) -> None:
    box, client = served
    assert await get(client, "/files/read", f"{box.virtual}/stdout", offset=0) == 200
    assert await get(client, "/files/read", str(box.run / "stdout"), offset=0) == 200
    assert await get(client, "/files/browse", str(box.run)) == 200
    assert await get(client, "/files/download", f"{box.virtual}/stdout") == 200
    # The work dir itself, the compiled executor, the directories above a sandbox.
    for path in (box.work, box.work / "executors-bin", box.work / "executors-bin" / "command.pyc",
                 box.work / "slaves", box.run.parent, box.work / "slaves" / AGENT_ID):
        for endpoint in ("/files/browse", "/files/read", "/files/download"):
            assert await get(client, endpoint, str(path)) == 403, (endpoint, path)
    # A link out of the sandbox is resolved first.
    (box.run / "bin").symlink_to(box.work / "executors-bin")
    assert await get(client, "/files/read", f"{box.virtual}/bin/command.pyc") == 403


async def test_a_nul_in_the_path_is_a_bad_request(
    served: tuple[Box, TestClient[Any, Any]],
) -> None:
    box, client = served
    for endpoint in ("/files/browse", "/files/read", "/files/download"):
        assert await get(client, endpoint, "/tmp/\x00x") == 400
        assert await get(client, endpoint, f"{box.virtual}/std\x00out") == 400


async def test_reading_a_fifo_is_refused_without_blocking(
    served: tuple[Box, TestClient[Any, Any]],
) -> None:
    box, client = served
    os.mkfifo(box.run / "pipe")
    for endpoint in ("/files/read", "/files/download"):
        status = await asyncio.wait_for(get(client, endpoint, f"{box.virtual}/pipe", offset=0), 3)
        assert status == 400
    async with client.get("/files/read", params={"path": f"{box.virtual}/pipe"}) as resp:
        assert "not a regular file" in await resp.text()


async def test_file_system_work_runs_off_the_event_loop(
    served: tuple[Box, TestClient[Any, Any]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, client = served
    threads: list[threading.Thread] = []
    real_getpwuid = pwd.getpwuid

    def spy(uid: int) -> Any:
        threads.append(threading.current_thread())
        return real_getpwuid(uid)

    monkeypatch.setattr(pwd, "getpwuid", spy)
    assert await get(client, "/files/browse", box.virtual) == 200
    assert threads and threading.main_thread() not in threads


def test_in_sandbox() -> None:
    root = "/w"
    run = "/w/slaves/a/frameworks/f/executors/e/runs/c"
    assert files.in_sandbox(root, run) and files.in_sandbox(root, run + "/x/y")
    for path in ("/w", "/w/slaves", "/w/slaves/a/frameworks/f/executors/e/runs",
                 "/w/executors-bin/x", "/wx/slaves/a/frameworks/f/executors/e/runs/c",
                 "/w/slaves/a/frameworks/f/executors/e/other/c"):
        assert not files.in_sandbox(root, path), path
    assert files.in_sandbox("/", "/slaves/a/frameworks/f/executors/e/runs/c/stdout")
