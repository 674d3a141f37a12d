"""The ``cgroups/cpu``, ``cgroups/mem`` and ``cgroups/pids`` isolators (v1 and v2).

Each creates the container's cgroup in its hierarchy during ``prepare`` and hands
back the ``cgroup.procs`` file, so the child joins before it execs and nothing it
runs is ever outside. Limits follow ``update``; statistics come from the kernel's
accounting files, named as Mesos' ResourceStatistics fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Limitation,
    Resources,
    Statistics,
    scalar,
)

__all__ = [
    "CFS_PERIOD_US",
    "CgroupsCpuIsolator",
    "CgroupsIsolator",
    "CgroupsMemIsolator",
    "CgroupsPidsIsolator",
    "cpu_shares",
    "mem_limit_bytes",
]

CPU_SHARES_PER_CPU = 1024
MIN_CPU_SHARES = 2
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
MIN_MEMORY_BYTES = 32 * 1024 * 1024
MB = 1024 * 1024
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_shares(cpus: float) -> int:
    """cpu.shares for ``cpus`` (Mesos: 1024 per cpu, at least 2)."""
    return max(MIN_CPU_SHARES, int(CPU_SHARES_PER_CPU * cpus))


def cfs_quota_us(cpus: float) -> int:
    return max(MIN_CFS_QUOTA_US, int(cpus * CFS_PERIOD_US))


def cpu_weight(shares: int) -> int:
    """The v2 cpu.weight equivalent of v1 shares (the kernel's documented mapping)."""
    return 1 + ((shares - 2) * 9999) // 262142


def mem_limit_bytes(mem_mb: float) -> int:
    """The hard memory limit for ``mem`` megabytes (at least 32 MB, as Mesos)."""
    return max(MIN_MEMORY_BYTES, int(mem_mb * MB))


class CgroupsIsolator(Isolator):
    """Shared plumbing: one cgroup per container per controller in ``controllers``."""

    controllers_v1: tuple[str, ...] = ()
    controllers_v2: tuple[str, ...] = ()

    def __init__(self, flags: ContainerizerFlags, cgroups: Cgroups) -> None:
        self.flags = flags
        self.cgroups = cgroups
        self.resources: dict[str, Resources] = {}
        for controller in self.controllers():
            cgroups.require(controller)

    def controllers(self) -> tuple[str, ...]:
        return self.controllers_v1 if self.cgroups.version == 1 else self.controllers_v2

    def recover(self, states: Mapping[str, ContainerState], orphans: set[str]) -> None:
        # The limits are still written in the cgroups; only remember the resources.
        for container_id, state in states.items():
            if state.resources is not None:
                self.resources[container_id] = dict(state.resources)

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        info = LaunchInfo()
        for controller in self.controllers():
            self.cgroups.create(container_id, controller)
            info.join_cgroups.append(self.cgroups.procs_file(controller, container_id))
        if self.cgroups.version == 2 and not self.controllers():
            self.cgroups.create(container_id, None)
        self.resources[container_id] = dict(config.resources)
        self.apply(container_id, config.resources, initial=True)
        return info

    def isolate(self, container_id: str, pid: int) -> None:
        # The child joined in its pre-exec step already; assigning again is harmless
        # and covers a launcher that could not do that.
        for controller in self.controllers():
            with contextlib.suppress(CgroupsError):
                if pid not in _pids_of(self.cgroups, container_id, controller):
                    self.cgroups.assign(container_id, pid, controller)

    def update(self, container_id: str, resources: Resources) -> None:
        if container_id not in self.resources:
            raise CgroupsError(f"unknown container {container_id}")
        self.resources[container_id] = dict(resources)
        self.apply(container_id, resources, initial=False)

    def cleanup(self, container_id: str) -> None:
        self.resources.pop(container_id, None)

    def apply(self, container_id: str, resources: Resources, *, initial: bool) -> None:
        """Write the limits for ``resources`` (``initial``: before the first process)."""


def _pids_of(cgroups: Cgroups, container_id: str, controller: str) -> set[int]:
    path = cgroups.procs_file(controller, container_id)
    try:
        return {int(t) for t in path.read_text().split()}
    except FileNotFoundError:
        return set()


class CgroupsCpuIsolator(CgroupsIsolator):
    """cpu.shares from ``cpus`` and, with ``--cgroups_enable_cfs``, a hard CFS quota."""

    name = "cgroups/cpu"
    controllers_v1 = ("cpu", "cpuacct")
    controllers_v2 = ("cpu",)

    def apply(self, container_id: str, resources: Resources, *, initial: bool) -> None:
        cpus = scalar(resources, "cpus")
        shares = cpu_shares(cpus)
        cg = self.cgroups
        if cg.version == 1:
            cg.write(container_id, "cpu", "cpu.shares", f"{shares}\n")
            if self.flags.cgroups_enable_cfs:
                cg.write(container_id, "cpu", "cpu.cfs_period_us", f"{CFS_PERIOD_US}\n")
                cg.write(container_id, "cpu", "cpu.cfs_quota_us", f"{cfs_quota_us(cpus)}\n")
        else:
            cg.write(container_id, "cpu", "cpu.weight", f"{cpu_weight(shares)}\n")
            quota = str(cfs_quota_us(cpus)) if self.flags.cgroups_enable_cfs else "max"
            cg.write(container_id, "cpu", "cpu.max", f"{quota} {CFS_PERIOD_US}\n")

    def usage(self, container_id: str) -> Statistics:
        cg = self.cgroups
        stats: Statistics = {"timestamp": time.time()}
        if container_id in self.resources:
            stats["cpus_limit"] = scalar(self.resources[container_id], "cpus")
        if cg.version == 1:
            acct = cg.read_keyed(container_id, "cpuacct", "cpuacct.stat")
            stats["cpus_user_time_secs"] = acct.get("user", 0) / _TICKS
            stats["cpus_system_time_secs"] = acct.get("system", 0) / _TICKS
            cpu = cg.read_keyed(container_id, "cpu", "cpu.stat")
            throttled_ns = cpu.get("throttled_time", 0)
        else:
            cpu = cg.read_keyed(container_id, "cpu", "cpu.stat")
            stats["cpus_user_time_secs"] = cpu.get("user_usec", 0) / 1e6
            stats["cpus_system_time_secs"] = cpu.get("system_usec", 0) / 1e6
            throttled_ns = cpu.get("throttled_usec", 0) * 1000
        stats["cpus_nr_periods"] = float(cpu.get("nr_periods", 0))
        stats["cpus_nr_throttled"] = float(cpu.get("nr_throttled", 0))
        stats["cpus_throttled_time_secs"] = throttled_ns / 1e9
        return stats


class CgroupsPidsIsolator(CgroupsIsolator):
    """pids.max from the container's ``pids`` resource or ``--cgroups_pids_max``."""

    name = "cgroups/pids"
    controllers_v1 = ("pids",)
    controllers_v2 = ("pids",)

    def apply(self, container_id: str, resources: Resources, *, initial: bool) -> None:
        limit: float | None = resources.get("pids", self.flags.cgroups_pids_max)
        value = "max" if limit is None else str(max(1, int(limit)))
        self.cgroups.write(container_id, "pids", "pids.max", f"{value}\n")

    def usage(self, container_id: str) -> Statistics:
        current = self.cgroups.read(container_id, "pids", "pids.current")
        return {"processes": float(int(current))}


class CgroupsMemIsolator(CgroupsIsolator):
    """A hard memory limit from ``mem``; an OOM kill becomes a memory Limitation.

    v1: the kernel signals an eventfd registered through ``cgroup.event_control``
    on ``memory.oom_control``; v2 (or a v1 kernel refusing the eventfd) is polled
    through the ``oom_kill`` count of ``memory.events`` / ``memory.oom_control``.
    """

    name = "cgroups/mem"
    controllers_v1 = ("memory",)
    controllers_v2 = ("memory",)

    def __init__(self, flags: ContainerizerFlags, cgroups: Cgroups) -> None:
        super().__init__(flags, cgroups)
        self.watches: dict[str, asyncio.Future[Limitation]] = {}
        self.watch_handles: dict[str, tuple[int, int] | asyncio.Task[None]] = {}

    def apply(self, container_id: str, resources: Resources, *, initial: bool) -> None:
        """Soft limit always follows; the hard limit is only ever raised once running.

        As in Mesos: lowering the hard limit under a running container's usage would
        make the kernel OOM-kill it on the spot, so a shrink only lowers the soft
        limit (reclaimed under pressure) and the hard limit stays where it was.
        """
        limit = mem_limit_bytes(scalar(resources, "mem"))
        cg = self.cgroups
        if cg.version == 1:
            current = int(cg.read(container_id, "memory", "memory.limit_in_bytes"))
            cg.write(container_id, "memory", "memory.soft_limit_in_bytes", f"{limit}\n")
            if not initial and limit <= current:
                return
            swap = self.flags.cgroups_limit_swap and cg.has_file(
                container_id, "memory", "memory.memsw.limit_in_bytes"
            )
            # memsw must stay >= the memory limit: raise it first, lower it last.
            if swap and limit > current:
                cg.write(container_id, "memory", "memory.memsw.limit_in_bytes", f"{limit}\n")
            cg.write(container_id, "memory", "memory.limit_in_bytes", f"{limit}\n")
            if swap and limit <= current:
                cg.write(container_id, "memory", "memory.memsw.limit_in_bytes", f"{limit}\n")
        else:
            cg.write(container_id, "memory", "memory.low", f"{limit}\n")
            current_text = cg.read(container_id, "memory", "memory.max")
            if not initial and current_text != "max" and limit <= int(current_text):
                return
            cg.write(container_id, "memory", "memory.max", f"{limit}\n")
            if self.flags.cgroups_limit_swap and cg.has_file(
                container_id, "memory", "memory.swap.max"
            ):
                cg.write(container_id, "memory", "memory.swap.max", "0\n")

    # -- OOM ------------------------------------------------------------------------

    def oom_kills(self, container_id: str) -> int:
        """How many processes the kernel OOM-killed in this container so far."""
        name = "memory.oom_control" if self.cgroups.version == 1 else "memory.events"
        try:
            return self.cgroups.read_keyed(container_id, "memory", name).get("oom_kill", 0)
        except CgroupsError:
            return 0

    def _limitation(self, container_id: str) -> Limitation:
        mem = scalar(self.resources.get(container_id, {}), "mem")
        peak = self._peak_bytes(container_id)
        return Limitation(
            resources={"mem": mem},
            message=(
                f"Memory limit exceeded: Requested: {mem:g}MB"
                + (f" Maximum Used: {peak // MB}MB" if peak else "")
            ),
            reason="REASON_CONTAINER_LIMITATION_MEMORY",
        )

    def _peak_bytes(self, container_id: str) -> int:
        name = "memory.max_usage_in_bytes" if self.cgroups.version == 1 else "memory.peak"
        with contextlib.suppress(CgroupsError, ValueError):
            return int(self.cgroups.read(container_id, "memory", name))
        return 0

    def watch(self, container_id: str) -> asyncio.Future[Limitation]:
        if container_id in self.watches:
            return self.watches[container_id]
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Limitation] = loop.create_future()
        self.watches[container_id] = future
        if self.cgroups.version == 1 and self._watch_eventfd(container_id, future):
            return future
        self.watch_handles[container_id] = loop.create_task(self._poll(container_id, future))
        return future

    def _watch_eventfd(self, container_id: str, future: asyncio.Future[Limitation]) -> bool:
        """Register for the v1 OOM notification; False when the kernel refuses."""
        path = self.cgroups.path("memory", container_id)
        efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            ofd = os.open(path / "memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            os.close(efd)
            return False
        try:
            with open(path / "cgroup.event_control", "w") as f:
                f.write(f"{efd} {ofd}\n")
        except OSError:
            os.close(efd)
            os.close(ofd)
            return False

        def ready() -> None:
            with contextlib.suppress(BlockingIOError):
                os.eventfd_read(efd)
            if not path.is_dir():
                # The kernel also signals when the cgroup is removed: not an OOM, and
                # no limitation can come any more.
                asyncio.get_running_loop().remove_reader(efd)
                future.cancel()
                return
            # The notice fires when the cgroup is under OOM; with the killer enabled
            # the count goes up as it strikes. Either way the limit was hit.
            if not future.done():
                future.set_result(self._limitation(container_id))

        asyncio.get_running_loop().add_reader(efd, ready)
        self.watch_handles[container_id] = (efd, ofd)
        return True

    async def _poll(self, container_id: str, future: asyncio.Future[Limitation]) -> None:
        while not future.done():
            if self.oom_kills(container_id) > 0:
                future.set_result(self._limitation(container_id))
                return
            await asyncio.sleep(self.flags.oom_poll_interval)

    def limitation_on_exit(self, container_id: str) -> Limitation | None:
        future = self.watches.get(container_id)
        if future is not None and future.done() and not future.cancelled():
            return future.result()
        if self.oom_kills(container_id) > 0:
            return self._limitation(container_id)
        return None

    def cleanup(self, container_id: str) -> None:
        handle = self.watch_handles.pop(container_id, None)
        if isinstance(handle, tuple):
            efd, ofd = handle
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(efd)
            os.close(efd)
            os.close(ofd)
        elif handle is not None:
            handle.cancel()
        future = self.watches.pop(container_id, None)
        if future is not None and not future.done():
            future.cancel()
        super().cleanup(container_id)

    def usage(self, container_id: str) -> Statistics:
        cg = self.cgroups
        stats: Statistics = {"timestamp": time.time()}
        if cg.version == 1:
            stats["mem_total_bytes"] = float(cg.read(container_id, "memory", "memory.usage_in_bytes"))
            stats["mem_limit_bytes"] = float(cg.read(container_id, "memory", "memory.limit_in_bytes"))
            stats["mem_soft_limit_bytes"] = float(
                cg.read(container_id, "memory", "memory.soft_limit_in_bytes")
            )
            if cg.has_file(container_id, "memory", "memory.memsw.usage_in_bytes"):
                stats["mem_total_memsw_bytes"] = float(
                    cg.read(container_id, "memory", "memory.memsw.usage_in_bytes")
                )
            st = cg.read_keyed(container_id, "memory", "memory.stat")
            get = lambda key: float(st.get("total_" + key, st.get(key, 0)))  # noqa: E731
            stats["mem_rss_bytes"] = get("rss")
            stats["mem_cache_bytes"] = get("cache")
            stats["mem_mapped_file_bytes"] = get("mapped_file")
            stats["mem_swap_bytes"] = get("swap")
            stats["mem_unevictable_bytes"] = get("unevictable")
            stats["mem_anon_bytes"] = get("active_anon") + get("inactive_anon")
            stats["mem_file_bytes"] = get("active_file") + get("inactive_file")
        else:
            stats["mem_total_bytes"] = float(cg.read(container_id, "memory", "memory.current"))
            limit = cg.read(container_id, "memory", "memory.max")
            if limit != "max":
                stats["mem_limit_bytes"] = float(limit)
            st = cg.read_keyed(container_id, "memory", "memory.stat")
            stats["mem_rss_bytes"] = stats["mem_anon_bytes"] = float(st.get("anon", 0))
            stats["mem_cache_bytes"] = stats["mem_file_bytes"] = float(st.get("file", 0))
            stats["mem_mapped_file_bytes"] = float(st.get("file_mapped", 0))
            stats["mem_unevictable_bytes"] = float(st.get("unevictable", 0))
            if cg.has_file(container_id, "memory", "memory.swap.current"):
                stats["mem_swap_bytes"] = float(
                    cg.read(container_id, "memory", "memory.swap.current")
                )
        return stats
