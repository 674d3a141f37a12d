"""The ``cgroups/devices`` isolator: a container may open only whitelisted devices.

Each container gets a cgroup in the v1 ``devices`` hierarchy that first denies
everything (``a`` to ``devices.deny``) and then allows the default set Mesos
allows (the pseudo-devices, ttys and ptys every program expects, plus ``mknod``
of any node). Other isolators (``gpu/nvidia``) add entries on top. The kernel
checks the list at ``open(2)``: a denied device fails with EPERM even for root.

cgroup v2 has no devices files (device access there is an eBPF program attached
to the cgroup), so this isolator refuses to start on a v2-only host.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    Isolator,
    LaunchInfo,
)

__all__ = ["DEFAULT_WHITELIST", "CgroupsDevicesIsolator", "DeviceEntry", "parse_devices_list"]


@dataclass(frozen=True)
class DeviceEntry:
    """One devices-cgroup line: ``c 195:0 rwm`` (``None`` major/minor: ``*``)."""

    type: str  # "a" (all), "c" (character) or "b" (block)
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __str__(self) -> str:
        if self.type == "a":
            return "a"
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


def parse_devices_list(text: str) -> list[DeviceEntry]:
    """Parse ``devices.list`` (``a *:* rwm`` for a cgroup that allows everything)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[1]:
            continue
        major, minor = parts[1].split(":", 1)
        out.append(DeviceEntry(
            parts[0],
            None if major == "*" else int(major),
            None if minor == "*" else int(minor),
            parts[2],
        ))
    return out


# What Mesos' cgroups/devices isolator allows by default.
DEFAULT_WHITELIST = (
    DeviceEntry("c", None, None, "m"),  # mknod of any character device
    DeviceEntry("b", None, None, "m"),  # mknod of any block device
    DeviceEntry("c", 1, 3),  # /dev/null
    DeviceEntry("c", 1, 5),  # /dev/zero
    DeviceEntry("c", 1, 7),  # /dev/full
    DeviceEntry("c", 1, 8),  # /dev/random
    DeviceEntry("c", 1, 9),  # /dev/urandom
    DeviceEntry("c", 4, 0),  # /dev/tty0
    DeviceEntry("c", 4, 1),  # /dev/tty1
    DeviceEntry("c", 5, 0),  # /dev/tty
    DeviceEntry("c", 5, 1),  # /dev/console
    DeviceEntry("c", 5, 2),  # /dev/ptmx
    DeviceEntry("c", 10, 200),  # /dev/net/tun
    DeviceEntry("c", 136, None),  # /dev/pts/*
)


def allow(cgroups: Cgroups, container_id: str, entry: DeviceEntry) -> None:
    cgroups.write(container_id, "devices", "devices.allow", f"{entry}\n")


def deny(cgroups: Cgroups, container_id: str, entry: DeviceEntry) -> None:
    cgroups.write(container_id, "devices", "devices.deny", f"{entry}\n")


def require_devices_controller(cgroups: Cgroups, who: str) -> None:
    """Fail loudly unless the v1 devices hierarchy is there."""
    if cgroups.version != 1 or not cgroups.has("devices"):
        raise CgroupsError(
            f"{who} needs the cgroup v1 'devices' hierarchy (cgroups v{cgroups.version} "
            "here; v2 device control is an eBPF program, which is not supported)"
        )


class CgroupsDevicesIsolator(Isolator):
    """See the module docstring."""

    name = "cgroups/devices"

    def __init__(self, flags: ContainerizerFlags, cgroups: Cgroups) -> None:
        require_devices_controller(cgroups, self.name)
        self.flags = flags
        self.cgroups = cgroups

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        self.cgroups.create(container_id, "devices")
        deny(self.cgroups, container_id, DeviceEntry("a"))
        for entry in DEFAULT_WHITELIST:
            allow(self.cgroups, container_id, entry)
        return LaunchInfo(join_cgroups=[self.cgroups.procs_file("devices", container_id)])
