"""Sandbox GC: the schedule's arithmetic on a fake clock, and the driver's removals."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from mesos.agent.gc import (
    FLAGS,
    GarbageCollector,
    GcSchedule,
    disk_usage_fraction,
    max_allowed_age,
)
from mesos.flags import parse_flags

WEEK = 7 * 86400.0


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_flag_defaults_are_mesos_defaults() -> None:
    flags = parse_flags("mesos-agent", FLAGS, [], {})
    assert flags.gc_delay == WEEK
    assert flags.disk_watch_interval == 60.0
    assert flags.gc_disk_headroom == 0.1


@pytest.mark.parametrize(
    ("usage", "expected_fraction"),
    [(0.0, 0.9), (0.5, 0.4), (0.85, 0.05), (0.9, 0.0), (1.0, 0.0)],
)
def test_max_allowed_age_shrinks_as_the_disk_fills(usage: float, expected_fraction: float) -> None:
    assert max_allowed_age(WEEK, 0.1, usage) == pytest.approx(WEEK * expected_fraction)


def test_schedule_due_and_next_deadline() -> None:
    s = GcSchedule()
    assert s.next_deadline() is None and s.due(0.0) == []
    s.schedule("/w/b", 20.0, now=100.0)
    s.schedule("/w/a", 10.0, now=100.0)
    s.schedule("/w/c/", -5.0, now=100.0)  # already overdue: due now (normalised path)
    assert s.next_deadline() == 100.0
    assert s.due(100.0) == ["/w/c"]
    assert s.due(109.9) == []
    assert s.due(120.0) == ["/w/a", "/w/b"]  # earliest first
    assert len(s) == 0


def test_rescheduling_replaces_the_deadline() -> None:
    s = GcSchedule()
    s.schedule("/w/a", 10.0, now=0.0)
    s.schedule("/w/a", 50.0, now=0.0)
    assert s.due(10.0) == []
    assert s.deadlines() == {"/w/a": 50.0}


def test_prune_takes_everything_due_within_the_window() -> None:
    s = GcSchedule()
    for i, delay in enumerate([WEEK, WEEK / 2, WEEK / 10]):
        s.schedule(f"/w/{i}", delay, now=0.0)
    # At 50% usage the max age is 0.4 weeks: prune what goes within 0.6 weeks.
    within = WEEK - max_allowed_age(WEEK, 0.1, 0.5)
    assert s.prune(within, now=0.0) == ["/w/2", "/w/1"]
    assert "/w/0" in s


def test_unschedule_for_a_reused_path_takes_its_ancestors_too() -> None:
    s = GcSchedule()
    s.schedule("/w/fw", 10.0, now=0.0)
    s.schedule("/w/fw/executors/e", 10.0, now=0.0)
    s.schedule("/w/fw/executors/e/runs/old", 10.0, now=0.0)
    s.schedule("/w/fw2", 10.0, now=0.0)
    s.schedule("/w/fwx", 10.0, now=0.0)  # a sibling sharing a prefix is not an ancestor
    assert s.unschedule_for("/w/fw/executors/e") == ["/w/fw", "/w/fw/executors/e"]
    assert sorted(s.deadlines()) == ["/w/fw/executors/e/runs/old", "/w/fw2", "/w/fwx"]
    assert s.unschedule("/w/fw2") and not s.unschedule("/w/fw2")


async def test_driver_removes_what_is_due_on_its_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    gc = GarbageCollector(str(tmp_path), gc_delay=100.0, clock=clock)
    old, new = tmp_path / "old", tmp_path / "new"
    for d in (old, new):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "f").write_text("x")
    done_old = gc.schedule(10.0, str(old))
    done_new = gc.schedule(50.0, str(new))
    assert await gc.collect() == []
    clock.now += 10.0
    assert await gc.collect() == [str(old)]
    assert await done_old is True and not old.exists()
    assert new.exists() and not done_new.done()
    assert gc.unschedule(str(new)) and await done_new is False
    clock.now += 100.0
    assert await gc.collect() == [] and new.exists()


async def test_schedule_by_mtime_counts_the_age_already_reached(tmp_path: Path) -> None:
    clock = FakeClock()
    gc = GarbageCollector(str(tmp_path), gc_delay=100.0, clock=clock)
    d = tmp_path / "run"
    d.mkdir()
    os.utime(d, (clock.now - 70.0, clock.now - 70.0))  # finished 70s ago
    gc.schedule_by_mtime(str(d))
    assert gc.timetable.deadlines() == {str(d): pytest.approx(clock.now + 30.0)}


async def test_full_disk_prunes_by_age(tmp_path: Path) -> None:
    clock = FakeClock()
    usage = {"value": 0.0}
    gc = GarbageCollector(str(tmp_path), gc_delay=WEEK, gc_disk_headroom=0.1, clock=clock,
                          disk_usage=lambda path: usage["value"])
    dirs = {}
    for name, age_days in [("fresh", 0.0), ("middle", 3.0), ("old", 6.0)]:
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        gc.schedule(WEEK - age_days * 86400, str(dirs[name]))
    assert await gc.check_disk_usage() == 0.0
    assert gc.max_allowed_age == pytest.approx(0.9 * WEEK)
    assert all(d.exists() for d in dirs.values())
    usage["value"] = 0.5  # max age 0.4 weeks = 2.8 days: 'middle' and 'old' go
    await gc.check_disk_usage()
    assert [n for n, d in dirs.items() if d.exists()] == ["fresh"]
    usage["value"] = 0.95  # over the headroom: everything scheduled goes
    await gc.check_disk_usage()
    assert gc.max_allowed_age == 0.0
    assert not dirs["fresh"].exists() and len(gc.timetable) == 0


async def test_rescheduled_waiter_learns_the_final_outcome(tmp_path: Path) -> None:
    clock = FakeClock()
    gc = GarbageCollector(str(tmp_path), gc_delay=100.0, clock=clock)
    d = tmp_path / "d"
    d.mkdir()
    first = gc.schedule(10.0, str(d))
    second = gc.schedule(20.0, str(d))
    clock.now += 20.0
    await gc.collect()
    assert await asyncio.wait_for(first, 5) is True and await second is True


def test_headroom_outside_zero_to_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gc_disk_headroom"):
        GarbageCollector(str(tmp_path), gc_disk_headroom=1.5)


def test_real_disk_usage_is_a_fraction(tmp_path: Path) -> None:
    assert 0.0 < disk_usage_fraction(str(tmp_path)) < 1.0
