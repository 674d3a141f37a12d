"""The ``gpu/nvidia`` isolator: a container opens only the Nvidia GPUs it was given.

GPUs are found once, when the isolator is built: ``nvidia-smi --query-gpu``
lists them (index, uuid, name, memory), optionally narrowed by
``--nvidia_gpu_devices``; with that flag and no ``nvidia-smi`` the listed indices
are taken as they are. An agent-wide allocator hands specific GPUs to containers
from their ``gpus`` resource (a whole number), lowest index first.

Isolation is the devices cgroup, as in Mesos: ``cgroups/devices`` (which must come
first in ``--isolation``) starts every container from deny-all; this isolator
then allows the Nvidia control devices (``nvidiactl`` 195:255, and ``nvidia-uvm``
/ ``nvidia-uvm-tools`` whose major the driver picks at load time, read from
``/proc/devices``) and each allocated GPU (major 195, minor as the driver numbers
it), and denies the GPUs the container does not hold. Like Mesos' isolator it sets
no environment variable (neither CUDA_VISIBLE_DEVICES nor NVIDIA_VISIBLE_DEVICES):
the driver's tools see only the devices the cgroup lets them open.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Resources,
    Statistics,
)
from mesos.agent.containerizer.isolators.devices import (
    DeviceEntry,
    allow,
    deny,
    parse_devices_list,
    require_devices_controller,
)
from mesos.flags import Flag

__all__ = [
    "FLAGS",
    "NVIDIA_MAJOR",
    "NVIDIA_SMI_QUERY",
    "Gpu",
    "GpuAllocator",
    "GpuError",
    "NvidiaGpuIsolator",
    "control_devices",
    "discover_gpus",
    "parse_gpu_devices",
    "parse_nvidia_smi",
]

log = logging.getLogger(__name__)

NVIDIA_MAJOR = 195
NVIDIACTL_MINOR = 255
NVIDIA_SMI_QUERY = [
    "--query-gpu=index,uuid,name,memory.total,pci.bus_id", "--format=csv,noheader,nounits",
]
_DRIVER_INFO = Path("/proc/driver/nvidia/gpus")


def parse_gpu_devices(text: str) -> tuple[int, ...]:
    """``--nvidia_gpu_devices``: comma-separated GPU indices, e.g. ``0,1``; no repeats."""
    try:
        indices = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"invalid GPU device list {text!r} (expected e.g. '0,1')") from None
    if any(i < 0 for i in indices) or len(set(indices)) != len(indices):
        raise ValueError(f"invalid GPU device list {text!r} (indices must be unique, >= 0)")
    return indices


FLAGS = [
    Flag("nvidia_gpu_devices", parse_gpu_devices, None,
         "Comma-separated indices (as nvidia-smi numbers them) of the Nvidia GPUs to "
         "offer and isolate with gpu/nvidia; default: every GPU nvidia-smi lists."),
]


class GpuError(Exception):
    """GPUs could not be found, parsed or allocated; the message says why."""


@dataclass(frozen=True, order=True)
class Gpu:
    index: int
    minor: int  # the /dev/nvidia<minor> device the driver gave it
    uuid: str = ""
    name: str = ""
    memory_mb: float = 0.0
    major: int = NVIDIA_MAJOR

    def entry(self) -> DeviceEntry:
        return DeviceEntry("c", self.major, self.minor)


def _driver_minor(bus_id: str) -> int | None:
    """The device minor from /proc/driver/nvidia/gpus/<bus>/information, if readable."""
    if not bus_id:
        return None
    domain, _, rest = bus_id.partition(":")
    try:
        key = f"{int(domain, 16):04x}:{rest}".lower()
        text = (_DRIVER_INFO / key / "information").read_text()
    except (ValueError, OSError):
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "Device Minor":
            return int(value)
    return None


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Parse the CSV of ``nvidia-smi --query-gpu=index,uuid,name,memory.total[,pci.bus_id]``.

    The minor number is the driver's (from /proc/driver/nvidia) when the bus id
    leads there, otherwise the index, which is how the driver numbers them on a
    host whose GPUs were all probed in order.
    """
    gpus = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 4:
            raise GpuError(f"unexpected nvidia-smi line {line!r}")
        try:
            index = int(fields[0])
            memory = float(fields[3].removesuffix("MiB").strip())
        except ValueError:
            raise GpuError(f"unexpected nvidia-smi line {line!r}") from None
        minor = _driver_minor(fields[4]) if len(fields) > 4 else None
        gpus.append(Gpu(index, index if minor is None else minor, fields[1], fields[2], memory))
    return sorted(gpus)


def discover_gpus(devices: tuple[int, ...] | None = None) -> list[Gpu]:
    """The GPUs to offer: what ``nvidia-smi`` lists, narrowed to ``devices`` if given.

    No ``nvidia-smi`` on PATH means no GPUs, unless ``devices`` names some: those
    are then taken at their word (minor number = index).
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        if devices:
            log.warning("nvidia-smi not found; using --nvidia_gpu_devices=%s as minor numbers",
                        ",".join(map(str, devices)))
        return [Gpu(i, i) for i in sorted(devices or ())]
    try:
        done = subprocess.run([exe, *NVIDIA_SMI_QUERY], capture_output=True, text=True,
                              timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise GpuError(f"cannot run {exe}: {e}") from e
    if done.returncode != 0:
        raise GpuError(f"{exe} failed ({done.returncode}): {done.stderr.strip()}")
    gpus = parse_nvidia_smi(done.stdout)
    if devices is None:
        return gpus
    by_index = {g.index: g for g in gpus}
    missing = [i for i in devices if i not in by_index]
    if missing:
        raise GpuError(f"--nvidia_gpu_devices names GPUs {missing} that nvidia-smi does not "
                       f"list (it lists {sorted(by_index)})")
    return [by_index[i] for i in sorted(devices)]


def control_devices(proc_devices: str | None = None) -> list[DeviceEntry]:
    """nvidiactl, plus nvidia-uvm and nvidia-uvm-tools when that driver is loaded."""
    if proc_devices is None:
        try:
            proc_devices = Path("/proc/devices").read_text()
        except OSError:
            proc_devices = ""
    entries = [DeviceEntry("c", NVIDIA_MAJOR, NVIDIACTL_MINOR)]
    for line in proc_devices.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "nvidia-uvm" and parts[0].isdigit():
            entries += [DeviceEntry("c", int(parts[0]), 0), DeviceEntry("c", int(parts[0]), 1)]
    return entries


class GpuAllocator:
    """Which GPU belongs to which container; the agent has one."""

    def __init__(self, gpus: Iterable[Gpu]) -> None:
        self.total = sorted(gpus)
        self._free = set(self.total)

    def available(self) -> list[Gpu]:
        return sorted(self._free)

    def allocate(self, count: int) -> list[Gpu]:
        if count > len(self._free):
            raise GpuError(f"{count} GPU(s) requested but only {len(self._free)} of "
                           f"{len(self.total)} are free")
        chosen = sorted(self._free)[:count]
        self._free.difference_update(chosen)
        return chosen

    def claim(self, gpus: Iterable[Gpu]) -> None:
        """Mark specific GPUs taken (recovery)."""
        self._free.difference_update(gpus)

    def release(self, gpus: Iterable[Gpu]) -> None:
        self._free.update(g for g in gpus if g in self.total)


@dataclass
class _Info:
    allocated: list[Gpu] = field(default_factory=list)


def _requested(resources: Resources) -> int:
    gpus = float(resources.get("gpus", 0.0))
    if gpus < 0 or not gpus.is_integer():
        raise GpuError(f"the 'gpus' resource must be a whole number, not {gpus:g}")
    return int(gpus)


class NvidiaGpuIsolator(Isolator):
    """See the module docstring."""

    name = "gpu/nvidia"

    def __init__(
        self, flags: ContainerizerFlags, cgroups: Cgroups, gpus: Iterable[Gpu] | None = None,
        proc_devices: str | None = None,
    ) -> None:
        require_devices_controller(cgroups, self.name)
        self.flags = flags
        self.cgroups = cgroups
        if gpus is None:
            try:
                gpus = discover_gpus(flags.nvidia_gpu_devices)
            except GpuError as e:
                raise CgroupsError(str(e)) from e
        self.allocator = GpuAllocator(gpus)
        self.control = control_devices(proc_devices)
        self.infos: dict[str, _Info] = {}

    def recover(self, states: Mapping[str, ContainerState], orphans: set[str]) -> None:
        """Re-read each known container's allocation from its devices.list."""
        by_minor = {g.minor: g for g in self.allocator.total}
        for container_id in states:
            try:
                text = self.cgroups.read(container_id, "devices", "devices.list")
            except CgroupsError:
                continue
            held = [
                by_minor[e.minor] for e in parse_devices_list(text)
                if e.type == "c" and e.major == NVIDIA_MAJOR and e.minor in by_minor
            ]
            self.allocator.claim(held)
            self.infos[container_id] = _Info(sorted(held))

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo:
        count = _requested(config.resources)
        self.cgroups.create(container_id, "devices")
        info = self.infos[container_id] = _Info()
        for entry in self.control:
            allow(self.cgroups, container_id, entry)
        for gpu in self.allocator.total:
            deny(self.cgroups, container_id, gpu.entry())
        self._resize(container_id, info, count)
        return LaunchInfo(join_cgroups=[self.cgroups.procs_file("devices", container_id)])

    def update(self, container_id: str, resources: Resources) -> None:
        info = self.infos.get(container_id)
        if info is not None:
            self._resize(container_id, info, _requested(resources))

    def _resize(self, container_id: str, info: _Info, count: int) -> None:
        if count > len(info.allocated):
            more = self.allocator.allocate(count - len(info.allocated))
            try:
                for gpu in more:
                    allow(self.cgroups, container_id, gpu.entry())
            except CgroupsError:
                self.allocator.release(more)
                raise
            info.allocated = sorted(info.allocated + more)
        elif count < len(info.allocated):
            fewer = info.allocated[count:]  # the highest indices go first
            for gpu in fewer:
                deny(self.cgroups, container_id, gpu.entry())
            info.allocated = info.allocated[:count]
            self.allocator.release(fewer)

    def allocated(self, container_id: str) -> list[Gpu]:
        info = self.infos.get(container_id)
        return list(info.allocated) if info is not None else []

    def usage(self, container_id: str) -> Statistics:
        return {}  # Mesos reports no GPU statistics either

    def cleanup(self, container_id: str) -> None:
        info = self.infos.pop(container_id, None)
        if info is not None:
            self.allocator.release(info.allocated)

