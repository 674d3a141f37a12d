"""The scheduler driver and ``mesos-execute`` against a small scripted master.

The fake master is an aiohttp app on 127.0.0.1: SUBSCRIBE gets a chunked RecordIO
stream (SUBSCRIBED, HEARTBEAT, then scripted events and whatever a test pushes),
every other call is recorded with its headers and answered 202. Every wait is
bounded.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import mesos.scheduler as scheduler_pkg
from mesos.cli import execute
from mesos.scheduler import (
    CallError,
    DisconnectedError,
    Scheduler,
    SchedulerDriver,
    scalar_resources,
    task_info,
)
from mesos.scheduler._driver import _leader_from_location, _parse_master
from mesos.v1.recordio import encode

UUID_B64 = base64.b64encode(uuid.UUID(int=1).bytes).decode()
WAIT = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def offer(offer_id: str, cpus: float = 1.0, mem: float = 128.0) -> dict[str, Any]:
    resources = [
        {**r, "role": "*"} for r in scalar_resources({"cpus": cpus, "mem": mem, "disk": 100.0})
    ]
    return {
        "id": {"value": offer_id},
        "framework_id": {"value": "fw-1"},
        "agent_id": {"value": "agent-1"},
        "hostname": "localhost",
        "resources": resources,
    }


def update(task_id: str, state: str, *, with_uuid: bool = True, **extra: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "task_id": {"value": task_id},
        "state": state,
        "agent_id": {"value": "agent-1"},
        **extra,
    }
    if with_uuid:
        status["uuid"] = UUID_B64
    return {"type": "UPDATE", "update": {"status": status}}


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeMaster:
    heartbeat_interval: float = 15.0
    send_heartbeats: bool = True
    script: list[dict[str, Any]] = field(default_factory=list)
    redirect_to: str | None = None
    subscribe_status: int = 200
    on_call: Callable[[FakeMaster, dict[str, Any]], None] | None = None

    subscribes: list[Recorded] = field(default_factory=list)
    calls: list[Recorded] = field(default_factory=list)
    redirected: int = 0
    _queues: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    _server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", self._handle)
        self._server = TestServer(app, host="127.0.0.1", port=free_port())
        await self._server.start_server()

    async def close(self) -> None:
        self.drop()
        if self._server is not None:
            await self._server.close()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.port}"

    def push(self, event: dict[str, Any]) -> None:
        """Send an event on the live stream."""
        self._queues[-1].put_nowait(event)

    def drop(self) -> None:
        """End every open stream (the driver sees the master close it)."""
        for queue in self._queues:
            queue.put_nowait(None)

    def calls_of(self, call_type: str) -> list[Recorded]:
        return [c for c in self.calls if c.body.get("type") == call_type]

    async def wait_until(self, condition: Callable[[], object], what: str) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0.01)
        assert condition(), what

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.redirect_to is not None:
            self.redirected += 1
            location = f"//{self.redirect_to}{request.path}"
            return web.Response(status=307, headers={"Location": location})
        body = await request.json()
        recorded = Recorded(dict(request.headers), body)
        if body.get("type") == "SUBSCRIBE":
            self.subscribes.append(recorded)
            if self.subscribe_status != 200:
                return web.Response(status=self.subscribe_status, text="Bad subscribe")
            return await self._stream(request, body)
        self.calls.append(recorded)
        if self.on_call is not None:
            self.on_call(self, body)
        return web.Response(status=202)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        framework_id = (body.get("framework_id") or {}).get("value", "fw-1")
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "application/json",
                "Mesos-Stream-Id": f"stream-{len(self.subscribes) - 1}",
            },
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._queues.append(queue)
        first: list[dict[str, Any]] = [
            {
                "type": "SUBSCRIBED",
                "subscribed": {
                    "framework_id": {"value": framework_id},
                    "heartbeat_interval_seconds": self.heartbeat_interval,
                },
            }
        ]
        if self.send_heartbeats:
            first.append({"type": "HEARTBEAT"})
        for event in [*first, *self.script]:
            await response.write(encode(json.dumps(event).encode()))
        while request.transport is not None and not request.transport.is_closing():
            try:
                pushed = await asyncio.wait_for(queue.get(), 0.05)
            except TimeoutError:
                continue
            if pushed is None:
                break
            await response.write(encode(json.dumps(pushed).encode()))
        return response


class Recorder(Scheduler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.disconnects: list[str] = []

    def seen(self, kind: str) -> list[Any]:
        return [payload for name, payload in self.events if name == kind]

    async def on_subscribed(self, driver: SchedulerDriver, subscribed: dict[str, Any]) -> None:
        self.events.append(("subscribed", subscribed))

    async def on_disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        self.disconnects.append(reason)

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        self.events.append(("offers", offers))

    async def on_rescind(self, driver: SchedulerDriver, offer_id: dict[str, Any]) -> None:
        self.events.append(("rescind", offer_id))

    async def on_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        self.events.append(("update", status))

    async def on_message(self, driver: SchedulerDriver, message: dict[str, Any]) -> None:
        self.events.append(("message", message))

    async def on_failure(self, driver: SchedulerDriver, failure: dict[str, Any]) -> None:
        self.events.append(("failure", failure))

    async def on_error(self, driver: SchedulerDriver, message: str) -> None:
        self.events.append(("error", message))

    async def on_heartbeat(self, driver: SchedulerDriver) -> None:
        self.events.append(("heartbeat", None))


FRAMEWORK = {"user": "tester", "name": "test-framework", "failover_timeout": 60.0}


@pytest.fixture
async def master() -> AsyncIterator[FakeMaster]:
    fake = FakeMaster()
    await fake.start()
    yield fake
    await fake.close()


def fast_driver(address: str, handler: Scheduler, **kwargs: Any) -> SchedulerDriver:
    options: dict[str, Any] = {"backoff": 0.01, "backoff_max": 0.05, "connect_timeout": 2.0}
    options.update(kwargs)
    return SchedulerDriver(address, FRAMEWORK, handler, **options)


# --------------------------------------------------------------------------- subscribe


async def test_subscribe_dispatches_events_and_acknowledges(master: FakeMaster) -> None:
    master.script = [
        {"type": "OFFERS", "offers": {"offers": [offer("o1")]}},
        update("task-1", "TASK_LOST", with_uuid=False, source="SOURCE_MASTER"),
        update("task-1", "TASK_RUNNING"),
        {"type": "RESCIND", "rescind": {"offer_id": {"value": "o1"}}},
        {"type": "FAILURE", "failure": {"agent_id": {"value": "agent-1"}}},
        {"type": "NEW_IN_SOME_LATER_VERSION", "whatever": {}},
    ]
    handler = Recorder()
    async with fast_driver(master.address, handler) as driver:
        assert await driver.wait_subscribed(WAIT) == "fw-1"
        await master.wait_until(lambda: handler.seen("failure"), "all events dispatched")
        await master.wait_until(lambda: master.calls_of("ACKNOWLEDGE"), "an acknowledgement")
        assert driver.stream_id == "stream-0"

    sub = master.subscribes[0]
    assert sub.headers["Content-Type"] == "application/json"
    assert sub.headers["Accept"] == "application/json"
    assert "Mesos-Stream-Id" not in sub.headers
    assert sub.body == {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK}}

    kinds = [name for name, _ in handler.events]
    assert kinds == [
        "subscribed",
        "heartbeat",
        "offers",
        "update",
        "update",
        "rescind",
        "failure",
    ]
    assert handler.seen("offers")[0][0]["id"] == {"value": "o1"}

    # Only the update carrying a uuid is acknowledged, on the stream it came from.
    (ack,) = master.calls_of("ACKNOWLEDGE")
    assert ack.headers["Mesos-Stream-Id"] == "stream-0"
    assert ack.headers["Content-Type"] == "application/json"
    assert ack.body == {
        "type": "ACKNOWLEDGE",
        "framework_id": {"value": "fw-1"},
        "acknowledge": {
            "agent_id": {"value": "agent-1"},
            "task_id": {"value": "task-1"},
            "uuid": UUID_B64,
        },
    }


async def test_calls_carry_stream_id_and_mesos_shapes(master: FakeMaster) -> None:
    async with fast_driver(master.address, Scheduler()) as driver:
        await driver.wait_subscribed(WAIT)
        task = task_info(
            "t1", "agent-1", scalar_resources({"cpus": 0.1}), command={"value": "true"}
        )
        await driver.launch(["o1"], [task], {"refuse_seconds": 0.0})
        await driver.decline([{"value": "o2"}], {"refuse_seconds": 60.0})
        await driver.revive()
        await driver.suppress(["web"])
        await driver.kill("t1", "agent-1")
        await driver.shutdown("exec-1", "agent-1")
        await driver.reconcile(["t1", ("t2", "agent-1")])
        await driver.message("agent-1", "exec-1", b"hi")
        await driver.request([{"resources": scalar_resources({"cpus": 1.0})}])
        await driver.update_framework({"name": "renamed"})
        await driver.teardown()
        await asyncio.wait_for(driver.join(), WAIT)

    assert {c.headers.get("Mesos-Stream-Id") for c in master.calls} == {"stream-0"}
    assert all(c.body["framework_id"] == {"value": "fw-1"} for c in master.calls)
    bodies = {c.body["type"]: c.body for c in master.calls}
    assert bodies["ACCEPT"]["accept"] == {
        "offer_ids": [{"value": "o1"}],
        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}],
        "filters": {"refuse_seconds": 0.0},
    }
    assert bodies["DECLINE"]["decline"] == {
        "offer_ids": [{"value": "o2"}],
        "filters": {"refuse_seconds": 60.0},
    }
    assert "revive" not in bodies["REVIVE"]
    assert bodies["SUPPRESS"]["suppress"] == {"roles": ["web"]}
    assert bodies["KILL"]["kill"] == {
        "task_id": {"value": "t1"},
        "agent_id": {"value": "agent-1"},
    }
    assert bodies["SHUTDOWN"]["shutdown"] == {
        "executor_id": {"value": "exec-1"},
        "agent_id": {"value": "agent-1"},
    }
    assert bodies["RECONCILE"]["reconcile"] == {
        "tasks": [
            {"task_id": {"value": "t1"}},
            {"task_id": {"value": "t2"}, "agent_id": {"value": "agent-1"}},
        ]
    }
    assert bodies["MESSAGE"]["message"]["data"] == base64.b64encode(b"hi").decode()
    assert bodies["REQUEST"]["request"]["requests"][0]["resources"][0]["name"] == "cpus"
    info = bodies["UPDATE_FRAMEWORK"]["update_framework"]["framework_info"]
    assert info == {"name": "renamed", "user": "tester", "id": {"value": "fw-1"}}
    assert "teardown" not in bodies["TEARDOWN"]
    # A teardown is final: the stream closing after it is not a reason to reconnect.
    assert len(master.subscribes) == 1


# --------------------------------------------------------------------------- redirects


async def test_follows_redirect_to_the_leader(master: FakeMaster) -> None:
    standby = FakeMaster(redirect_to=master.address)
    await standby.start()
    try:
        async with fast_driver(standby.address, Scheduler()) as driver:
            await driver.wait_subscribed(WAIT)
            assert driver.master == master.address
            await driver.decline(["o1"])
    finally:
        await standby.close()
    assert standby.redirected == 1
    assert len(master.subscribes) == 1
    assert [c.body["type"] for c in master.calls] == ["DECLINE"]


def test_location_and_master_parsing() -> None:
    assert _leader_from_location("//10.0.0.2:5050/api/v1/scheduler") == "10.0.0.2:5050"
    assert _leader_from_location("http://h2:5051/master/api/v1/scheduler") == "h2:5051"
    assert _leader_from_location("h3:5052") == "h3:5052"
    assert _parse_master("example.com") == "example.com:5050"
    assert _parse_master("http://127.0.0.1:1234/") == "127.0.0.1:1234"
    assert _parse_master("[::1]:5050") == "[::1]:5050"
    with pytest.raises(ValueError, match="ZooKeeper"):
        _parse_master("zk://127.0.0.1:2181/mesos")
    with pytest.raises(ValueError):
        _parse_master("127.0.0.1:http")


# --------------------------------------------------------------------------- failover


async def test_resubscribes_with_framework_id_after_stream_drops(master: FakeMaster) -> None:
    handler = Recorder()
    async with fast_driver(master.address, handler) as driver:
        await driver.wait_subscribed(WAIT)
        master.drop()
        await master.wait_until(lambda: len(master.subscribes) == 2, "a second SUBSCRIBE")
        await driver.wait_subscribed(WAIT)
        await master.wait_until(lambda: driver.stream_id == "stream-1", "the new stream id")
        await driver.revive()

    again = master.subscribes[1].body
    assert again["framework_id"] == {"value": "fw-1"}
    assert again["subscribe"]["framework_info"]["id"] == {"value": "fw-1"}
    assert "Mesos-Stream-Id" not in master.subscribes[1].headers
    assert handler.disconnects == ["stream closed by the master"]
    assert len(handler.seen("subscribed")) == 2
    assert master.calls_of("REVIVE")[0].headers["Mesos-Stream-Id"] == "stream-1"


async def test_missed_heartbeats_trigger_reconnect() -> None:
    silent = FakeMaster(heartbeat_interval=0.05, send_heartbeats=False)
    await silent.start()
    handler = Recorder()
    try:
        async with fast_driver(silent.address, handler, missed_heartbeats=3) as driver:
            await driver.wait_subscribed(WAIT)
            await silent.wait_until(lambda: len(silent.subscribes) >= 2, "a re-subscription")
    finally:
        await silent.close()
    assert "missed heartbeats" in handler.disconnects[0]
    assert silent.subscribes[1].body["framework_id"] == {"value": "fw-1"}


async def test_gives_up_after_bounded_reconnects() -> None:
    driver = fast_driver(f"127.0.0.1:{free_port()}", Scheduler(), max_reconnects=2)
    with pytest.raises(DisconnectedError) as info:
        await asyncio.wait_for(driver.run(), WAIT)
    assert "cannot subscribe" in info.value.reason


async def test_subscribe_refusal_is_fatal() -> None:
    refusing = FakeMaster(subscribe_status=400)
    await refusing.start()
    try:
        with pytest.raises(CallError) as info:
            await asyncio.wait_for(fast_driver(refusing.address, Scheduler()).run(), WAIT)
    finally:
        await refusing.close()
    assert info.value.status == 400
    assert len(refusing.subscribes) == 1


class Broken(Scheduler):
    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        raise RuntimeError("handler bug")


async def test_handler_exception_stops_the_driver(master: FakeMaster) -> None:
    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    with pytest.raises(RuntimeError, match="handler bug"):
        await asyncio.wait_for(fast_driver(master.address, Broken()).run(), WAIT)


async def test_context_manager_reraises_driver_failure(master: FakeMaster) -> None:
    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    with pytest.raises(RuntimeError, match="handler bug"):
        async with fast_driver(master.address, Broken()) as driver:
            with pytest.raises(RuntimeError, match="handler bug"):
                await driver.wait_subscribed(WAIT)
                await asyncio.wait_for(driver.join(), WAIT)


async def test_error_event_reaches_the_handler(master: FakeMaster) -> None:
    master.script = [{"type": "ERROR", "error": {"message": "Framework has been removed"}}]
    handler = Recorder()
    async with fast_driver(master.address, handler):
        await master.wait_until(lambda: handler.seen("error"), "the ERROR event")
    assert handler.seen("error") == ["Framework has been removed"]


async def test_calls_need_a_subscription() -> None:
    driver = fast_driver("127.0.0.1:1", Scheduler())
    with pytest.raises(scheduler_pkg.NotSubscribedError):
        await driver.revive()


def test_exports_are_sorted_and_complete() -> None:
    exported = scheduler_pkg.__all__

    def kind(name: str) -> int:  # ruff's RUF022 order: CONSTANTS, Classes, functions
        return 0 if name.isupper() else 1 if name[0].isupper() else 2

    assert exported == sorted(exported, key=lambda n: (kind(n), n))
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(scheduler_pkg, name), name
    public = {n for n in vars(scheduler_pkg) if not n.startswith("_")}
    assert public - set(exported) == set()


# --------------------------------------------------------------------------- mesos-execute


def run_tasks_to(final: str, **extra: Any) -> Callable[[FakeMaster, dict[str, Any]], None]:
    """A master reaction: on ACCEPT, report the launched task RUNNING, then ``final``."""

    def react(fake: FakeMaster, body: dict[str, Any]) -> None:
        if body["type"] != "ACCEPT":
            return
        for op in body["accept"]["operations"]:
            for task in op["launch"]["task_infos"]:
                name = task["task_id"]["value"]
                fake.push(update(name, "TASK_RUNNING", source="SOURCE_EXECUTOR"))
                fake.push(update(name, final, source="SOURCE_EXECUTOR", **extra))

    return react


async def run_execute(*args: str) -> int:
    return await asyncio.wait_for(asyncio.to_thread(execute.main, list(args), {}), 30)


async def test_execute_runs_a_task_to_completion(
    master: FakeMaster, capsys: pytest.CaptureFixture[str]
) -> None:
    master.script = [
        {"type": "OFFERS", "offers": {"offers": [offer("small", cpus=0.05), offer("big")]}}
    ]
    master.on_call = run_tasks_to("TASK_FINISHED", message="Command exited with status 0")
    code = await run_execute(
        f"--master={master.address}", "--name=hello", "--command=echo hi", '--env={"A": "1"}'
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines() == [
        "Subscribed with ID fw-1",
        "Submitted task 'hello' to agent 'agent-1'",
        "Received status update TASK_RUNNING for task 'hello'",
        "  source: SOURCE_EXECUTOR",
        "Received status update TASK_FINISHED for task 'hello'",
        "  message: 'Command exited with status 0'",
        "  source: SOURCE_EXECUTOR",
    ]
    sub = master.subscribes[0].body["subscribe"]["framework_info"]
    assert sub["name"] == "mesos-execute instance"
    assert sub["role"] == "*"
    (accept,) = master.calls_of("ACCEPT")
    assert accept.body["accept"]["offer_ids"] == [{"value": "big"}]
    (task,) = accept.body["accept"]["operations"][0]["launch"]["task_infos"]
    assert task["task_id"] == {"value": "hello"}
    assert task["command"] == {
        "shell": True,
        "value": "echo hi",
        "environment": {"variables": [{"name": "A", "value": "1"}]},
    }
    assert {r["name"]: r["scalar"]["value"] for r in task["resources"]} == {
        "cpus": 0.1,
        "mem": 32.0,
    }
    assert all(r["role"] == "*" for r in task["resources"])
    assert [c.body["decline"]["offer_ids"] for c in master.calls_of("DECLINE")] == [
        [{"value": "small"}]
    ]
    assert len(master.calls_of("ACKNOWLEDGE")) == 2
    assert len(master.calls_of("TEARDOWN")) == 1


async def test_execute_failed_task_exits_1(
    master: FakeMaster, capsys: pytest.CaptureFixture[str]
) -> None:
    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    master.on_call = run_tasks_to(
        "TASK_FAILED", message="boom", reason="REASON_COMMAND_EXECUTOR_FAILED"
    )
    code = await run_execute(
        f"--master={master.address}", "--name=bad", "--command=false exit 3", "--no-shell"
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "Received status update TASK_FAILED for task 'bad'" in out
    assert "  message: 'boom'" in out
    assert "  reason: REASON_COMMAND_EXECUTOR_FAILED" in out
    (accept,) = master.calls_of("ACCEPT")
    command = accept.body["accept"]["operations"][0]["launch"]["task_infos"][0]["command"]
    assert command == {"shell": False, "value": "false", "arguments": ["false", "exit", "3"]}


@pytest.mark.slow
async def test_execute_times_out_and_tears_down(
    master: FakeMaster, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await run_execute(
        f"--master={master.address}", "--name=never", "--command=true", "--timeout=300ms"
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        "mesos-execute: Timed out after 300ms waiting for task 'never' (last state: not launched)"
    ]
    assert len(master.calls_of("TEARDOWN")) == 1

    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("tiny", mem=8.0)]}}]
    code = await run_execute(
        f"--master={master.address}", "--name=never", "--command=true", "--timeout=300ms"
    )
    assert code == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("(last state: not launched; none of 1 offers fit 'cpus:0.1;mem:32')")
    )
    assert len(master.calls_of("DECLINE")) == 1


async def test_execute_bad_resources_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_execute(
        "--master=127.0.0.1:1", "--name=x", "--command=true", "--resources=cpus:lots"
    )
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("mesos-execute: Failed to parse resources 'cpus:lots'")


@pytest.mark.slow
async def test_execute_unreachable_master(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = await run_execute(f"--master=127.0.0.1:{port}", "--name=x", "--command=true")
    err = capsys.readouterr().err
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"mesos-execute: Cannot reach master 127.0.0.1:{port}")


def test_execute_flag_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        execute.main(["--name=x"], {})
    assert info.value.code == 1
    assert "master" in capsys.readouterr().err
    assert execute.main(["--master=h:1", "--name=x"], {}) == 1
    assert capsys.readouterr().err == "mesos-execute: Missing required option --command\n"
    assert execute.main(["--master=h:1", "--name=x", "--command=true", "--env=[1]"], {}) == 1
    assert "--env must be a JSON object" in capsys.readouterr().err
    # The master may come from the environment, as every Mesos flag can.
    environ = {"MESOS_MASTER": "h:1", "MESOS_RESOURCES": "cpus:x"}
    assert execute.main(["--name=x", "--command=true"], environ) == 1
    assert "Failed to parse resources 'cpus:x'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the benchmark


def load_benchmark() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "launch_throughput.py"
    spec = importlib.util.spec_from_file_location("launch_throughput", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


async def test_launch_benchmark_against_fake_master(
    master: FakeMaster, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = load_benchmark()
    master.script = [
        {
            "type": "OFFERS",
            "offers": {"offers": [offer("o1", cpus=0.3), offer("o2", cpus=0.5, mem=32.0)]},
        }
    ]
    master.on_call = run_tasks_to("TASK_FINISHED")
    argv = [f"--master={master.address}", "-n", "5", "--cpus=0.1", "--mem=16", "--json"]
    code = await asyncio.wait_for(asyncio.to_thread(bench.main, [*argv, "--quiet"]), 30)
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    result = report["result"]
    assert result["finished"] == 5 and result["failed"] == 0
    assert result["tasks_per_s"] > 0
    assert result["latency_running_ms"]["n"] == 5
    assert result["latency_finished_ms"]["p99"] >= result["latency_finished_ms"]["p50"]
    assert report["machine"]["cpus"] >= 1
    assert "--json" in report["command_line"]
    accepts = master.calls_of("ACCEPT")
    launched = [len(a.body["accept"]["operations"][0]["launch"]["task_infos"]) for a in accepts]
    assert sorted(launched) == [2, 3]  # o2 is bounded by its memory
    assert len(master.calls_of("ACKNOWLEDGE")) == 10
    assert len(master.calls_of("SUPPRESS")) == 1
    assert len(master.calls_of("TEARDOWN")) == 1


def test_benchmark_percentiles() -> None:
    bench = load_benchmark()
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert bench.percentile(list(range(1, 101)), 99) == 99
    assert bench.summarize([]) == {"n": 0}
