"""The ``mesos`` CLI as an operator runs it: the installed command against a real cluster."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mesos.testing.cluster import Cluster, free_port, http_json, wait_for
from mesos.v1 import recordio

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
MESOS = BIN / "mesos"


def mesos(*args: str, master: str | None = None, env: dict[str, str] | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mesos`` command (MESOS_MASTER unset unless ``env`` sets it)."""
    assert MESOS.exists(), f"{MESOS} is not installed: run .venv/bin/pip install -e . --no-deps"
    base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
    argv = [str(MESOS), *(["--master", master] if master else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed run: exit status 1, nothing on stdout, one line on stderr."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def post(address: str, body: dict[str, Any]) -> int:
    """Status of a raw ``POST /api/v1`` (what the master or agent offers, checked directly)."""
    request = urllib.request.Request(f"http://{address}/api/v1", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Execute:
    """``mesos-execute`` running one task in the background, stopped by its PID."""

    def __init__(self, master: str, name: str, command: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [str(BIN / "mesos-execute"), f"--master={master}", f"--name={name}",
             f"--command={command}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def task_in_state(cluster: Cluster, task_id: str, state: str) -> dict[str, Any] | None:
    tasks = cluster.get(f"/master/tasks?task_id={task_id}")["tasks"]
    return next((t for t in tasks if t["state"] == state), None)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("mesos-cli"), agents=2) as c:
        yield c


@pytest.fixture(scope="module")
def sleeper(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """A running task that wrote two lines to stdout and one to stderr."""
    run = Execute(cluster.master_url, "sleeper",
                  "echo hello-stdout; echo hello-stderr >&2; echo bye-stdout; exec sleep 300")
    try:
        yield wait_for(lambda: task_in_state(cluster, "sleeper", "TASK_RUNNING"), 60,
                       "task sleeper to run")
    finally:
        run.stop()


def test_agent_list_table_and_json(cluster: Cluster) -> None:
    agents = cluster.get("/master/slaves")["slaves"]
    table = mesos("agent", "list", master=cluster.master_url)
    assert table.returncode == 0, table.stderr
    for agent in agents:
        row = next(line for line in table.stdout.splitlines() if agent["id"] in line)
        assert "active" in row and agent["pid"].split("@")[1] in row and "/4" in row
    as_json = mesos("--json", "agent", "list", master=cluster.master_url)
    assert as_json.returncode == 0, as_json.stderr
    assert sorted(a["id"] for a in json.loads(as_json.stdout)) == sorted(a["id"] for a in agents)
    # --json after the subcommand, and the master from MESOS_MASTER.
    from_env = mesos("agent", "list", "--json", env={"MESOS_MASTER": cluster.master_url})
    assert from_env.returncode == 0, from_env.stderr
    assert len(json.loads(from_env.stdout)) == 2


def test_framework_and_task_lists(cluster: Cluster, sleeper: dict[str, Any]) -> None:
    framework_id = sleeper["framework_id"]
    frameworks = mesos("framework", "list", master=cluster.master_url)
    assert frameworks.returncode == 0, frameworks.stderr
    row = next(line for line in frameworks.stdout.splitlines() if framework_id in line)
    assert "mesos-execute instance" in row and "active" in row
    listed = json.loads(mesos("framework", "list", "--json", master=cluster.master_url).stdout)
    assert framework_id in {f["id"] for f in listed}

    tasks = mesos("task", "list", master=cluster.master_url)
    assert tasks.returncode == 0, tasks.stderr
    row = next(line for line in tasks.stdout.splitlines() if line.startswith("sleeper "))
    assert "TASK_RUNNING" in row and framework_id in row and sleeper["slave_id"] in row
    as_json = json.loads(mesos("--json", "task", "list", master=cluster.master_url).stdout)
    mine = [t for t in as_json if t["id"] == "sleeper"]
    assert len(mine) == 1 and mine[0]["state"] == "TASK_RUNNING"

    other = mesos("task", "list", "--framework", "no-such-framework", master=cluster.master_url)
    assert other.returncode == 0 and "sleeper" not in other.stdout
    assert "No active tasks" in other.stdout


def test_task_logs_stdout_and_stderr(cluster: Cluster, sleeper: dict[str, Any]) -> None:
    out = mesos("task", "logs", "sleeper", master=cluster.master_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello-stdout\nbye-stdout\n"
    err = mesos("task", "logs", "sleeper", "--file", "stderr", master=cluster.master_url)
    assert err.returncode == 0, err.stderr
    assert "hello-stderr" in err.stdout.splitlines()  # the executor logs there too
    last = mesos("task", "logs", "sleeper", "--lines", "1", master=cluster.master_url)
    assert last.stdout == "bye-stdout\n"
    missing = mesos("task", "logs", "sleeper", "--file", "no-such-file", master=cluster.master_url)
    assert "404" in one_line_error(missing)
    climbing = mesos("task", "logs", "sleeper", "--file", "../../x", master=cluster.master_url)
    assert climbing.returncode == 2 and "inside the sandbox" in climbing.stderr
    unknown = mesos("task", "logs", "no-such-task", master=cluster.master_url)
    assert "no task 'no-such-task'" in one_line_error(unknown)


def test_task_logs_follow_until_the_task_ends(cluster: Cluster) -> None:
    run = Execute(cluster.master_url, "counter",
                  "for i in 1 2 3 4 5; do echo line$i; sleep 0.5; done")
    try:
        wait_for(lambda: task_in_state(cluster, "counter", "TASK_RUNNING")
                 or task_in_state(cluster, "counter", "TASK_FINISHED"), 60, "task counter to run")
        follow = mesos("task", "logs", "counter", "--follow", master=cluster.master_url,
                       timeout=120)
        assert follow.returncode == 0, follow.stderr
        assert follow.stdout == "".join(f"line{i}\n" for i in range(1, 6))
        assert task_in_state(cluster, "counter", "TASK_FINISHED") is not None
    finally:
        run.stop()

    tail = mesos("task", "logs", "counter", "-n", "2", master=cluster.master_url)
    assert tail.stdout == "line4\nline5\n"
    active = mesos("task", "list", master=cluster.master_url)
    assert "counter" not in active.stdout
    everything = mesos("task", "list", "--all", master=cluster.master_url)
    row = next(line for line in everything.stdout.splitlines() if line.startswith("counter "))
    assert "TASK_FINISHED" in row
    completed = json.loads(mesos("framework", "list", "--all", "--json",
                                 master=cluster.master_url).stdout)
    assert any(f["completed"] for f in completed)


def test_task_exec(cluster: Cluster, sleeper: dict[str, Any]) -> None:
    agent = next(a for a in cluster.get("/master/slaves")["slaves"]
                 if a["id"] == sleeper["slave_id"])
    address = agent["pid"].split("@")[1]
    # The agent serves the call (a body without its sub-message is a 400, not a 404/501).
    assert post(address, {"type": "LAUNCH_NESTED_CONTAINER_SESSION"}) == 400
    result = mesos("task", "exec", "sleeper", "--", "sh", "-c", "echo exec-ok; sleep 1; exit 3",
                   master=cluster.master_url)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "exec-ok\n"
    missing = mesos("task", "exec", "sleeper", "--", master=cluster.master_url)
    assert missing.returncode == 2 and "no command" in missing.stderr
    # Without -i a command that reads stdin reads EOF at once, as it always did.
    cat = mesos("task", "exec", "sleeper", "sh", "-c", "cat; echo cat-ended",
                master=cluster.master_url)
    assert cat.returncode == 0 and cat.stdout == "cat-ended\n", (cat.stdout, cat.stderr)


def test_task_attach_follows_output_until_the_task_ends(cluster: Cluster) -> None:
    """`mesos task attach` prints what the task writes from the attach on (through
    ATTACH_CONTAINER_OUTPUT) and returns once the task has ended."""
    run = Execute(cluster.master_url, "talker", (
        "for i in $(seq 1 1200); do [ -e go ] && break; sleep 0.05; done; echo bye; exit 0"))
    attach: subprocess.Popen[str] | None = None
    try:
        def sandbox() -> Path | None:
            for index in range(len(cluster.agents)):
                state = http_json(f"{cluster.agent_url(index)}/state")
                for fw in state["frameworks"]:
                    for ex in fw["executors"]:
                        if any(t["id"] == "talker" and t["state"] == "TASK_RUNNING"
                               for t in ex["tasks"]):
                            return Path(ex["directory"])
            return None

        directory = wait_for(sandbox, 60, "task talker to run")
        base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
        attach = subprocess.Popen(
            [str(MESOS), "--master", cluster.master_url, "task", "attach", "talker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=base)
        assert attach.stdout is not None
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(attach.stdout or []), daemon=True)
        reader.start()

        def pinged() -> bool:  # written to the task's stdout until the attach shows it
            with open(directory / "stdout", "a") as fh:
                fh.write("ping\n")
            return "ping\n" in seen

        wait_for(pinged, 60, "the attached client to print what the task writes",
                 interval=0.2)
        (directory / "go").touch()
        assert attach.wait(timeout=60) == 0, attach.stderr.read() if attach.stderr else ""
        reader.join(10)
        assert seen[-1] == "bye\n", seen
    finally:
        if attach is not None and attach.poll() is None:
            attach.kill()
            attach.wait()
        run.stop()


def test_task_exec_interactive(cluster: Cluster, sleeper: dict[str, Any]) -> None:
    """-i pipes our stdin to the command through ATTACH_CONTAINER_INPUT; EOF ends it."""
    assert MESOS.exists(), f"{MESOS} is not installed: run .venv/bin/pip install -e . --no-deps"
    base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
    result = subprocess.run(
        [str(MESOS), "--master", cluster.master_url, "task", "exec", "-i", "sleeper",
         "sh", "-c", "read a; echo got:$a; cat; echo err >&2; exit 7"],
        input="first\nsecond\nthird\n", capture_output=True, text=True, timeout=120,
        env=base)
    assert result.returncode == 7, (result.stdout, result.stderr)
    assert result.stdout == "got:first\nsecond\nthird\n"
    assert result.stderr == "err\n"
    # Long input, more than a pipe holds, all of it through cat in order.
    lines = "".join(f"line {i:06d}\n" for i in range(20000))
    long = subprocess.run(
        [str(MESOS), "--master", cluster.master_url, "task", "exec", "--interactive",
         "sleeper", "cat"], input=lines, capture_output=True, text=True, timeout=120,
        env=base)
    assert long.returncode == 0, long.stderr
    assert long.stdout == lines


def test_task_exec_interactive_input_the_command_cannot_take(cluster: Cluster,
                                                             sleeper: dict[str, Any]) -> None:
    """The command closed its stdin but runs on: the agent refuses our input (500
    Failed writing to stdin), so exec kills the command and exits 1 saying why, instead
    of waiting on a command that never ends."""
    assert MESOS.exists(), f"{MESOS} is not installed: run .venv/bin/pip install -e . --no-deps"
    base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
    exec_ = subprocess.Popen(
        [str(MESOS), "--master", cluster.master_url, "task", "exec", "-i", "sleeper",
         "sh", "-c", "exec 0<&-; echo closed; exec sleep 300"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=base)
    try:
        assert exec_.stdout is not None and exec_.stdin is not None
        assert exec_.stdout.readline() == "closed\n"  # its stdin is closed by now
        out, err = exec_.communicate(input="too late\n", timeout=120)
    finally:
        if exec_.poll() is None:
            exec_.kill()
            exec_.wait()
    assert exec_.returncode == 1, (out, err)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Failed writing to stdin" in errors[0], err
    assert "the command was killed" in errors[0], err


def test_quota_and_weights(cluster: Cluster) -> None:
    master = cluster.master_url
    assert mesos("weights", "set", "eng=2", "ops=0.5", master=master).returncode == 0
    table = mesos("weights", "get", master=master)
    assert [line.split() for line in table.stdout.splitlines() if line.startswith(("eng", "ops"))] \
        == [["eng", "2"], ["ops", "0.5"]]
    assert json.loads(mesos("weights", "get", "--json", master=master).stdout) == [
        {"role": "eng", "weight": 2.0}, {"role": "ops", "weight": 0.5}]

    done = mesos("quota", "set", "eng", "--cpus", "1", "--mem", "512", "--limit", "cpus:2",
                 master=master)
    assert done.returncode == 0, done.stderr
    configs = json.loads(mesos("quota", "get", "--json", master=master).stdout)
    assert configs == [{"role": "eng", "guarantees": {"cpus": {"value": 1.0}, "mem": {"value": 512.0}},
                        "limits": {"cpus": {"value": 2.0}, "mem": {"value": 512.0}}}]
    row = next(line for line in mesos("quota", "get", "eng", master=master).stdout.splitlines()
               if line.startswith("eng"))
    assert "cpus:1; mem:512" in row and "cpus:2; mem:512" in row

    # Refused by the CLI before anything is sent (usage errors, status 2) ...
    for args, needle in ((["weights", "set", "eng=lots"], "not a number"),
                         (["weights", "set", "eng=-1"], "positive"),
                         (["weights", "set", "eng"], "ROLE=WEIGHT"),
                         (["quota", "set", "eng"], "nothing to set"),
                         (["quota", "set", "eng", "--guarantee", "ports:[1-2]"], "scalar")):
        bad = mesos(*args, master=master)
        assert bad.returncode == 2 and needle in bad.stderr, (args, bad.stderr)
    # ... and by the master, whose message is shown.
    star = mesos("quota", "set", "*", "--cpus", "1", master=master)
    assert "UPDATE_QUOTA failed: 400" in (line := one_line_error(star)) and "*" in line
    upside = mesos("quota", "set", "eng", "--guarantee", "cpus:3", "--limit", "cpus:1",
                   master=master)
    assert "UPDATE_QUOTA failed: 400" in one_line_error(upside)
    bad_role = mesos("weights", "set", "/bad=1", master=master)
    assert "UPDATE_WEIGHTS failed: 400" in one_line_error(bad_role)
    # None of it changed anything.
    assert json.loads(mesos("quota", "get", "--json", master=master).stdout) == configs
    assert cluster.get("/master/weights") == [{"role": "eng", "weight": 2.0},
                                              {"role": "ops", "weight": 0.5}]

    assert mesos("quota", "remove", "eng", master=master).returncode == 0
    assert json.loads(mesos("quota", "get", "--json", master=master).stdout) == []


def test_calls_the_master_may_lack_are_named(cluster: Cluster) -> None:
    master = cluster.master_url
    agent_id = cluster.get("/master/slaves")["slaves"][0]["id"]
    for args, call, body in (
        (["maintenance", "status"], "GET_MAINTENANCE_STATUS", {"type": "GET_MAINTENANCE_STATUS"}),
        (["maintenance", "schedule", "get"], "GET_MAINTENANCE_SCHEDULE",
         {"type": "GET_MAINTENANCE_SCHEDULE"}),
    ):
        result = mesos(*args, master=master)
        if post(master, body) == 501:
            line = one_line_error(result)
            assert call in line and "does not support" in line
        else:
            assert result.returncode == 0, result.stderr
    reserve = mesos("reserve", agent_id, "cpus:1;mem:64", "--role", "eng", master=master)
    if post(master, {"type": "RESERVE_RESOURCES"}) == 501:
        assert "RESERVE_RESOURCES" in one_line_error(reserve)
    else:
        assert reserve.returncode == 0, reserve.stderr
        unreserve = mesos("unreserve", agent_id, "cpus:1;mem:64", "--role", "eng", master=master)
        assert unreserve.returncode == 0, unreserve.stderr
    bad = mesos("reserve", agent_id, "cpus:lots", "--role", "eng", master=master)
    assert bad.returncode == 2 and "RESOURCES" in bad.stderr
    gone = mesos("agent", "gone", "no-such-agent", "--yes", master=master)
    assert "Agent no-such-agent not found" in one_line_error(gone)


def test_unreachable_and_unusable_masters() -> None:
    port = free_port()  # nothing listens there
    down = mesos("agent", "list", master=f"127.0.0.1:{port}")
    line = one_line_error(down)
    assert f"cannot reach the master at 127.0.0.1:{port}" in line and "Traceback" not in line
    from_env = mesos("task", "list", env={"MESOS_MASTER": f"127.0.0.1:{port}"})
    assert f"127.0.0.1:{port}" in one_line_error(from_env)
    zk_down = mesos("--timeout", "2", "agent", "list", master=f"zk://127.0.0.1:{port}/mesos")
    assert f"cannot reach ZooKeeper at 127.0.0.1:{port}" in one_line_error(zk_down)
    nonsense = mesos("agent", "list", master="no-port-here")
    assert "invalid master 'no-port-here'" in one_line_error(nonsense)


def test_help_everywhere() -> None:
    for args in ([], ["agent"], ["agent", "list"], ["task", "logs"], ["task", "exec"],
                 ["quota", "set"], ["weights", "set"], ["maintenance", "schedule", "set"],
                 ["reserve"], ["framework", "list"]):
        result = mesos(*args, "--help")
        assert result.returncode == 0 and "Usage: mesos" in result.stdout, (args, result.stderr)


def test_master_found_through_zookeeper(cluster: Cluster, tmp_path: Path) -> None:
    """The leader is the lowest ``json.info_`` member of the group, as a master writes it."""
    from kazoo.client import KazooClient

    from mesos.testing.zk import ZooKeeperServer

    host, port = cluster.master_url.split(":")
    info = {"id": "cli-test", "ip": 16777343, "port": int(port), "pid": f"master@{cluster.master_url}",
            "hostname": host, "address": {"hostname": host, "ip": host, "port": int(port)}}
    with ZooKeeperServer(tmp_path / "zk") as zk:
        nobody = mesos("--timeout", "3", "agent", "list", master=zk.url("/mesos"))
        assert "no master is leading in" in one_line_error(nobody)
        client = KazooClient(hosts=zk.hosts)
        client.start(timeout=30)
        try:
            client.create("/mesos/json.info_", json.dumps(info).encode(), ephemeral=True,
                          sequence=True, makepath=True)
            found = mesos("agent", "list", "--json", master=zk.url("/mesos"))
            assert found.returncode == 0, found.stderr
            assert len(json.loads(found.stdout)) == 2
            url_file = tmp_path / "master-url"
            url_file.write_text(zk.url("/mesos") + "\n")
            via_file = mesos("agent", "list", env={"MESOS_MASTER": f"file://{url_file}"})
            assert via_file.returncode == 0, via_file.stderr
        finally:
            client.stop()
            client.close()


# How long the fake agent's session output may wait for a kill: longer than the CLI
# runs below may take, so a CLI that never kills its command hangs past their timeout.
OUTPUT_HOLD = 90.0
EXEC_TIMEOUT = 45.0


class NestedContainerAgent:
    """A master and an agent in one small server, the agent offering the nested container
    session calls, so ``task exec``'s side of that wire format is checked byte for byte
    apart from our own agent's. Runs its own loop in a thread; real sockets."""

    def __init__(self, hold_output_for_inputs: int = 0, input_statuses: tuple[int, ...] = (),
                 kill_status: int = 200, hold_output_until_killed: bool = False) -> None:
        self.port = free_port()
        # The session's output waits for this many input streams (as cat would).
        self.hold = hold_output_for_inputs
        self.inputs_in = asyncio.Event()
        # The answers to the input streams in turn (200 once they run out), and to
        # KILL_NESTED_CONTAINER (404: the command had ended already).
        self.input_statuses = list(input_statuses)
        self.kill_status = kill_status
        # The session's output waits for KILL_NESTED_CONTAINER, as cat's would for a
        # stdin that nobody closes (bounded: OUTPUT_HOLD seconds).
        self.hold_until_killed = hold_output_until_killed
        self.killed = asyncio.Event()
        self.calls: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # The ATTACH_CONTAINER_INPUT requests: their headers and decoded records.
        self.inputs: list[tuple[dict[str, str], list[dict[str, Any]]]] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _tasks(self, request: web.Request) -> web.Response:
        return web.json_response({"tasks": [{"id": "t1", "name": "t1", "framework_id": "fw",
                                             "slave_id": "S0", "state": "TASK_RUNNING"}]})

    async def _slaves(self, request: web.Request) -> web.Response:
        return web.json_response({"slaves": [{"id": "S0", "pid": f"slave(1)@{self.address}"}]})

    async def _state(self, request: web.Request) -> web.Response:
        executor = {"id": "t1", "container": "parent-1", "directory": "/sandbox",
                    "tasks": [{"id": "t1"}]}
        return web.json_response({"frameworks": [{"id": "fw", "executors": [executor]}]})

    async def _api(self, request: web.Request) -> web.StreamResponse:
        if request.content_type == "application/recordio":
            decoder = recordio.Decoder()
            sent = [json.loads(r) for r in decoder.feed(await request.read())]
            self.inputs.append((dict(request.headers), sent))
            if len(self.inputs) >= self.hold:
                self.inputs_in.set()
            status = self.input_statuses.pop(0) if self.input_statuses else 200
            return web.Response(status=status,
                                text="Failed writing to stdin" if status != 200 else None)
        call = await request.json()
        self.calls.append(call)
        self.headers.append(dict(request.headers))
        if call["type"] == "WAIT_NESTED_CONTAINER":
            return web.json_response({"type": "WAIT_NESTED_CONTAINER",
                                      "wait_nested_container": {"exit_status": 3 << 8}})
        if call["type"] == "KILL_NESTED_CONTAINER":
            self.killed.set()
            return web.Response(status=self.kill_status)
        response = web.StreamResponse(headers={"Content-Type": "application/recordio"})
        await response.prepare(request)
        if self.hold:
            await asyncio.wait_for(self.inputs_in.wait(), 30)
        if self.hold_until_killed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.killed.wait(), OUTPUT_HOLD)
        records = [{"type": "CONTROL", "control": {"type": "HEARTBEAT"}},
                   {"type": "DATA", "data": {"type": "STDOUT", "data": "exec-out\n"}},
                   {"type": "DATA", "data": {"type": "STDERR", "data": "exec-err\n"}}]
        stream = b""
        for record in records:
            data = record.get("data")
            if isinstance(data, dict):
                data["data"] = base64.b64encode(data["data"].encode()).decode()
            stream += recordio.encode(json.dumps(record).encode())
        for i in range(0, len(stream), 7):  # chunks that cut records anywhere
            await response.write(stream[i:i + 7])
        await response.write_eof()
        return response

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/master/tasks", self._tasks)
        app.router.add_get("/master/slaves", self._slaves)
        app.router.add_get("/state", self._state)
        app.router.add_post("/api/v1", self._api)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def __enter__(self) -> NestedContainerAgent:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(20)
        self.loop.close()


def test_task_exec_streams_a_nested_container_session() -> None:
    with NestedContainerAgent() as fake:
        result = mesos("task", "exec", "t1", "sh", "-c", "echo hi; exit 3", master=fake.address)
    assert result.returncode == 3, result.stderr
    assert result.stdout == "exec-out\n" and result.stderr == "exec-err\n"
    launch, wait = fake.calls
    session = launch["launch_nested_container_session"]
    assert launch["type"] == "LAUNCH_NESTED_CONTAINER_SESSION"
    assert session["container_id"]["parent"] == {"value": "parent-1"}
    assert session["command"] == {"shell": False, "value": "sh",
                                  "arguments": ["sh", "-c", "echo hi; exit 3"]}
    assert fake.headers[0]["Accept"] == "application/recordio"
    assert fake.headers[0]["Message-Accept"] == "application/json"
    assert wait["wait_nested_container"]["container_id"] == session["container_id"]
    # Without --interactive the command's stdin is closed at once: CONTAINER_ID, then EOF.
    [(headers, sent)] = fake.inputs
    assert headers["Content-Type"] == "application/recordio"
    assert headers["Message-Content-Type"] == "application/json"
    assert [r["type"] for r in sent] == ["ATTACH_CONTAINER_INPUT"] * 2
    assert sent[0]["attach_container_input"] == {
        "type": "CONTAINER_ID", "container_id": session["container_id"]}
    assert sent[1]["attach_container_input"] == {"type": "PROCESS_IO", "process_io": {
        "type": "DATA", "data": {"type": "STDIN", "data": ""}}}


def test_task_exec_interactive_sends_stdin_in_records() -> None:
    """-i: a first stream of the CONTAINER_ID record alone (as the Mesos CLI checks it can
    attach), then one with our stdin as STDIN records and an empty one for EOF."""
    with NestedContainerAgent(hold_output_for_inputs=2) as fake:
        assert MESOS.exists()
        base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
        result = subprocess.run(
            [str(MESOS), "--master", fake.address, "task", "exec", "-i", "t1", "cat"],
            input="line one\nline two\n", capture_output=True, text=True, timeout=60,
            env=base)
    assert result.returncode == 3, result.stderr
    (_, probe), (_, stream) = fake.inputs
    container_id = fake.calls[0]["launch_nested_container_session"]["container_id"]
    assert probe == [{"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": container_id}}]
    assert stream[0] == probe[0]
    data = [r["attach_container_input"]["process_io"]["data"] for r in stream[1:]]
    assert all(d["type"] == "STDIN" for d in data)
    assert b"".join(base64.b64decode(d["data"]) for d in data) == b"line one\nline two\n"
    assert data[-1]["data"] == ""  # EOF last


def exec_with_stdin(fake: NestedContainerAgent, *args: str,
                    stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``mesos task exec ARGS`` against ``fake`` with ``stdin`` piped in, bounded by
    EXEC_TIMEOUT (a hang fails the test with TimeoutExpired)."""
    assert MESOS.exists(), f"{MESOS} is not installed: run .venv/bin/pip install -e . --no-deps"
    base = {k: v for k, v in os.environ.items() if k != "MESOS_MASTER"}
    return subprocess.run([str(MESOS), "--master", fake.address, "task", "exec", *args],
                          input=stdin, capture_output=True, text=True, timeout=EXEC_TIMEOUT,
                          env=base)


def test_task_exec_input_refused_kills_the_command_and_fails() -> None:
    """Input the agent refuses would leave the command waiting on an open stdin and exec
    on its output: exec kills the command and exits 1 with one line saying why."""
    for args, stdin in ((("t1", "cat"), ""), (("-i", "t1", "cat"), "hi\n")):
        with NestedContainerAgent(input_statuses=(500,), hold_output_until_killed=True) as fake:
            result = exec_with_stdin(fake, *args, stdin=stdin)
        line = one_line_error(result)
        assert "ATTACH_CONTAINER_INPUT failed: 500" in line and "Failed writing to stdin" in line
        assert "the command was killed" in line, line
        launch, kill = fake.calls
        assert kill == {"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": launch["launch_nested_container_session"]["container_id"]}}
        assert len(fake.inputs) == 1  # -i: the check failed, no stream of our stdin followed


def test_task_exec_interactive_stream_refused_midway() -> None:
    """-i whose check passes but whose stream is refused: said at once, the command
    killed, exec exits 1 once the output ends (no WAIT: the status would be the kill's)."""
    with NestedContainerAgent(input_statuses=(200, 500), hold_output_until_killed=True) as fake:
        result = exec_with_stdin(fake, "-i", "t1", "cat", stdin="hi\n")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stdout == "exec-out\n"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "ATTACH_CONTAINER_INPUT failed: 500" in errors[0], result.stderr
    assert [c["type"] for c in fake.calls] == ["LAUNCH_NESTED_CONTAINER_SESSION",
                                              "KILL_NESTED_CONTAINER"]


def test_task_exec_input_refused_after_the_command_ended() -> None:
    """A refusal that raced the command's exit (the kill finds it gone: 404) is no error."""
    with NestedContainerAgent(input_statuses=(500,), kill_status=404) as fake:
        result = exec_with_stdin(fake, "t1", "cat")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stdout == "exec-out\n" and result.stderr == "exec-err\n"
    assert [c["type"] for c in fake.calls] == ["LAUNCH_NESTED_CONTAINER_SESSION",
                                              "KILL_NESTED_CONTAINER", "WAIT_NESTED_CONTAINER"]
