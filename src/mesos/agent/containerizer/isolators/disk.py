"""The ``disk/du`` isolator: sandbox disk usage, polled; the quota optionally enforced.

Like Mesos' ``du``-based isolator it does not stop a task from writing: every
``--container_disk_watch_interval`` it measures the sandbox (a ``du -s`` style
walk run in a thread, so a large sandbox never blocks the event loop), reports
the result as ``disk_used_bytes`` and, with ``--enforce_container_disk_quota``,
reports a REASON_CONTAINER_LIMITATION_DISK limitation once the usage is above the
container's ``disk`` resource; the containerizer then destroys the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Limitation,
    Resources,
    Statistics,
)
from mesos.flags import Duration, Flag, format_bytes

__all__ = ["FLAGS", "DiskDuIsolator", "disk_usage"]

log = logging.getLogger(__name__)

MB = 1024 * 1024

FLAGS = [
    Flag("container_disk_watch_interval", Duration, "15secs",
         "Interval between disk usage checks of each sandbox (disk/du isolator)."),
    Flag("enforce_container_disk_quota", bool, False,
         "Kill a container whose sandbox grows past its 'disk' resource (disk/du isolator)."),
]


def disk_usage(path: str) -> int:
    """Bytes allocated on disk under ``path``, as ``du -s`` counts them.

    Allocated blocks, not apparent sizes (a sparse file costs what it holds);
    a file with several hard links inside the tree is counted once; symlinks are
    not followed. Entries vanishing during the walk are skipped: the sandbox is
    live and its task keeps writing while we look.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    todo = [path]
    first = True
    while todo:
        current = todo.pop()
        try:
            st = os.lstat(current)
        except (FileNotFoundError, NotADirectoryError):
            if first:
                raise
            continue
        first = False
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
        total += st.st_blocks * 512
        if stat.S_ISDIR(st.st_mode):
            with (
                contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError),
                os.scandir(current) as entries,
            ):
                todo.extend(entry.path for entry in entries)
    return total


@dataclass
class _Info:
    sandbox: str | None
    quota_mb: float | None  # the 'disk' resource; None: no quota to check
    used: int | None = None  # bytes at the last check
    limitation: asyncio.Future[Limitation] | None = None
    poller: asyncio.Task[None] | None = None


class DiskDuIsolator(Isolator):
    """Polls each sandbox's usage; see the module docstring."""

    name = "disk/du"

    def __init__(self, flags: ContainerizerFlags) -> None:
        self.flags = flags
        self.infos: dict[str, _Info] = {}

    # -- lifecycle --------------------------------------------------------------------

    def recover(self, states: Mapping[str, ContainerState], orphans: set[str]) -> None:
        for container_id, state in states.items():
            quota = _quota(state.resources) if state.resources is not None else None
            self._start(container_id, _Info(state.sandbox, quota))

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.sandbox is None:
            log.warning("container %s has no sandbox: disk/du has nothing to measure",
                        container_id)
        self._start(container_id, _Info(config.sandbox, _quota(config.resources)))
        return None

    def _start(self, container_id: str, info: _Info) -> None:
        loop = asyncio.get_running_loop()
        info.limitation = loop.create_future()
        self.infos[container_id] = info
        if info.sandbox is not None:
            info.poller = loop.create_task(self._poll(container_id, info))

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        info = self.infos.get(container_id)
        return info.limitation if info is not None else None

    def update(self, container_id: str, resources: Resources) -> None:
        info = self.infos.get(container_id)
        if info is not None:
            info.quota_mb = _quota(resources)

    def usage(self, container_id: str) -> Statistics:
        info = self.infos.get(container_id)
        stats: Statistics = {}
        if info is None:
            return stats
        if info.quota_mb is not None:
            stats["disk_limit_bytes"] = float(int(info.quota_mb * MB))
        if info.used is not None:
            stats["disk_used_bytes"] = float(info.used)
        return stats

    def limitation_on_exit(self, container_id: str) -> Limitation | None:
        info = self.infos.get(container_id)
        if info is None or info.limitation is None:
            return None
        future = info.limitation
        if future.done() and not future.cancelled():
            return future.result()
        return None

    def cleanup(self, container_id: str) -> None:
        info = self.infos.pop(container_id, None)
        if info is None:
            return
        if info.poller is not None:
            info.poller.cancel()
        if info.limitation is not None and not info.limitation.done():
            info.limitation.cancel()

    # -- polling ----------------------------------------------------------------------

    async def _poll(self, container_id: str, info: _Info) -> None:
        assert info.sandbox is not None and info.limitation is not None
        while not info.limitation.done():
            try:
                info.used = await asyncio.to_thread(disk_usage, info.sandbox)
            except OSError as e:
                log.warning("container %s: cannot measure %s: %s", container_id, info.sandbox, e)
            else:
                self._check(container_id, info)
            await asyncio.sleep(self.flags.container_disk_watch_interval)

    def _check(self, container_id: str, info: _Info) -> None:
        if not self.flags.enforce_container_disk_quota or info.quota_mb is None:
            return
        assert info.limitation is not None and info.used is not None
        quota = int(info.quota_mb * MB)
        if info.used > quota and not info.limitation.done():
            info.limitation.set_result(Limitation(
                resources={"disk": info.quota_mb},
                message=(f"Disk usage ({format_bytes(info.used)}) exceeds quota "
                         f"({format_bytes(quota)})"),
                reason="REASON_CONTAINER_LIMITATION_DISK",
            ))


def _quota(resources: Resources) -> float | None:
    value = resources.get("disk")
    return None if value is None else float(value)
