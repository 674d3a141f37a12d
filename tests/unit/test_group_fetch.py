"""The agent's sender of executor events: a LAUNCH_GROUP waits for its tasks' URIs to
be fetched into their sandboxes, later events to that executor wait behind it, and a
failed fetch ends the executor instead of sending the group. Real directories; the
fetcher is stood in for so the test decides when a fetch ends."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, cast

from mesos.agent.events import SendToExecutor
from mesos.agent.fetcher import Fetcher, FetchError
from mesos.agent.group_fetch import GroupFetchSender, Target
from mesos.v1 import codec
from mesos.v1 import executor as ev1
from mesos.v1 import mesos as v1

KEY = ("fw", "ex")


class GatedFetcher:
    """Records each fetch and finishes it when ``gate`` opens (or fails it)."""

    def __init__(self, fail: bool = False) -> None:
        self.gate = asyncio.Event()
        self.fetched: list[tuple[list[str], str]] = []
        self.fail = fail

    async def fetch(self, uris: Sequence[v1.URI], sandbox: str,
                    user: str | None = None) -> list[Any]:
        await self.gate.wait()
        if self.fail:
            raise FetchError(uris[0].value, "not found")
        self.fetched.append(([u.value for u in uris], sandbox))
        return []


def group(*task_ids: str, uri: str | None = "file:///x") -> SendToExecutor:
    uris = [v1.URI(value=uri)] if uri else []
    tasks = [v1.TaskInfo(name=t, task_id=v1.TaskID(value=t), agent_id=v1.AgentID(value="a"),
                         command=v1.CommandInfo(value="true", uris=uris)) for t in task_ids]
    event = ev1.Event(type="LAUNCH_GROUP", launch_group=ev1.LaunchGroup(
        task_group=v1.TaskGroupInfo(tasks=tasks)))
    return SendToExecutor(*KEY, event)


def kill(task_id: str) -> SendToExecutor:
    return SendToExecutor(*KEY, ev1.Event(type="KILL", kill=ev1.Kill(
        task_id=v1.TaskID(value=task_id))))


def make(tmp_path: Path, fetcher: GatedFetcher) -> tuple[GroupFetchSender, list[str],
                                                          list[tuple[str, ...]],
                                                          list[asyncio.Task[None]]]:
    sent: list[str] = []
    failed: list[tuple[str, ...]] = []
    tasks: list[asyncio.Task[None]] = []

    async def get_fetcher() -> Fetcher:
        return cast(Fetcher, fetcher)

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        tasks.append(asyncio.get_running_loop().create_task(coro))

    sender = GroupFetchSender(
        send=lambda key, data: sent.append(codec.decode(data, ev1.Event).type),
        fetcher=get_fetcher,
        target=lambda f, e: Target(str(tmp_path), "cid", None),
        fail=lambda f, e, c, m: failed.append((f, e, c, m)),
        spawn=spawn)
    return sender, sent, failed, tasks


async def test_events_wait_behind_a_group_being_fetched(tmp_path: Path) -> None:
    fetcher = GatedFetcher()
    sender, sent, failed, tasks = make(tmp_path, fetcher)
    sender(group("a", "b"))
    sender(kill("a"))
    await asyncio.sleep(0)  # let the fetch start; it waits on the gate
    assert sent == []
    fetcher.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sent == ["LAUNCH_GROUP", "KILL"] and failed == []
    assert fetcher.fetched == [(["file:///x"], str(tmp_path / "tasks" / "a")),
                               (["file:///x"], str(tmp_path / "tasks" / "b"))]
    assert (tmp_path / "tasks" / "b").is_dir()
    sender(kill("b"))  # nothing held any more: straight through
    assert sent == ["LAUNCH_GROUP", "KILL", "KILL"]


async def test_group_without_uris_goes_straight_through(tmp_path: Path) -> None:
    sender, sent, _, tasks = make(tmp_path, GatedFetcher())
    sender(group("a", uri=None))
    assert sent == ["LAUNCH_GROUP"] and tasks == []


async def test_failed_fetch_ends_the_executor_and_sends_nothing(tmp_path: Path) -> None:
    fetcher = GatedFetcher(fail=True)
    sender, sent, failed, tasks = make(tmp_path, fetcher)
    sender(group("a"))
    sender(kill("a"))
    fetcher.gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert sent == []
    assert failed == [("fw", "ex", "cid", "Failed to fetch 'file:///x': not found")]
