"""The sandbox garbage collector running on its own: real timers, real directories.

Delays are short (a fraction of a second); the tests wait on the futures
``schedule`` returns, never on sleeps. The "full disk" is a stand-in usage
function: filling the real filesystem to 90% is not something a test may do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.gc import GarbageCollector

WAIT = 60.0


def sandbox(root: Path, *parts: str) -> Path:
    path = root.joinpath(*parts)
    (path / "stdout").parent.mkdir(parents=True, exist_ok=True)
    (path / "stdout").write_text("output\n")
    return path


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[Callable[..., GarbageCollector]]:
    made: list[GarbageCollector] = []

    def factory(**kw: Any) -> GarbageCollector:
        gc = GarbageCollector(str(tmp_path), **kw)
        gc.start()
        made.append(gc)
        return gc

    yield factory
    for gc in made:
        await gc.stop()


async def test_scheduled_sandboxes_are_removed_after_the_delay(
    collector: Callable[..., GarbageCollector], tmp_path: Path,
) -> None:
    gc = collector(gc_delay=3600.0, disk_watch_interval=3600.0)
    first = sandbox(tmp_path, "fw", "executors", "e1", "runs", "c1")
    second = sandbox(tmp_path, "fw", "executors", "e2", "runs", "c2")
    later = gc.schedule(0.4, str(second))
    sooner = gc.schedule(0.1, str(first))
    assert await asyncio.wait_for(sooner, WAIT) is True
    assert not first.exists() and second.exists()
    assert await asyncio.wait_for(later, WAIT) is True
    assert not second.exists()
    assert (tmp_path / "fw" / "executors").is_dir()  # only what was scheduled goes


async def test_a_reused_executor_directory_is_kept(
    collector: Callable[..., GarbageCollector], tmp_path: Path,
) -> None:
    gc = collector(gc_delay=3600.0, disk_watch_interval=3600.0)
    executor = sandbox(tmp_path, "fw", "executors", "e")
    old_run = sandbox(executor, "runs", "old")
    framework_done = gc.schedule(0.2, str(tmp_path / "fw"))
    executor_done = gc.schedule(0.2, str(executor))
    run_done = gc.schedule(0.3, str(old_run))
    # The executor is launched again: its directory (and the framework's) stay.
    new_run = sandbox(executor, "runs", "new")
    assert gc.unschedule_for(str(new_run)) == [str(tmp_path / "fw"), str(executor)]
    assert await asyncio.wait_for(framework_done, WAIT) is False
    assert await asyncio.wait_for(executor_done, WAIT) is False
    assert await asyncio.wait_for(run_done, WAIT) is True  # the old run still goes
    assert new_run.exists() and not old_run.exists()


async def test_a_filling_disk_shortens_how_long_sandboxes_live(
    collector: Callable[..., GarbageCollector], tmp_path: Path,
) -> None:
    usage = {"value": 0.0}
    checked = asyncio.Event()

    def disk_usage(path: str) -> float:
        assert path == str(tmp_path)
        checked.set()
        return usage["value"]

    gc = collector(gc_delay=3600.0, disk_watch_interval=0.05, gc_disk_headroom=0.1,
                   disk_usage=disk_usage)
    young = sandbox(tmp_path, "young")
    old = sandbox(tmp_path, "old")
    young_done = gc.schedule(3600.0, str(young))  # just finished
    old_done = gc.schedule(600.0, str(old))  # finished 50 minutes ago
    await asyncio.wait_for(checked.wait(), WAIT)
    checked.clear()
    await asyncio.wait_for(checked.wait(), WAIT)  # at least one full check at 0%: max age 54 minutes
    assert young.exists() and old.exists()
    # 80% used: max age 6 minutes, so the 50-minute-old sandbox goes, the new one stays.
    usage["value"] = 0.8
    assert await asyncio.wait_for(old_done, WAIT) is True
    assert gc.max_allowed_age == pytest.approx(360.0)
    assert young.exists() and not young_done.done()
    # Past the headroom: nothing may stay.
    usage["value"] = 0.95
    assert await asyncio.wait_for(young_done, WAIT) is True
    assert not young.exists()
