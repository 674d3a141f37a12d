"""The isolator interface: what every ``--isolation`` entry implements.

An isolator is a small object with the hooks Mesos gives its isolators; every
hook has a no-op default, so an isolator overrides only what it needs. A hook
may be a plain method or ``async def``: the containerizer awaits whatever comes
back if it is awaitable (``resolve``). Hooks are called from the agent's event
loop, never concurrently for the same container.

Order, per container: ``prepare`` (before the fork; may ask the child to join
cgroups, set variables, enter namespaces or run as a user) -> ``isolate`` (the
pid is known) -> ``watch`` (a future that resolves only when a limit is hit) ->
``update`` / ``update_ranges`` (ports) / ``usage`` while running ->
``limitation_on_exit`` (one last look once every process is gone: an OOM kill
can beat its own notification) -> ``cleanup``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "BindMount",
    "ContainerConfig",
    "ContainerState",
    "ContainerizerFlags",
    "Isolator",
    "LaunchInfo",
    "Limitation",
    "Ranges",
    "Resources",
    "Statistics",
    "resolve",
]

# Scalar resources by Mesos name: {"cpus": 0.5, "mem": 64 (MB), "disk": ..., "pids": 100}.
Resources = Mapping[str, float]
# Range resources by Mesos name, as inclusive (begin, end) pairs: {"ports": ((31000, 31005),)}.
Ranges = tuple[tuple[int, int], ...]
# A ResourceStatistics message as a dict with Mesos' field names.
Statistics = dict[str, float]

T = TypeVar("T")


async def resolve(value: T | Awaitable[T]) -> T:
    """Await ``value`` when a hook returned an awaitable; return it as is otherwise."""
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True)
class ContainerizerFlags:
    """The agent flags the containerizer and its isolators read (Mesos' names)."""

    isolation: str = "posix/cpu,posix/mem"
    launcher: str = "linux"  # linux (cgroup-tracked, namespaces) or posix (sessions)
    cgroups_root: str = "mesos"
    cgroups_enable_cfs: bool = False
    cgroups_limit_swap: bool = False
    cgroups_pids_max: int | None = None  # pids.max when the container names no "pids"
    oom_poll_interval: float = 0.25  # memory.events polling (v2, or no eventfd in v1)
    # disk/du (see isolators/disk.py)
    container_disk_watch_interval: float = 15.0
    enforce_container_disk_quota: bool = False
    # network/ports (see isolators/ports.py); agent_ports is the agent's own
    # ``ports`` resource (from --resources; Mesos' default range otherwise).
    container_ports_watch_interval: float = 30.0
    check_agent_port_range_only: bool = False
    enforce_container_ports: bool = False
    agent_ports: Ranges = ((31000, 32000),)
    # filesystem/posix: run tasks as their user when the agent is root.
    switch_user: bool = True
    # gpu/nvidia: GPU indices to use (None: every GPU nvidia-smi reports).
    nvidia_gpu_devices: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Limitation:
    """A container went past one of its limits (Mesos' ContainerLimitation)."""

    resources: Resources
    message: str
    reason: str  # a TaskStatus.Reason name, e.g. REASON_CONTAINER_LIMITATION_MEMORY
    ranges: Mapping[str, Ranges] = field(default_factory=dict)  # e.g. the ports it broke


@dataclass(frozen=True)
class ContainerState:
    """A container the agent checkpointed, handed to ``recover`` after a restart."""

    container_id: str
    pid: int | None  # its first process as checkpointed; None when unknown or gone
    resources: Resources | None = None
    sandbox: str | None = None
    ranges: Mapping[str, Ranges] | None = None  # e.g. {"ports": ((31000, 31001),)}


@dataclass(frozen=True)
class ContainerConfig:
    """What an isolator may look at while preparing a container."""

    container_id: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str | None
    resources: Resources
    user: str | None = None
    sandbox: str | None = None  # the executor run's directory (work_dir/slaves/.../runs/<id>)
    ranges: Mapping[str, Ranges] = field(default_factory=dict)  # range resources (ports)


@dataclass(frozen=True)
class BindMount:
    """``source`` bind-mounted at ``target`` in the container's own mount namespace,
    read-only when asked (a read-only persistent volume). Only a launcher that gives
    the container a mount namespace can do it; others refuse the launch."""

    source: str
    target: str
    read_only: bool = False
    what: str = "a bind mount"  # for messages: "persistent volume 'v1'"


@dataclass
class LaunchInfo:
    """What an isolator asks of the launch (merged over all isolators)."""

    env: dict[str, str] = field(default_factory=dict)
    join_cgroups: list[Path] = field(default_factory=list)  # cgroup.procs files
    namespaces: list[str] = field(default_factory=list)  # e.g. ["pid"]
    user: str | None = None  # run the command as this user (filesystem/posix)
    mounts: list[BindMount] = field(default_factory=list)  # made before the command runs

    def merge(self, other: LaunchInfo | None) -> None:
        if other is None:
            return
        self.env.update(other.env)
        if other.user is not None:
            self.user = other.user
        self.join_cgroups.extend(p for p in other.join_cgroups if p not in self.join_cgroups)
        self.namespaces.extend(n for n in other.namespaces if n not in self.namespaces)
        self.mounts.extend(m for m in other.mounts if m not in self.mounts)


class Isolator:
    """Base class: every hook is a no-op. ``name`` is the ``--isolation`` entry."""

    name = "base"

    def recover(
        self, states: Mapping[str, ContainerState], orphans: set[str]
    ) -> Awaitable[None] | None:
        """Re-attach to running containers after an agent restart; forget orphans."""
        return None

    def prepare(
        self, container_id: str, config: ContainerConfig
    ) -> LaunchInfo | Awaitable[LaunchInfo | None] | None:
        """Set the container up before its first process exists."""
        return None

    def isolate(self, container_id: str, pid: int) -> Awaitable[None] | None:
        """The container's first process exists (and already joined its cgroups)."""
        return None

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        """A future resolved with a Limitation when a limit is hit; None: never."""
        return None

    def update(self, container_id: str, resources: Resources) -> Awaitable[None] | None:
        """The container's resources changed (tasks came or went)."""
        return None

    def update_ranges(
        self, container_id: str, ranges: Mapping[str, Ranges]
    ) -> Awaitable[None] | None:
        """The container's range resources (ports) changed."""
        return None

    def usage(self, container_id: str) -> Statistics | Awaitable[Statistics]:
        """ResourceStatistics fields this isolator knows about."""
        return {}

    def limitation_on_exit(
        self, container_id: str
    ) -> Limitation | Awaitable[Limitation | None] | None:
        """A limit that killed the container but whose notice has not arrived yet."""
        return None

    def cleanup(self, container_id: str) -> Awaitable[None] | None:
        """The container is gone; release what this isolator holds for it."""
        return None


def scalar(resources: Resources, name: str, default: float = 0.0) -> float:
    """A scalar resource by name, ``default`` when absent."""
    value: Any = resources.get(name, default)
    return float(value)
