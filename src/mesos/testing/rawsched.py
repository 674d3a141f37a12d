"""A raw v1 Scheduler API client for protocol tests: exact bytes, exact status codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from mesos.v1.recordio import Decoder


class RawScheduler:
    """Subscribes over HTTP and queues every event the master streams back."""

    def __init__(self, master: str) -> None:
        self.base = f"http://{master}"
        self.session = aiohttp.ClientSession()
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stream_id: str | None = None
        self.framework_id: str | None = None
        self.response: aiohttp.ClientResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.seen: list[dict[str, Any]] = []

    async def subscribe(self, framework_info: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info, **extra}}
        if "id" in framework_info:
            body["framework_id"] = framework_info["id"]
        self.response = await self.session.post(
            f"{self.base}/api/v1/scheduler", json=body,
            headers={"Accept": "application/json"}, timeout=aiohttp.ClientTimeout(total=None),
        )
        if self.response.status != 200:
            raise AssertionError(f"SUBSCRIBE answered {self.response.status}: {await self.response.text()}")
        self.stream_id = self.response.headers["Mesos-Stream-Id"]
        self._reader = asyncio.create_task(self._read(self.response))
        subscribed = await self.next_event("SUBSCRIBED")
        self.framework_id = subscribed["subscribed"]["framework_id"]["value"]
        return subscribed

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        decoder = Decoder()
        try:
            async for chunk in response.content.iter_any():
                for record in decoder.feed(chunk):
                    event = json.loads(record)
                    self.seen.append(event)
                    await self.events.put(event)
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        await self.events.put({"type": "__CLOSED__"})

    async def next_event(self, type_: str, timeout: float = 10.0, skip: tuple[str, ...] = ("HEARTBEAT",)) -> dict[str, Any]:
        """The next event of ``type_``; other types in ``skip`` are passed over."""
        async def wait() -> dict[str, Any]:
            while True:
                event = await self.events.get()
                if event["type"] == type_:
                    return event
                if event["type"] not in skip and type_ != "*":
                    raise AssertionError(f"expected {type_}, got {event}")
                if type_ == "*":
                    return event
        return await asyncio.wait_for(wait(), timeout)

    async def call(self, body: dict[str, Any], *, stream_id: str | None = "default",
                   content_type: str = "application/json") -> tuple[int, str]:
        headers = {"Content-Type": content_type}
        sid = self.stream_id if stream_id == "default" else stream_id
        if sid is not None:
            headers["Mesos-Stream-Id"] = sid
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        async with self.session.post(f"{self.base}/api/v1/scheduler", data=data, headers=headers) as r:
            return r.status, await r.text()

    def fw(self) -> dict[str, str]:
        assert self.framework_id is not None
        return {"value": self.framework_id}

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.response is not None:
            self.response.close()

    async def close(self) -> None:
        await self.disconnect()
        await self.session.close()
