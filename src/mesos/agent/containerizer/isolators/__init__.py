"""Isolators by ``--isolation`` name, and building them from the flag.

Built-ins are listed here; third-party ones come from the ``mesos.isolator`` entry
point group (the Python form of Mesos' isolator modules): the entry point's name is
the ``--isolation`` entry, its object a callable ``(flags, cgroups) -> Isolator``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import ContainerizerFlags, Isolator
from mesos.agent.containerizer.isolators.cgroups import (
    CgroupsCpuIsolator,
    CgroupsMemIsolator,
    CgroupsPidsIsolator,
)
from mesos.agent.containerizer.isolators.devices import CgroupsDevicesIsolator
from mesos.agent.containerizer.isolators.disk import DiskDuIsolator
from mesos.agent.containerizer.isolators.filesystem import FilesystemPosixIsolator
from mesos.agent.containerizer.isolators.gpu import NvidiaGpuIsolator
from mesos.agent.containerizer.isolators.ports import NetworkPortsIsolator
from mesos.agent.containerizer.isolators.posix import (
    NamespacesPidIsolator,
    PosixCpuIsolator,
    PosixMemIsolator,
)

__all__ = ["BUILTIN", "CGROUP_ISOLATORS", "IsolationError", "build_isolators", "parse_isolation"]

Factory = Callable[[ContainerizerFlags, "Cgroups | None"], Isolator]


class IsolationError(ValueError):
    """``--isolation`` names something unknown, or something this host cannot do."""


def _cgroups_factory(
    cls: type[CgroupsCpuIsolator | CgroupsMemIsolator | CgroupsPidsIsolator
              | CgroupsDevicesIsolator | NvidiaGpuIsolator],
) -> Factory:
    def make(flags: ContainerizerFlags, cgroups: Cgroups | None) -> Isolator:
        if cgroups is None:
            raise IsolationError(f"isolator {cls.name!r} needs cgroups")
        try:
            return cls(flags, cgroups)
        except CgroupsError as e:
            raise IsolationError(f"isolator {cls.name!r}: {e}") from e

    return make


def _gpu_factory(flags: ContainerizerFlags, cgroups: Cgroups | None) -> Isolator:
    """gpu/nvidia only adds to the deny-all list cgroups/devices starts from (as Mesos)."""
    names = [n.strip() for n in flags.isolation.split(",")]
    if "cgroups/devices" not in names or names.index("cgroups/devices") > names.index(
        "gpu/nvidia"
    ):
        raise IsolationError(
            "gpu/nvidia needs cgroups/devices before it in --isolation "
            f"(e.g. --isolation=cgroups/devices,gpu/nvidia; got {flags.isolation!r})"
        )
    return _cgroups_factory(NvidiaGpuIsolator)(flags, cgroups)


BUILTIN: dict[str, Factory] = {
    "cgroups/cpu": _cgroups_factory(CgroupsCpuIsolator),
    "cgroups/mem": _cgroups_factory(CgroupsMemIsolator),
    "cgroups/pids": _cgroups_factory(CgroupsPidsIsolator),
    "posix/cpu": lambda flags, cgroups: PosixCpuIsolator(),
    "posix/mem": lambda flags, cgroups: PosixMemIsolator(),
    "namespaces/pid": lambda flags, cgroups: NamespacesPidIsolator(),
    "cgroups/devices": _cgroups_factory(CgroupsDevicesIsolator),
    "gpu/nvidia": _gpu_factory,
    "disk/du": lambda flags, cgroups: DiskDuIsolator(flags),
    "network/ports": lambda flags, cgroups: NetworkPortsIsolator(flags, cgroups),
    "filesystem/posix": lambda flags, cgroups: FilesystemPosixIsolator(flags),
}
# Names whose isolators need a cgroups handle.
CGROUP_ISOLATORS = frozenset(
    {"cgroups/cpu", "cgroups/mem", "cgroups/pids", "cgroups/devices", "gpu/nvidia"}
)


def parse_isolation(isolation: str) -> list[str]:
    """Split ``--isolation``; every name must be known (the error lists the known ones)."""
    names = [n.strip() for n in isolation.split(",") if n.strip()]
    known = set(BUILTIN) | set(_plugins())
    for name in names:
        if name not in known:
            raise IsolationError(
                f"unknown isolator {name!r} in --isolation={isolation!r} "
                f"(known: {', '.join(sorted(known))})"
            )
    if len(set(names)) != len(names):
        raise IsolationError(f"--isolation={isolation!r} names an isolator twice")
    return names


def _plugins() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group="mesos.isolator")}


def build_isolators(
    names: list[str], flags: ContainerizerFlags, cgroups: Cgroups | None
) -> list[Isolator]:
    """One isolator per name, in order; a plugin is loaded only when named."""
    out: list[Isolator] = []
    for name in names:
        factory: Factory = BUILTIN[name] if name in BUILTIN else _plugins()[name].load()
        out.append(factory(flags, cgroups))
    return out
