"""A real ``mesos-agent`` process against an in-test fake master.

The fake master is an aiohttp app on a free loopback port implementing
``POST /api/v1/internal/agent`` (contracts §5): SUBSCRIBE gets a RecordIO stream that
starts with SUBSCRIBED and then carries whatever the test sends (RUN_TASK, KILL_TASK,
...); every other call is recorded and answered 202, and STATUS_UPDATEs are
acknowledged unless the test turns that off. The agent is started as a subprocess
in its own session and always stopped by its PID; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mesos.agent.launcher import group_pids
from mesos.v1 import recordio

pytestmark = pytest.mark.slow

WAIT = 15.0  # bound of every single wait
FW = "fw-1"
AGENT_ID = "agent-test-S0"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class FakeMaster:
    """Just enough of the master's agent channel to drive one agent."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[dict[str, Any]] = []
        self.subscribes: list[dict[str, Any]] = []
        self.auto_ack = True
        self.accept_subscribe = True
        self._stream: web.StreamResponse | None = None
        self._stream_done = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/internal/agent", self.handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.drop_stream()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what the agent sent

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["type"] == type_]

    def updates(self, task_id: str | None = None) -> list[dict[str, Any]]:
        out = [c["status_update"]["status"] for c in self.of_type("STATUS_UPDATE")]
        return [s for s in out if task_id is None or s["task_id"]["value"] == task_id]

    def states(self, task_id: str) -> list[str]:
        """Distinct states in arrival order (resends collapse)."""
        seen: list[str] = []
        for status in self.updates(task_id):
            if not seen or seen[-1] != status["state"]:
                seen.append(status["state"])
        return seen

    async def wait_state(self, task_id: str, state: str) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            return next((s for s in self.updates(task_id) if s["state"] == state), None)

        found: dict[str, Any] = await wait_until(
            find, f"{state} for task {task_id} (got {self.states(task_id)})")
        return found

    # -- talking to the agent

    @property
    def connected(self) -> bool:
        return self._stream is not None

    async def send(self, type_: str, payload: dict[str, Any] | None = None) -> None:
        await wait_until(lambda: self._stream is not None, "the agent's subscription")
        assert self._stream is not None
        body: dict[str, Any] = {"type": type_}
        if payload is not None:
            body[type_.lower()] = payload
        await self._stream.write(recordio.encode(json.dumps(body).encode()))

    def acknowledge(self, status: dict[str, Any]) -> Any:
        return self.send("ACKNOWLEDGE", {"framework_id": {"value": FW},
                                         "task_id": status["task_id"], "uuid": status["uuid"]})

    def drop_stream(self) -> None:
        self._stream_done.set()

    async def run_task(self, task: dict[str, Any], **framework: Any) -> None:
        info = {"user": "tester", "name": "test", "id": {"value": FW}, **framework}
        await self.send("RUN_TASK", {"framework_info": info, "task": task})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = await request.json()
        if call["type"] != "SUBSCRIBE":
            assert request.headers.get("Mesos-Stream-Id") == "stream-1"
            self.calls.append(call)
            if call["type"] == "STATUS_UPDATE" and self.auto_ack:
                asyncio.get_running_loop().create_task(
                    self.acknowledge(call["status_update"]["status"]))
            return web.Response(status=202)
        self.subscribes.append(call)
        if not self.accept_subscribe:
            return web.Response(status=503, text="not now")
        response = web.StreamResponse(headers={"Content-Type": "application/json",
                                               "Mesos-Stream-Id": "stream-1"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._stream_done = asyncio.Event()
        done = self._stream_done
        self._stream = response
        await self.send("SUBSCRIBED", {"agent_id": {"value": AGENT_ID},
                                       "ping_interval_seconds": 15.0})
        with contextlib.suppress(asyncio.CancelledError):
            await done.wait()
        if self._stream is response:
            self._stream = None
        return response


class AgentProcess:
    def __init__(self, tmp: Path, master: FakeMaster, *extra: str) -> None:
        self.port = free_port()
        self.work_dir = tmp / "work"
        self.log_path = tmp / "agent.log"
        self.args = [
            sys.executable, "-m", "mesos.cli.agent",
            f"--master={master.address}", f"--port={self.port}",
            f"--work_dir={self.work_dir}", "--resources=cpus:2;mem:1024;disk:1024",
            "--registration_backoff_factor=100ms", "--executor_shutdown_grace_period=2secs",
            *extra,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}
        env["MESOS_LAUNCHER"] = "posix"  # no cgroups (see tests/conftest.py)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=env,
                                         start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a bound; always by PID."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    async def get(self, endpoint: str, **params: Any) -> tuple[int, Any]:
        query = {k: str(v) for k, v in params.items()}
        async with aiohttp.ClientSession() as session, session.get(
            self.url + endpoint, params=query, timeout=aiohttp.ClientTimeout(total=5)
        ) as resp:
            body = await resp.read()
            if resp.content_type == "application/json":
                return resp.status, json.loads(body)
            return resp.status, body.decode(errors="replace")

    async def post(self, endpoint: str, body: Any, **headers: str) -> tuple[int, str]:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        skip = () if "Content-Type" in headers else ("Content-Type",)
        async with aiohttp.ClientSession() as session, session.post(
            self.url + endpoint, data=data, headers=headers, skip_auto_headers=skip,
            timeout=aiohttp.ClientTimeout(total=5),
        ) as resp:
            return resp.status, await resp.text()


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    fake = FakeMaster()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


class Agents:
    """Starts agents for a test and stops every one of them, whatever happens."""

    def __init__(self, tmp: Path, master: FakeMaster) -> None:
        self.tmp = tmp
        self.master = master
        self.started: list[AgentProcess] = []

    async def start_unregistered(self, *extra: str) -> AgentProcess:
        """Start an agent without waiting for it to subscribe (a recovering one waits
        for its executors first)."""
        agent = AgentProcess(self.tmp, self.master, *extra)
        self.started.append(agent)
        agent.start()
        return agent

    async def start(self, *extra: str) -> AgentProcess:
        agent = await self.start_unregistered(*extra)
        await wait_until(lambda: self.master.connected or (agent.proc and agent.proc.poll()),
                         "the agent to subscribe")
        assert agent.proc is not None and agent.proc.poll() is None, agent.log()
        return agent


@pytest.fixture
async def agents(tmp_path: Path, master: FakeMaster) -> AsyncIterator[Agents]:
    holder = Agents(tmp_path, master)
    try:
        yield holder
    finally:
        for agent in holder.started:
            agent.stop()


def command_task(task_id: str, cmd: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": AGENT_ID},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}],
        "command": {"value": cmd},
    }


def custom_task(task_id: str, executor_id: str, cmd: str) -> dict[str, Any]:
    return {
        "name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": AGENT_ID},
        "executor": {"executor_id": {"value": executor_id}, "command": {"value": cmd}},
    }


def sandbox(agent: AgentProcess, executor_id: str) -> Path:
    return (agent.work_dir / "slaves" / AGENT_ID / "frameworks" / FW / "executors" / executor_id
            / "runs" / "latest")


async def wait_no_processes(pgid: int) -> None:
    await wait_until(lambda: not group_pids(pgid), f"process group {pgid} to be empty")


# --------------------------------------------------------------------------- tests


async def test_command_task_runs_to_finished(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start()
    (sub,) = master.subscribes
    info = sub["subscribe"]["agent_info"]
    assert "id" not in info and info["port"] == agent.port
    assert {r["name"] for r in sub["subscribe"]["resources"]} >= {"cpus", "mem", "disk", "ports"}
    await master.run_task(command_task("echo", "echo hello"))
    finished = await master.wait_state("echo", "TASK_FINISHED")
    assert master.states("echo") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert finished["agent_id"] == {"value": AGENT_ID}
    assert finished["executor_id"] == {"value": "echo"}
    assert len(base64.b64decode(finished["uuid"])) == 16
    out = sandbox(agent, "echo") / "stdout"
    await wait_until(lambda: out.exists() and "hello" in out.read_text(), "hello in stdout")
    # Acknowledged and the executor gone: the framework is completed.
    state: dict[str, Any] = {}
    for _ in range(100):
        _, state = await agent.get("/slave(1)/state")
        if state["completed_frameworks"]:
            break
        await asyncio.sleep(0.1)
    assert state["completed_frameworks"], state
    assert state["id"] == AGENT_ID and state["pid"] == f"slave(1)@127.0.0.1:{agent.port}"
    executor = state["completed_frameworks"][0]["completed_executors"][0]
    assert executor["completed_tasks"][0]["state"] == "TASK_FINISHED"
    assert executor["completed_tasks"][0]["executor_id"] == ""
    _, metrics = await agent.get("/metrics/snapshot")
    assert metrics["slave/registered"] == 1.0 and metrics["slave/tasks_finished"] == 1.0
    assert metrics["slave/cpus_total"] == 2.0
    assert not master.of_type("EXITED_EXECUTOR")  # the master never knew this executor
    log = agent.log()
    assert f"given agent ID {AGENT_ID}" in log and "TASK_FINISHED" in log


async def test_unacknowledged_update_is_resent(master: FakeMaster, agents: Agents) -> None:
    master.auto_ack = False
    agent = await agents.start("--status_update_retry_interval=200ms")
    await master.run_task(command_task("t", "sleep 0.2"))
    first = await master.wait_state("t", "TASK_STARTING")
    await wait_until(lambda: len(master.updates("t")) >= 3, "resends")
    # Only the head is in flight, and it is resent unchanged.
    assert {s["uuid"] for s in master.updates("t")} == {first["uuid"]}
    await master.acknowledge(first)
    running = await master.wait_state("t", "TASK_RUNNING")
    await master.acknowledge({**first, "uuid": b64(bytes(16))})  # stale: ignored
    await master.acknowledge(running)
    finished = await master.wait_state("t", "TASK_FINISHED")
    await master.acknowledge(finished)
    await wait_until(lambda: "was acknowledged" in agent.log() and
                     agent.log().count("was acknowledged") >= 3, "three acks in the log")
    count = len(master.updates("t"))
    await asyncio.sleep(0.6)
    assert len(master.updates("t")) == count  # nothing is resent after the last ack


async def test_killed_task_leaves_no_process(master: FakeMaster, agents: Agents) -> None:
    await agents.start()
    await master.run_task(command_task("sleeper", "sleep 100"))
    running = await master.wait_state("sleeper", "TASK_RUNNING")
    pgid = running["container_status"]["executor_pid"]
    assert len(group_pids(pgid)) >= 2  # the executor and its task
    await master.send("KILL_TASK", {"framework_id": {"value": FW},
                                    "task_id": {"value": "sleeper"}})
    killed = await master.wait_state("sleeper", "TASK_KILLED")
    assert killed["source"] == "SOURCE_EXECUTOR"
    await wait_no_processes(pgid)


async def test_kill_of_unknown_task_is_lost(master: FakeMaster, agents: Agents) -> None:
    await agents.start()
    await master.run_task(custom_task("a", "idle", "sleep 100"))
    await master.send("KILL_TASK", {"framework_id": {"value": FW},
                                    "task_id": {"value": "ghost"}})
    lost = await master.wait_state("ghost", "TASK_LOST")
    assert lost["reason"] == "REASON_EXECUTOR_TERMINATED" and lost["source"] == "SOURCE_AGENT"
    # The queued task of the never-subscribing executor is killed by the agent.
    await master.send("KILL_TASK", {"framework_id": {"value": FW}, "task_id": {"value": "a"}})
    killed = await master.wait_state("a", "TASK_KILLED")
    assert killed["reason"] == "REASON_TASK_KILLED_DURING_LAUNCH"


async def test_registration_timeout(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start("--executor_registration_timeout=1secs")
    await master.run_task(custom_task("t", "lazy", "echo started; sleep 100"))
    out = sandbox(agent, "lazy") / "stdout"
    await wait_until(lambda: out.exists() and "started" in out.read_text(), "executor start")
    failed = await master.wait_state("t", "TASK_FAILED")
    assert failed["reason"] == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    exited = await wait_until(lambda: master.of_type("EXITED_EXECUTOR"), "EXITED_EXECUTOR")
    body = exited[0]["exited_executor"]
    assert body["executor_id"] == {"value": "lazy"} and body["status"] == signal.SIGKILL


async def test_executor_api_refusals(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start()
    await master.run_task(custom_task("t", "quiet", "sleep 100"))
    await wait_until(lambda: (sandbox(agent, "quiet")).exists(), "the sandbox")
    path = "/api/v1/executor"
    json_ct = {"Content-Type": "application/json"}

    def call(type_: str, fw: str = FW, ex: str = "quiet", **extra: Any) -> dict[str, Any]:
        return {"type": type_, "framework_id": {"value": fw}, "executor_id": {"value": ex},
                **extra}

    status, _ = await agent.get(path)
    assert status == 405
    assert (await agent.post(path, json.dumps(call("HEARTBEAT")).encode()))[0] == 400
    assert (await agent.post(path, call("HEARTBEAT"), **{"Content-Type": "text/plain"}))[0] == 415
    status, text = await agent.post(path, "{not json", **json_ct)
    assert status == 400
    status, text = await agent.post(path, {"type": "HEARTBEAT", "framework_id": {"value": 1},
                                           "executor_id": {"value": "quiet"}}, **json_ct)
    assert status == 400 and "framework_id.value" in text
    assert await agent.post(path, call("HEARTBEAT", fw="nope"), **json_ct) == (
        400, "Framework cannot be found")
    assert await agent.post(path, call("HEARTBEAT", ex="nope"), **json_ct) == (
        400, "Executor cannot be found")
    assert await agent.post(path, call("HEARTBEAT"), **json_ct) == (
        403, "Executor is not subscribed")
    update = {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                         "source": "SOURCE_EXECUTOR", "uuid": b64(b"short")}}
    status, text = await agent.post(path, call("UPDATE", update=update), **json_ct)
    assert status == 400 and "UUID" in text
    update["status"].update(uuid=b64(bytes(16)), source="SOURCE_AGENT")
    status, text = await agent.post(path, call("UPDATE", update=update), **json_ct)
    assert status == 400 and "SOURCE_EXECUTOR" in text
    update["status"].update(source="SOURCE_EXECUTOR", state="TASK_STAGING")
    status, text = await agent.post(path, call("UPDATE", update=update), **json_ct)
    assert status == 400 and "TASK_STAGING" in text
    status, _ = await agent.post("/slave(1)/api/v1/executor", call("SUBSCRIBE", subscribe={}),
                                 **json_ct, Accept="text/html")
    assert status == 406


async def test_files_endpoints(master: FakeMaster, agents: Agents, tmp_path: Path) -> None:
    agent = await agents.start()
    await master.run_task(command_task("echo", "echo hello"))
    await master.wait_state("echo", "TASK_FINISHED")
    out = sandbox(agent, "echo") / "stdout"
    await wait_until(lambda: out.exists() and "hello" in out.read_text(), "hello in stdout")
    virtual = f"/frameworks/{FW}/executors/echo/runs/latest"
    status, data = await agent.get("/files/read", path=f"{virtual}/stdout", offset=0)
    assert status == 200 and "hello" in data["data"] and data["offset"] == 0
    size = out.stat().st_size
    status, data = await agent.get("/files/read", path=str(out), offset=-1)
    assert (status, data) == (200, {"data": "", "offset": size})
    status, data = await agent.get("/files/read", path=str(out), offset=2, length=3)
    assert data == {"data": out.read_bytes()[2:5].decode(), "offset": 2}
    status, listing = await agent.get("/files/browse", path=virtual)
    assert status == 200
    names = {entry["path"] for entry in listing}
    assert {f"{virtual}/stdout", f"{virtual}/stderr"} <= names
    assert all(set(entry) >= {"mode", "size", "mtime", "nlink", "uid", "gid"} for entry in listing)
    status, body = await agent.get("/files/download", path=f"{virtual}/stdout")
    assert status == 200 and "hello" in body
    (tmp_path / "secret").write_text("no")
    assert (await agent.get("/files/read", path=str(tmp_path / "secret")))[0] == 403
    assert (await agent.get("/files/read", path="/etc/passwd"))[0] == 403
    assert (await agent.get("/files/read", path=f"{virtual}{'/..' * 12}/etc/passwd"))[0] == 403
    assert (await agent.get("/files/read", path=f"{virtual}/missing"))[0] == 404
    assert (await agent.get("/files/read"))[0] == 400
    assert (await agent.get("/files/read", path=str(out), offset="x"))[0] == 400
    assert (await agent.get("/files/read", path=virtual))[0] == 400  # a directory


async def test_other_endpoints(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start("--attributes=rack:r1;level:10")
    assert await agent.get("/health") == (200, "")
    _, version = await agent.get("/version")
    assert version["version"] == "1.11.0"
    _, flags = await agent.get("/slave(1)/flags")
    assert flags["flags"]["port"] == str(agent.port)
    assert flags["flags"]["executor_registration_timeout"] == "1mins"
    _, state = await agent.get("/state")
    assert state["attributes"] == {"rack": "r1", "level": 10.0}
    assert state["resources"]["cpus"] == 2.0 and state["resources"]["ports"] == "[31000-32000]"
    assert state["master_hostname"] == "127.0.0.1"
    assert master.subscribes[0]["subscribe"]["agent_info"]["attributes"][0]["name"] == "rack"


async def test_reconnect_keeps_updates(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start()
    await master.run_task(command_task("nap", "sleep 1.5"))
    await master.wait_state("nap", "TASK_RUNNING")
    master.accept_subscribe = False
    master.drop_stream()
    await wait_until(lambda: len(master.subscribes) >= 3, "refused re-subscriptions")
    await wait_until(lambda: "TASK_FINISHED" in agent.log(), "the task to finish meanwhile")
    assert "TASK_FINISHED" not in master.states("nap")
    master.accept_subscribe = True
    await master.wait_state("nap", "TASK_FINISHED")
    resubscribe = next(s for s in reversed(master.subscribes))["subscribe"]
    assert resubscribe["agent_info"]["id"] == {"value": AGENT_ID}
    assert [t["task_id"]["value"] for t in resubscribe["tasks"]] == ["nap"]
    assert resubscribe["tasks"][0]["status_update_state"] == "TASK_FINISHED"
    assert resubscribe["frameworks"][0]["id"] == {"value": FW}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_stops_executors_of_frameworks_that_do_not_checkpoint(
    master: FakeMaster, agents: Agents, signum: int
) -> None:
    agent = await agents.start()
    await master.run_task(command_task("long", "sleep 100"))
    running = await master.wait_state("long", "TASK_RUNNING")
    pgid = running["container_status"]["executor_pid"]
    assert agent.proc is not None
    os.kill(agent.proc.pid, signum)
    assert await asyncio.to_thread(agent.proc.wait, WAIT) == 0
    await wait_no_processes(pgid)
    assert "Agent stopped" in agent.log()


async def test_master_shutdown_stops_the_agent(master: FakeMaster, agents: Agents) -> None:
    agent = await agents.start()
    await master.run_task(command_task("long", "sleep 100"))
    running = await master.wait_state("long", "TASK_RUNNING")
    await master.send("SHUTDOWN", {"message": "agent removed"})
    assert agent.proc is not None
    assert await asyncio.to_thread(agent.proc.wait, WAIT) == 0
    await wait_no_processes(running["container_status"]["executor_pid"])
    await master.send("PING") if master.connected else None


# A custom executor speaking the v1 Executor API with the standard library only.
CUSTOM_EXECUTOR = r'''
import base64, http.client, json, os, sys, uuid

host, port = os.environ["MESOS_AGENT_ENDPOINT"].split(":")
fw, ex = os.environ["MESOS_FRAMEWORK_ID"], os.environ["MESOS_EXECUTOR_ID"]
with open("env.json", "w") as fh:
    json.dump({k: v for k, v in os.environ.items()}, fh)

def post(body):
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/api/v1/executor", json.dumps(body),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 202, (resp.status, resp.read())
    conn.close()

def call(type_, **extra):
    post({"type": type_, "framework_id": {"value": fw}, "executor_id": {"value": ex}, **extra})

def update(task_id, state):
    status = {"task_id": task_id, "state": state, "source": "SOURCE_EXECUTOR",
              "uuid": base64.b64encode(uuid.uuid4().bytes).decode()}
    call("UPDATE", update={"status": status})

conn = http.client.HTTPConnection(host, int(port))
conn.request("POST", "/api/v1/executor", json.dumps({
    "type": "SUBSCRIBE", "framework_id": {"value": fw}, "executor_id": {"value": ex},
    "subscribe": {}}), {"Content-Type": "application/json", "Accept": "application/json"})
resp = conn.getresponse()
assert resp.status == 200, resp.status
tasks, log = [], open("events.log", "w")
while True:
    size = resp.readline()
    if not size:
        sys.exit(1)
    event = json.loads(resp.read(int(size)))
    log.write(event["type"] + "\n"); log.flush()
    kind = event["type"]
    if kind == "SUBSCRIBED":
        sub = event["subscribed"]
        assert sub["executor_info"]["executor_id"] == {"value": ex}
        assert sub["framework_info"]["id"] == {"value": fw}
        assert sub["agent_info"]["id"]["value"]
    elif kind == "LAUNCH":
        tasks.append(event["launch"]["task"]["task_id"])
        update(tasks[-1], "TASK_RUNNING")
    elif kind == "MESSAGE":
        data = base64.b64decode(event["message"]["data"])
        call("MESSAGE", message={"data": base64.b64encode(b"echo:" + data).decode()})
    elif kind == "KILL":
        update(event["kill"]["task_id"], "TASK_KILLED")
    elif kind == "SHUTDOWN":
        for task_id in tasks:
            update(task_id, "TASK_KILLED")
        sys.exit(3)
'''


async def test_custom_executor(master: FakeMaster, agents: Agents, tmp_path: Path) -> None:
    script = tmp_path / "executor.py"
    script.write_text(CUSTOM_EXECUTOR)
    agent = await agents.start()
    task = custom_task("c1", "custom", f"{sys.executable} {script}")
    task["executor"]["command"]["environment"] = {"variables": [{"name": "GREETING",
                                                                 "value": "hi"}]}
    await master.run_task(task, roles=["web"])
    await master.wait_state("c1", "TASK_RUNNING")
    box = sandbox(agent, "custom")
    env = json.loads((box / "env.json").read_text())
    assert env["MESOS_FRAMEWORK_ID"] == FW and env["MESOS_EXECUTOR_ID"] == "custom"
    assert env["MESOS_DIRECTORY"] == env["MESOS_SANDBOX"] == str(box.resolve())
    assert env["MESOS_AGENT_ENDPOINT"] == f"127.0.0.1:{agent.port}"
    assert env["MESOS_SLAVE_ID"] == AGENT_ID
    assert env["MESOS_SLAVE_PID"] == f"slave(1)@127.0.0.1:{agent.port}"
    assert env["MESOS_CHECKPOINT"] == "0" and env["MESOS_HTTP_COMMAND_EXECUTOR"] == "0"
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "2secs"
    assert env["MESOS_ALLOCATION_ROLE"] == "web" and env["GREETING"] == "hi"
    assert "MESOS_WORK_DIR" not in env and "MESOS_RECOVERY_TIMEOUT" not in env
    # Later tasks go straight to the subscribed executor.
    await master.run_task(custom_task("c2", "custom", "unused"), roles=["web"])
    await master.wait_state("c2", "TASK_RUNNING")
    await master.send("FRAMEWORK_MESSAGE", {"framework_id": {"value": FW},
                                            "executor_id": {"value": "custom"},
                                            "data": b64(b"ping")})
    (message,) = await wait_until(lambda: master.of_type("EXECUTOR_MESSAGE"), "the echo")
    assert base64.b64decode(message["executor_message"]["data"]) == b"echo:ping"
    _, state = await agent.get("/state")
    (executor,) = state["frameworks"][0]["executors"]
    assert executor["id"] == "custom" and executor["directory"] == str(box.resolve())
    assert sorted(t["id"] for t in executor["tasks"]) == ["c1", "c2"]
    assert {t["state"] for t in executor["tasks"]} == {"TASK_RUNNING"}
    await master.send("SHUTDOWN_EXECUTOR", {"framework_id": {"value": FW},
                                            "executor_id": {"value": "custom"}})
    await master.wait_state("c1", "TASK_KILLED")
    await master.wait_state("c2", "TASK_KILLED")
    (exited,) = await wait_until(lambda: master.of_type("EXITED_EXECUTOR"), "EXITED_EXECUTOR")
    assert exited["exited_executor"]["status"] == 3 << 8
    events = (box / "events.log").read_text().split()
    assert events[:2] == ["SUBSCRIBED", "LAUNCH"] and events[-1] == "SHUTDOWN"
    # Every update was acknowledged to the executor once the agent took it over.
    assert events.count("ACKNOWLEDGED") >= 2


class EventReader:
    """Reads RecordIO events off one streaming response."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.decoder = recordio.Decoder()
        self.pending: list[dict[str, Any]] = []

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None at the end of the stream."""
        while not self.pending:
            chunk = await asyncio.wait_for(self.resp.content.readany(), WAIT)
            if not chunk:
                return None
            self.pending.extend(json.loads(r) for r in self.decoder.feed(chunk))
        return self.pending.pop(0)


async def test_executor_stream_replaced_and_updates_acknowledged(
    master: FakeMaster, agents: Agents
) -> None:
    agent = await agents.start()
    # The agent starts a process that never subscribes; the test speaks for it.
    await master.run_task(custom_task("t", "manual", "sleep 100"))
    await wait_until(lambda: sandbox(agent, "manual").exists(), "the sandbox")
    url = agent.url + "/api/v1/executor"
    ids = {"framework_id": {"value": FW}, "executor_id": {"value": "manual"}}
    subscribe = {"type": "SUBSCRIBE", **ids, "subscribe": {}}
    headers = {"Accept": "application/json"}
    async with aiohttp.ClientSession() as session:
        first = await session.post(url, json=subscribe, headers=headers)
        assert first.status == 200 and "Mesos-Stream-Id" not in first.headers
        one = EventReader(first)
        subscribed = await one.next()
        assert subscribed is not None and subscribed["type"] == "SUBSCRIBED"
        assert subscribed["subscribed"]["container_id"]["value"]
        launch = await one.next()
        assert launch is not None and launch["launch"]["task"]["task_id"] == {"value": "t"}
        # Re-subscribing names the task it was given (else the agent drops it, as Mesos).
        again = {**subscribe, "subscribe": {"unacknowledged_tasks": [launch["launch"]["task"]]}}
        second = await session.post(url, json=again, headers=headers)
        two = EventReader(second)
        assert (await two.next() or {}).get("type") == "SUBSCRIBED"
        assert await one.next() is None  # the old stream was closed
        uuid_b64 = b64(bytes(range(16)))
        status = {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                  "source": "SOURCE_EXECUTOR", "uuid": uuid_b64}
        async with session.post(url, json={"type": "UPDATE", **ids,
                                           "update": {"status": status}}) as resp:
            assert resp.status == 202
        ack = await two.next()
        assert ack == {"type": "ACKNOWLEDGED",
                       "acknowledged": {"task_id": {"value": "t"}, "uuid": uuid_b64}}
        forwarded = await master.wait_state("t", "TASK_RUNNING")
        assert forwarded["agent_id"] == {"value": AGENT_ID}
        assert forwarded["executor_id"] == {"value": "manual"}
        assert forwarded["uuid"] == uuid_b64 and "timestamp" in forwarded
        for body in ({"type": "MESSAGE", **ids, "message": {"data": b64(b"hey")}},
                     {"type": "HEARTBEAT", **ids}):
            async with session.post(url, json=body) as resp:
                assert resp.status == 202
        (message,) = await wait_until(lambda: master.of_type("EXECUTOR_MESSAGE"), "message")
        assert message["executor_message"]["data"] == b64(b"hey")
        second.close()
