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
import logging
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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
from mesos.scheduler._driver import _leader_from_location
from mesos.scheduler._leader import master_address, parse_master_spec
from mesos.v1.mesos import Address, MasterInfo
from mesos.v1.recordio import encode
from mesos.zookeeper import ZkUrl

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
    # "answer": 202 at once. "late": close the streams, answer once the driver has
    # closed its stream (like a master writing its registry first). "close": close
    # the streams, then the TEARDOWN connection, unanswered. "drop": only the latter.
    teardown: str = "answer"
    # Answer the next calls (not SUBSCRIBE) with these statuses, first to last; a
    # 307 names ``call_redirect_to`` as the leader.
    call_statuses: list[int] = field(default_factory=list)
    call_redirect_to: str | None = None

    subscribes: list[Recorded] = field(default_factory=list)
    calls: list[Recorded] = field(default_factory=list)
    redirected: int = 0
    _queues: list[asyncio.Queue[dict[str, Any] | None]] = field(default_factory=list)
    _streams: list[web.Request] = field(default_factory=list)
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
        if self.call_statuses:
            status = self.call_statuses.pop(0)
            headers = {"Location": f"//{self.call_redirect_to}{request.path}"} if status == 307 else {}
            return web.Response(status=status, headers=headers)
        if self.on_call is not None:
            self.on_call(self, body)
        if body.get("type") == "TEARDOWN" and self.teardown != "answer":
            return await self._teardown(request)
        return web.Response(status=202)

    async def _teardown(self, request: web.Request) -> web.StreamResponse:
        if self.teardown in ("late", "close"):
            self.drop()
        if self.teardown == "late":
            # Bounded: the answer comes once the stream connections are closed, and
            # then when the driver cuts this request off or after 0.5 s, whichever
            # is first (a driver that cut it off never sees the answer).
            async with asyncio.timeout(WAIT):
                while any(r.transport is not None for r in self._streams):
                    await asyncio.sleep(0.01)
            for _ in range(50):
                if request.transport is None or request.transport.is_closing():
                    break
                await asyncio.sleep(0.01)
            return web.Response(status=202)
        if self.teardown == "close":
            # Let the end of the stream reach the driver before cutting this one.
            async with asyncio.timeout(WAIT):
                while any(r.transport is not None for r in self._streams):
                    await asyncio.sleep(0.01)
        assert request.transport is not None
        request.transport.close()
        return web.Response(status=202)  # never reaches the driver

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
        response.force_close()  # a stream's end closes its connection, like a master's
        await response.prepare(request)
        self._streams.append(request)
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
    assert parse_master_spec("example.com") == "example.com:5050"
    assert parse_master_spec("http://127.0.0.1:1234/") == "127.0.0.1:1234"
    assert parse_master_spec("[::1]:5050") == "[::1]:5050"
    with pytest.raises(ValueError):
        parse_master_spec("127.0.0.1:http")
    with pytest.raises(ValueError, match="zk://"):
        parse_master_spec("zoo://127.0.0.1:2181/mesos")


def test_zookeeper_and_file_masters(tmp_path: Path) -> None:
    zk = parse_master_spec("zk://u:p@127.0.0.1:2181,127.0.0.2:2182/mesos")
    assert isinstance(zk, ZkUrl)
    assert (zk.hosts, zk.path, zk.credentials) == (
        "127.0.0.1:2181,127.0.0.2:2182", "/mesos", ("u", "p"))
    holder = tmp_path / "master"
    holder.write_text("zk://127.0.0.1:2181/other\n")
    assert parse_master_spec(f"file://{holder}") == ZkUrl((("127.0.0.1", 2181),), "/other")
    holder.write_text("10.0.0.7:5055")
    assert parse_master_spec(f"file://{holder}") == "10.0.0.7:5055"
    with pytest.raises(ValueError, match="Cannot read"):
        parse_master_spec(f"file://{tmp_path / 'missing'}")
    with pytest.raises(ValueError):
        parse_master_spec("zk://127.0.0.1:2181/mesos/")
    # The driver accepts them (it connects only once run).
    driver = SchedulerDriver("zk://127.0.0.1:1/mesos", FRAMEWORK, Scheduler())
    assert driver.master is None


def test_leader_address_from_master_info() -> None:
    full = MasterInfo(id="m", ip=16777343, port=5050, pid="master@10.0.0.1:5051",
                      address=Address(ip="10.0.0.2", port=5052, hostname="h"))
    assert master_address(full) == "10.0.0.2:5052"
    assert master_address(MasterInfo(id="m", ip=0, port=5050, pid="master@10.0.0.1:5051")) == (
        "10.0.0.1:5051")
    assert master_address(MasterInfo(id="m", ip=16777343, port=5053)) == "127.0.0.1:5053"
    assert master_address(MasterInfo(id="m", ip=0, port=5054, hostname="h4")) == "h4:5054"
    assert master_address(MasterInfo(id="m", ip=0, port=0)) is None


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


async def test_a_call_redirected_by_a_deposed_master_resubscribes_at_the_leader(
    master: FakeMaster,
) -> None:
    """The master we are subscribed to stops leading: it answers calls with 307."""
    leader = FakeMaster()
    await leader.start()
    leader_address = leader.address
    handler = Recorder()
    try:
        async with fast_driver(master.address, handler) as driver:
            await driver.wait_subscribed(WAIT)
            master.call_statuses = [307]
            master.call_redirect_to = leader.address
            with pytest.raises(scheduler_pkg.NotSubscribedError, match="no longer leads"):
                await driver.revive()
            await leader.wait_until(lambda: driver.subscribed and leader.subscribes,
                                    "a subscription at the leader")
            assert driver.master == leader.address
            await driver.revive()
    finally:
        await leader.close()
    (again,) = leader.subscribes
    assert again.body["framework_id"] == {"value": "fw-1"}
    assert again.body["subscribe"]["framework_info"]["id"] == {"value": "fw-1"}
    assert [c.body["type"] for c in leader.calls] == ["REVIVE"]
    assert handler.disconnects == [
        f"master {master.address} no longer leads (it redirected REVIVE to {leader_address})"]


async def test_a_503_to_a_call_resubscribes(master: FakeMaster) -> None:
    handler = Recorder()
    async with fast_driver(master.address, handler) as driver:
        await driver.wait_subscribed(WAIT)
        master.call_statuses = [503]
        with pytest.raises(scheduler_pkg.NotSubscribedError, match="503"):
            await driver.suppress()
        await master.wait_until(lambda: len(master.subscribes) == 2 and driver.subscribed,
                                "a second subscription")
    assert master.subscribes[1].body["framework_id"] == {"value": "fw-1"}
    assert len(handler.disconnects) == 1 and "503" in handler.disconnects[0]


class DeclinesEverything(Scheduler):
    def __init__(self) -> None:
        self.offers = 0

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        self.offers += 1
        await driver.decline([o["id"] for o in offers])


async def test_a_handler_call_meeting_a_deposed_master_resubscribes_instead_of_failing(
    master: FakeMaster,
) -> None:
    """Mesos' library drops calls it cannot deliver; the driver re-subscribes."""
    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    master.call_statuses = [503]
    handler = DeclinesEverything()
    async with fast_driver(master.address, handler) as driver:
        await master.wait_until(lambda: handler.offers == 2 and master.calls_of("DECLINE")
                                and len(master.calls) == 2, "the offer again, declined")
        assert driver.subscribed
    assert len(master.subscribes) == 2


async def test_a_handler_bug_that_looks_like_a_network_error_still_stops_the_driver(
    master: FakeMaster,
) -> None:
    class Flaky(Scheduler):
        async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
            raise ConnectionResetError("the handler's own socket")

    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    with pytest.raises(ConnectionResetError, match="own socket"):
        await asyncio.wait_for(fast_driver(master.address, Flaky()).run(), WAIT)
    assert len(master.subscribes) == 1


# --------------------------------------------------------------------------- teardown


async def test_teardown_waits_for_an_answer_that_comes_after_the_stream_closes(
    master: FakeMaster, caplog: pytest.LogCaptureFixture
) -> None:
    """The master closes the stream first and answers after writing its registry:
    the driver must not cut the TEARDOWN off when it sees the stream end."""
    master.teardown = "late"
    driver = fast_driver(master.address, Scheduler())
    driver.start()
    await driver.wait_subscribed(WAIT)
    with caplog.at_level(logging.INFO, logger="mesos.scheduler"):
        await asyncio.wait_for(driver.teardown(), WAIT)
        await asyncio.wait_for(driver.join(), WAIT)
    assert len(master.calls_of("TEARDOWN")) == 1
    assert len(master.subscribes) == 1
    # It got the answer (not merely concluded the master acted from the closed stream).
    assert "closed the connection" not in caplog.text


async def test_teardown_cut_off_after_the_master_closed_the_stream_is_done(
    master: FakeMaster, caplog: pytest.LogCaptureFixture
) -> None:
    master.teardown = "close"
    driver = fast_driver(master.address, Scheduler(), call_timeout=WAIT)
    driver.start()
    await driver.wait_subscribed(WAIT)
    with caplog.at_level(logging.INFO, logger="mesos.scheduler"):
        await asyncio.wait_for(driver.teardown(), WAIT)
        await asyncio.wait_for(driver.join(), WAIT)
    assert len(master.subscribes) == 1
    assert "the master closed the connection after closing our stream" in caplog.text


async def test_teardown_cut_off_with_the_stream_still_open_is_an_error(
    master: FakeMaster,
) -> None:
    master.teardown = "drop"
    driver = fast_driver(master.address, Scheduler(), call_timeout=0.5)
    driver.start()
    try:
        await driver.wait_subscribed(WAIT)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await asyncio.wait_for(driver.teardown(), WAIT)
        assert driver.subscribed  # not torn down: the driver carries on
    finally:
        await driver.stop()


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


@pytest.mark.parametrize("teardown", ["late", "close", "drop"])
@pytest.mark.parametrize(("final", "code"), [("TASK_FINISHED", 0), ("TASK_KILLED", 1)])
async def test_execute_exit_status_is_the_tasks_whatever_teardown_meets(
    master: FakeMaster, capsys: pytest.CaptureFixture[str], teardown: str, final: str, code: int
) -> None:
    """A TEARDOWN the master answers late or cuts off is no error; the task decides."""
    master.script = [{"type": "OFFERS", "offers": {"offers": [offer("o1")]}}]
    master.on_call = run_tasks_to(final)
    master.teardown = teardown
    assert await run_execute(
        f"--master={master.address}", "--name=t", "--command=true") == code
    out, err = capsys.readouterr()
    assert f"Received status update {final} for task 't'" in out
    assert "Traceback" not in err
    assert err == "", err  # the driver's warnings stay below --logging_level=ERROR
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
