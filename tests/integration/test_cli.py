"""The command-line tools as a user runs them: mesos-local, mesos-execute, flags."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mesos.testing.cluster import free_port, http_json

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def local_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mesos-local"), "--num_agents=2", f"--port={port}", f"--work_dir={tmp_path}",
         "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-31100]"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    banner = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            banner.append(line)
            if "logs and sandboxes" in line:
                break
        assert any("Mesos local cluster is up" in line for line in banner), "".join(banner)
        yield port, "".join(banner), proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_mesos_execute_against_mesos_local(local_cluster) -> None:  # type: ignore[no-untyped-def]
    port, banner, proc = local_cluster
    assert f"http://127.0.0.1:{port}" in banner
    assert banner.count("agent    http://") == 2
    slaves = http_json(f"http://127.0.0.1:{port}/master/slaves")["slaves"]
    assert len(slaves) == 2 and len({s["pid"] for s in slaves}) == 2

    ok = run("mesos-execute", f"--master=127.0.0.1:{port}", "--name=hello", "--command=echo hello")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "TASK_RUNNING" in ok.stdout and "TASK_FINISHED" in ok.stdout
    assert ok.stderr == "", ok.stderr  # the final TEARDOWN is quiet, even when it races

    bad = run("mesos-execute", f"--master=127.0.0.1:{port}", "--name=boom", "--command=exit 3")
    assert bad.returncode != 0
    assert "TASK_FAILED" in bad.stdout
    assert "Traceback" not in bad.stderr, bad.stderr

    # Stopping mesos-local stops every daemon it started.
    agent_ports = [int(s["pid"].rsplit(":", 1)[1]) for s in slaves]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    for p in [port, *agent_ports]:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{p}/health", timeout=1)


def test_help_lists_every_flag_with_defaults() -> None:
    out = run("mesos-master", "--help")
    assert out.returncode == 0
    for flag in ("--port", "--ip", "--work_dir", "--allocation_interval", "--offer_timeout",
                 "--agent_ping_timeout", "--max_agent_ping_timeouts"):
        assert flag in out.stdout
    assert "5050" in out.stdout
    agent = run("mesos-agent", "--help")
    assert agent.returncode == 0 and "--resources" in agent.stdout and "5051" in agent.stdout
    for tool in ("mesos-local", "mesos-execute"):
        assert run(tool, "--help").returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["mesos-master", "--port=abc"], {}, "port"),
        (["mesos-master", "--no_such_flag=1"], {}, "no_such_flag"),
        (["mesos-master"], {"MESOS_ALLOCATION_INTERVAL": "soon"}, "allocation_interval"),
        (["mesos-master", "--weights=eng=x"], {}, "eng=x"),
        (["mesos-master", "--role_sorter=fifo"], {}, "role_sorter"),
        (["mesos-master", "--allocator=nope"], {}, "allocator"),
        (["mesos-master", "--min_allocatable_resources=cpus:x"], {}, "cpus"),
        (["mesos-agent", "--master=127.0.0.1:1", "--work_dir=/tmp/x", "--resources=cpus:lots"], {}, "cpus"),
        (["mesos-agent", "--work_dir=/tmp/x"], {}, "master"),
        (["mesos-execute", "--master=127.0.0.1:1", "--name=x", "--command=true", "--resources=cpus:x"], {}, "cpus"),
        (["mesos-local", "--num_agents=many"], {}, "num_agents"),
    ],
)
def test_bad_flags_give_one_line_and_non_zero_exit(args: list[str], env: dict[str, str], needle: str) -> None:
    out = run(*args, env=env, timeout=30)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert needle in lines[0]


def test_environment_fallback_sets_flags(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mesos-master"), f"--work_dir={tmp_path}"],
        env={**os.environ, "MESOS_PORT": str(port), "MESOS_IP": "127.0.0.1", "MESOS_CLUSTER": "envtest"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        state = None
        while time.monotonic() < deadline and state is None:
            try:
                state = http_json(f"http://127.0.0.1:{port}/master/state")
            except OSError:
                time.sleep(0.05)
        assert state is not None
        assert state["cluster"] == "envtest"
        assert state["flags"]["port"] == str(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_mesos_execute_without_master_fails_clearly() -> None:
    out = run("mesos-execute", f"--master=127.0.0.1:{free_port()}", "--name=x", "--command=true",
              "--timeout=5secs", timeout=30)
    assert out.returncode != 0
    assert len([line for line in out.stderr.splitlines() if line.strip()]) == 1


async def _proxy_cutting_teardown(master: str, torn_down: list[int]) -> web.AppRunner:
    """A scheduler-API proxy in front of ``master`` that forwards TEARDOWN, then drops
    the connection unanswered: a master that acts on TEARDOWN but never answers it."""
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        call_type = json.loads(body).get("type")
        headers = {k: v for k, v in request.headers.items()
                   if k in ("Content-Type", "Accept", "Mesos-Stream-Id")}
        upstream = await session.post(f"http://{master}/api/v1/scheduler", data=body,
                                      headers=headers)
        if call_type == "SUBSCRIBE" and upstream.status == 200:
            response = web.StreamResponse(headers={
                "Content-Type": "application/json",
                "Mesos-Stream-Id": upstream.headers.get("Mesos-Stream-Id", "")})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            upstream.release()
            await response.write_eof()
            return response
        data = await upstream.read()
        upstream.release()
        if call_type == "TEARDOWN":
            torn_down.append(upstream.status)
            assert request.transport is not None
            request.transport.close()
        return web.Response(status=upstream.status, body=data)

    app = web.Application()
    app.router.add_post("/api/v1/scheduler", forward)

    async def close_session(_: web.Application) -> None:
        await session.close()

    app.on_cleanup.append(close_session)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


async def test_mesos_execute_exit_status_survives_a_teardown_cut_off(local_cluster) -> None:  # type: ignore[no-untyped-def]
    """The master removes the framework but the TEARDOWN's connection drops
    unanswered: still exit 0 for TASK_FINISHED (non-zero otherwise), no traceback."""
    port, _, _ = local_cluster
    torn_down: list[int] = []
    runner = await _proxy_cutting_teardown(f"127.0.0.1:{port}", torn_down)
    proxy_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
    try:
        for name, command, code, final in [("fine", "true", 0, "TASK_FINISHED"),
                                           ("broken", "exit 7", 1, "TASK_FAILED")]:
            proc = await asyncio.create_subprocess_exec(
                str(BIN / "mesos-execute"), f"--master=127.0.0.1:{proxy_port}", f"--name={name}",
                f"--command={command}", stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 90)
            assert proc.returncode == code, out.decode() + err.decode()
            assert f"Received status update {final} for task '{name}'" in out.decode()
            assert err.decode() == ""
    finally:
        await runner.cleanup()
    assert torn_down == [202, 202]  # the master did tear both down...
    frameworks = await asyncio.to_thread(http_json, f"http://127.0.0.1:{port}/master/frameworks")
    assert frameworks["frameworks"] == []  # ...and holds none of them now
    assert len(frameworks["completed_frameworks"]) == 2
