"""A fake agent for executor tests: just enough of the v1 Executor API to drive one
executor process (the command executor or the default executor)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

FRAMEWORK_ID = "fw-1"
WAIT = 10.0  # bound of every single wait
TERMINAL = ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST")


class FakeAgent:
    """Serves ``/api/v1/executor`` for one executor id.

    Calls with a wrong envelope (content type, framework or executor id, Accept on
    SUBSCRIBE, unknown type) are answered 400 and recorded in ``bad_calls``; the
    fixtures assert it is empty at the end.
    """

    def __init__(self, executor_id: str, *, executor_type: str | None = None,
                 container_id: str | None = None) -> None:
        self.executor_id = executor_id
        self.executor_type = executor_type
        self.container_id = container_id
        self.app = web.Application()
        self.app.router.add_post("/api/v1/executor", self.handle)
        self.server = TestServer(self.app, host="127.0.0.1")
        self.subscribes: list[dict[str, Any]] = []
        self.subscribe_times: list[float] = []
        self.updates: list[dict[str, Any]] = []
        self.update_times: list[float] = []
        self.update_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.bad_calls: list[str] = []
        self.auto_ack = True
        self.split_records = False
        self.capabilities: list[str] = []
        self.on_subscribe: list[dict[str, Any]] = []  # events sent right after SUBSCRIBED
        self.subscribed = asyncio.Event()
        self._stream: web.StreamResponse | None = None
        self._stream_done = asyncio.Event()
        self._closing = False
        self._acks: set[asyncio.Future[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    async def start(self) -> None:
        await self.server.start_server()

    async def stop(self) -> None:
        self._closing = True
        self._stream_done.set()
        await self.server.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = await request.json()
        if (
            request.content_type != "application/json"
            or call.get("framework_id") != {"value": FRAMEWORK_ID}
            or call.get("executor_id") != {"value": self.executor_id}
        ):
            self.bad_calls.append(json.dumps(call))
            return web.Response(status=400, text="bad envelope")
        if call["type"] == "SUBSCRIBE":
            if request.headers.get("Accept") != "application/json":
                self.bad_calls.append(f"SUBSCRIBE with Accept {request.headers.get('Accept')!r}")
            return await self._subscribe(request, call)
        if call["type"] == "UPDATE":
            status = call["update"]["status"]
            self.updates.append(status)
            self.update_times.append(time.perf_counter())
            self.update_queue.put_nowait(status)
            if self.auto_ack:
                asyncio.get_running_loop().call_soon(self._ack, status)
            return web.Response(status=202)
        self.bad_calls.append(call["type"])
        return web.Response(status=400, text=f"unexpected call {call['type']}")

    async def _subscribe(self, request: web.Request, call: dict[str, Any]) -> web.StreamResponse:
        self.subscribe_times.append(time.perf_counter())
        self.subscribes.append(call)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self._stream = response
        self._stream_done = asyncio.Event()
        done = self._stream_done
        executor_info: dict[str, Any] = {"executor_id": {"value": self.executor_id}}
        if self.executor_type is not None:
            executor_info["type"] = self.executor_type
        subscribed: dict[str, Any] = {
            "executor_info": executor_info,
            "framework_info": {
                "id": {"value": FRAMEWORK_ID},
                "user": "nobody",
                "name": "test",
                "capabilities": [{"type": c} for c in self.capabilities],
            },
            "agent_info": {"id": {"value": "agent-1"}, "hostname": "localhost", "port": 5051},
        }
        if self.container_id is not None:
            subscribed["container_id"] = {"value": self.container_id}
        await self.send({"type": "SUBSCRIBED", "subscribed": subscribed})
        for event in self.on_subscribe:
            await self.send(event)
        self.on_subscribe = []
        self.subscribed.set()
        await done.wait()
        if self._stream is response:
            self._stream = None
        return response

    async def send(self, event: dict[str, Any]) -> None:
        assert self._stream is not None, "executor not subscribed"
        data = json.dumps(event, separators=(",", ":")).encode()
        record = str(len(data)).encode() + b"\n" + data
        if self.split_records:  # one HTTP chunk per few bytes, cutting through everything
            for index in range(0, len(record), 7):
                await self._stream.write(record[index : index + 7])
        else:
            await self._stream.write(record)

    def _ack(self, status: dict[str, Any]) -> None:
        if self._stream is None or self._closing:
            return
        event = {
            "type": "ACKNOWLEDGED",
            "acknowledged": {"task_id": status["task_id"], "uuid": status["uuid"]},
        }
        task = asyncio.ensure_future(self.send(event))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    def end_stream(self) -> None:
        """Finish the SUBSCRIBE response (the executor sees the stream end)."""
        self._stream_done.set()

    async def next_update(self, timeout: float = WAIT) -> dict[str, Any]:
        return await asyncio.wait_for(self.update_queue.get(), timeout)

    async def states_until_terminal(self, timeout: float = WAIT) -> list[str]:
        """One task's states, in order, until a terminal one."""
        states: list[str] = []
        while True:
            status = await self.next_update(timeout)
            states.append(status["state"])
            if status["state"] in TERMINAL:
                return states

    async def states(self, task_ids: list[str], timeout: float = WAIT) -> dict[str, list[str]]:
        """Each task's states, in order, until every one of ``task_ids`` is terminal."""
        seen: dict[str, list[str]] = {task_id: [] for task_id in task_ids}
        deadline = time.monotonic() + timeout
        while not all(seen[t] and seen[t][-1] in TERMINAL for t in task_ids):
            status = await self.next_update(max(0.01, deadline - time.monotonic()))
            seen.setdefault(status["task_id"]["value"], []).append(status["state"])
        return seen

    def last(self, task_id: str) -> dict[str, Any]:
        return [s for s in self.updates if s["task_id"]["value"] == task_id][-1]
