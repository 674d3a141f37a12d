"""The ``posix/cpu`` and ``posix/mem`` isolators: usage from /proc, no enforcement.

They are what Mesos falls back to without cgroups: statistics are summed over the
container's first process and its descendants (see ``procfs``), limits are only
reported back, never applied.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerState,
    Isolator,
    LaunchInfo,
    Resources,
    Statistics,
    scalar,
)
from mesos.agent.containerizer.procfs import tree_usage

__all__ = ["NamespacesPidIsolator", "PosixCpuIsolator", "PosixIsolator", "PosixMemIsolator"]

MB = 1024 * 1024


class PosixIsolator(Isolator):
    """Remembers each container's first pid and resources."""

    def __init__(self) -> None:
        self.pids: dict[str, int] = {}
        self.resources: dict[str, Resources] = {}

    def recover(self, states: Mapping[str, ContainerState], orphans: set[str]) -> None:
        for container_id, state in states.items():
            if state.pid is not None:
                self.pids[container_id] = state.pid
            if state.resources is not None:
                self.resources[container_id] = dict(state.resources)

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        self.resources[container_id] = dict(config.resources)
        return None

    def isolate(self, container_id: str, pid: int) -> None:
        self.pids[container_id] = pid

    def update(self, container_id: str, resources: Resources) -> None:
        self.resources[container_id] = dict(resources)

    def cleanup(self, container_id: str) -> None:
        self.pids.pop(container_id, None)
        self.resources.pop(container_id, None)

    def _tree(self, container_id: str) -> dict[str, float]:
        pid = self.pids.get(container_id)
        return tree_usage(pid) if pid is not None else {}


class PosixCpuIsolator(PosixIsolator):
    name = "posix/cpu"

    def usage(self, container_id: str) -> Statistics:
        tree = self._tree(container_id)
        stats: Statistics = {"timestamp": time.time()}
        for key in ("cpus_user_time_secs", "cpus_system_time_secs", "processes", "threads"):
            if key in tree:
                stats[key] = tree[key]
        if container_id in self.resources:
            stats["cpus_limit"] = scalar(self.resources[container_id], "cpus")
        return stats


class PosixMemIsolator(PosixIsolator):
    name = "posix/mem"

    def usage(self, container_id: str) -> Statistics:
        tree = self._tree(container_id)
        stats: Statistics = {"timestamp": time.time()}
        if "mem_rss_bytes" in tree:
            stats["mem_rss_bytes"] = tree["mem_rss_bytes"]
        if container_id in self.resources:
            stats["mem_limit_bytes"] = scalar(self.resources[container_id], "mem") * MB
        return stats


class NamespacesPidIsolator(Isolator):
    """``namespaces/pid``: the container runs in a new pid namespace with its own /proc.

    Only asks for it; the linux launcher does the entering (see launcher.py).
    """

    name = "namespaces/pid"

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        return LaunchInfo(namespaces=["pid"])
