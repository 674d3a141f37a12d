"""Sandbox garbage collection: finished sandboxes are deleted ``--gc_delay`` later.

The agent schedules a directory when whatever used it is over (an executor run,
an executor, a framework). Normally it is removed ``--gc_delay`` after it was
last modified. Every ``--disk_watch_interval`` the agent measures the filesystem
holding ``--work_dir``; the fuller it is, the shorter directories may live:

    max_allowed_age = gc_delay * max(0, 1 - gc_disk_headroom - disk_usage)

and everything scheduled to go within ``gc_delay - max_allowed_age`` from now
(so every directory at least ``max_allowed_age`` old) is removed at once. A
directory that is reused (an executor launched again under the same id) is
unscheduled, with every scheduled ancestor whose removal would take it along.

``GcSchedule`` is the pure bookkeeping, driven with explicit times;
``GarbageCollector`` is the asyncio driver: a timer for the next deadline, the
disk watch, and the removals themselves in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable

from mesos.flags import Duration, Flag, format_duration

__all__ = [
    "FLAGS",
    "GarbageCollector",
    "GcSchedule",
    "disk_usage_fraction",
    "max_allowed_age",
]

log = logging.getLogger(__name__)

FLAGS = [
    Flag("gc_delay", Duration, "1weeks",
         "Maximum time a finished sandbox is kept; shortened as the disk fills up "
         "(see --gc_disk_headroom)."),
    Flag("disk_watch_interval", Duration, "1mins",
         "Interval between disk usage checks of the --work_dir filesystem, which "
         "shorten how long sandboxes are kept."),
    Flag("gc_disk_headroom", float, 0.1,
         "Disk headroom (0.0 to 1.0) when computing the maximum sandbox age: "
         "gc_delay * max(0, 1 - gc_disk_headroom - disk usage)."),
]


def max_allowed_age(gc_delay: float, gc_disk_headroom: float, usage: float) -> float:
    """How old (seconds) a scheduled directory may get at this disk ``usage`` (0..1)."""
    return gc_delay * max(0.0, 1.0 - gc_disk_headroom - usage)


def disk_usage_fraction(path: str) -> float:
    """Used fraction of the filesystem holding ``path`` (as ``df``: used / size)."""
    st = os.statvfs(path)
    if st.f_blocks == 0:
        return 0.0
    return (st.f_blocks - st.f_bfree) / st.f_blocks


def _is_within(path: str, ancestor: str) -> bool:
    return path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


class GcSchedule:
    """Which path goes when; pure (every method takes the time it should use)."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}

    def __contains__(self, path: str) -> bool:
        return os.path.normpath(path) in self._deadlines

    def __len__(self) -> int:
        return len(self._deadlines)

    def deadlines(self) -> dict[str, float]:
        return dict(self._deadlines)

    def schedule(self, path: str, delay: float, now: float) -> float:
        """Remove ``path`` ``delay`` seconds after ``now`` (rescheduling replaces)."""
        deadline = now + max(0.0, delay)
        self._deadlines[os.path.normpath(path)] = deadline
        return deadline

    def unschedule(self, path: str) -> bool:
        """Forget ``path``; False when it was not scheduled."""
        return self._deadlines.pop(os.path.normpath(path), None) is not None

    def unschedule_for(self, path: str) -> list[str]:
        """``path`` is in use again: forget it and every scheduled ancestor of it."""
        path = os.path.normpath(path)
        gone = [p for p in self._deadlines if _is_within(path, p)]
        for p in gone:
            del self._deadlines[p]
        return sorted(gone)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def due(self, now: float) -> list[str]:
        """Take out every path whose deadline has come, earliest first."""
        return self._take(lambda deadline: deadline <= now)

    def prune(self, within: float, now: float) -> list[str]:
        """Take out every path due within ``within`` seconds from ``now`` (Mesos' prune)."""
        return self._take(lambda deadline: deadline - now <= within)

    def _take(self, pick: Callable[[float], bool]) -> list[str]:
        chosen = sorted((d, p) for p, d in self._deadlines.items() if pick(d))
        for _, path in chosen:
            del self._deadlines[path]
        return [path for _, path in chosen]


def _remove(path: str) -> bool:
    """Delete a file or a tree (links are removed, never followed); True when gone."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return not os.path.lexists(path)


class GarbageCollector:
    """The asyncio driver (see the module docstring).

    ``schedule`` returns a future resolving True once the path is gone, or False
    when it was unscheduled (or could not be fully removed: the error is logged).
    ``clock`` is wall-clock seconds (directory ages come from mtimes);
    ``disk_usage`` measures the ``work_dir`` filesystem, used fraction 0..1.
    """

    def __init__(
        self,
        work_dir: str,
        *,
        gc_delay: float = 7 * 86400.0,
        disk_watch_interval: float = 60.0,
        gc_disk_headroom: float = 0.1,
        clock: Callable[[], float] = time.time,
        disk_usage: Callable[[str], float] = disk_usage_fraction,
    ) -> None:
        if not 0.0 <= gc_disk_headroom <= 1.0:
            raise ValueError(f"--gc_disk_headroom must be within [0.0, 1.0], "
                             f"not {gc_disk_headroom}")
        self.work_dir = work_dir
        self.gc_delay = gc_delay
        self.disk_watch_interval = disk_watch_interval
        self.gc_disk_headroom = gc_disk_headroom
        self.clock = clock
        self.disk_usage = disk_usage
        self.timetable = GcSchedule()
        # How old a directory may get at the last measured usage (Mesos shows it).
        self.max_allowed_age = gc_delay
        self._pending: dict[str, asyncio.Future[bool]] = {}
        self._removing: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Start the timer and the disk watch (on the running loop)."""
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._timer()), loop.create_task(self._watch_disk())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- scheduling -------------------------------------------------------------------

    def schedule(self, delay: float, path: str) -> asyncio.Future[bool]:
        """Remove ``path`` after ``delay`` seconds (a reschedule replaces the old one)."""
        path = os.path.normpath(path)
        old = self._pending.pop(path, None)
        self.timetable.schedule(path, delay, self.clock())
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if old is not None:
            # Whoever waits on the old schedule now waits on the new one.
            future.add_done_callback(lambda f: _settle(old, f.result()))
        self._pending[path] = future
        self._wake.set()
        return future

    def schedule_by_mtime(self, path: str) -> asyncio.Future[bool]:
        """Remove ``path`` ``gc_delay`` after it was last modified (Mesos' garbageCollect)."""
        try:
            age = self.clock() - os.stat(path).st_mtime
        except FileNotFoundError:
            age = 0.0
        return self.schedule(self.gc_delay - age, path)

    def unschedule(self, path: str) -> bool:
        """Keep ``path`` after all; False when not scheduled or already being removed."""
        path = os.path.normpath(path)
        if not self.timetable.unschedule(path):
            return False
        pending = self._pending.pop(path, None)
        if pending is not None:
            _settle(pending, False)
        return True

    def unschedule_for(self, path: str) -> list[str]:
        """``path`` is used again (executor relaunch): keep it and its scheduled ancestors."""
        gone = self.timetable.unschedule_for(path)
        for p in gone:
            pending = self._pending.pop(p, None)
            if pending is not None:
                _settle(pending, False)
        return gone

    def removing(self, path: str) -> bool:
        """Whether ``path`` (or an ancestor of it) is being deleted right now."""
        path = os.path.normpath(path)
        return any(_is_within(path, p) for p in self._removing)

    # -- collecting -------------------------------------------------------------------

    async def collect(self) -> list[str]:
        """Remove every path whose time has come; returns the paths removed."""
        return await self._remove_all(self.timetable.due(self.clock()))

    async def prune(self, within: float) -> list[str]:
        """Remove every path due within ``within`` seconds from now."""
        return await self._remove_all(self.timetable.prune(within, self.clock()))

    async def check_disk_usage(self) -> float:
        """Measure the disk, shrink the allowed age, prune accordingly; returns the usage."""
        usage = await asyncio.to_thread(self.disk_usage, self.work_dir)
        self.max_allowed_age = max_allowed_age(self.gc_delay, self.gc_disk_headroom, usage)
        log.info("Current disk usage %.2f%%. Max allowed age: %s",
                 100 * usage, format_duration(self.max_allowed_age))
        await self.prune(self.gc_delay - self.max_allowed_age)
        return usage

    async def _remove_all(self, paths: list[str]) -> list[str]:
        removed = []
        for path in paths:
            pending = self._pending.pop(path, None)
            self._removing.add(path)
            try:
                gone = await asyncio.to_thread(_remove, path)
            finally:
                self._removing.discard(path)
            if gone:
                log.info("Deleted '%s'", path)
                removed.append(path)
            else:
                log.error("Failed to delete '%s' completely", path)
            if pending is not None:
                _settle(pending, gone)
        return removed

    async def _timer(self) -> None:
        while True:
            deadline = self.timetable.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            try:
                await self.collect()
            except Exception:
                log.exception("sandbox garbage collection failed")

    async def _watch_disk(self) -> None:
        while True:
            await asyncio.sleep(self.disk_watch_interval)
            try:
                await self.check_disk_usage()
            except OSError as e:
                log.warning("Unable to get disk usage of %s: %s", self.work_dir, e)
            except Exception:
                log.exception("disk usage check failed")


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
