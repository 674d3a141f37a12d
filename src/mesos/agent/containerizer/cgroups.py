"""A small cgroups library: v1 (one hierarchy per controller) and v2 (unified).

Each container gets one directory named after its container id under
``<hierarchy>/<cgroups_root>/`` in every hierarchy it needs. Processes join a
container by writing their pid into ``cgroup.procs`` there; limits and statistics
are plain files. Killing is done the way Mesos does it so nothing can escape by
forking while we look: freeze the cgroup, SIGKILL every member, thaw, wait until
it is empty. On v2 the kernel's ``cgroup.kill`` does all of that in one write.

Which layout the host has is read from ``/proc/self/mountinfo``: when
``/sys/fs/cgroup`` itself is a cgroup2 mount the host is unified (v2); otherwise
the v1 controller mounts are used (a "hybrid" host may also mount an extra v2
hierarchy, usually with no controllers, which is reported but not used).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "CgroupLayout",
    "Cgroups",
    "CgroupsError",
    "CgroupsV1",
    "CgroupsV2",
    "check_container_id",
    "detect_layout",
    "open_cgroups",
]

# How long kill() waits for a freeze to settle and for the cgroup to empty.
KILL_TIMEOUT = 30.0
_POLL = 0.01


class CgroupsError(Exception):
    """A cgroup operation failed or cgroups cannot be used here; the message says why."""


def check_container_id(container_id: str) -> str:
    """Refuse ids that are not a single safe path component (they name directories)."""
    if (
        not container_id
        or container_id in (".", "..")
        or "/" in container_id
        or "\0" in container_id
        or container_id.startswith("cgroup.")
    ):
        raise CgroupsError(f"invalid container id {container_id!r}")
    return container_id


@dataclass(frozen=True)
class CgroupLayout:
    """The cgroup mounts of this host, as read from mountinfo."""

    v1: dict[str, Path] = field(default_factory=dict)  # controller -> mount point
    unified: Path | None = None  # the cgroup2 mount, if any
    unified_is_primary: bool = False  # True when /sys/fs/cgroup is the v2 mount


def detect_layout(mountinfo: str | None = None, base: str = "/sys/fs/cgroup") -> CgroupLayout:
    """Parse ``/proc/self/mountinfo`` (or the given text) into a CgroupLayout."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    v1: dict[str, Path] = {}
    unified: Path | None = None
    primary = False
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rest = right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        mount_point = Path(fields[4].replace("\\040", " "))
        fstype, options = rest[0], rest[2]
        if fstype == "cgroup2":
            if unified is None or str(mount_point) == base:
                unified = mount_point
                primary = str(mount_point) == base
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in _V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    return CgroupLayout(v1=v1, unified=unified, unified_is_primary=primary)


_V1_CONTROLLERS = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
     "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"}
)


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        raise CgroupsError(f"cannot write {value.strip()!r} to {path}: {e.strerror}") from e


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as e:
        raise CgroupsError(f"cannot read {path}: {e.strerror}") from e


def _read_pids(path: Path) -> set[int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return set()
    return {int(tok) for tok in text.split()}


async def _rmdir(path: Path, deadline: float) -> None:
    """Remove a cgroup directory; EBUSY right after a kill is retried until deadline."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or loop.time() > deadline:
                raise CgroupsError(f"cannot remove cgroup {path}: {e.strerror}") from e
        await asyncio.sleep(_POLL)


class Cgroups:
    """Containers' cgroups under one ``cgroups_root``; see CgroupsV1 and CgroupsV2."""

    version: int = 0

    def __init__(self, root: str) -> None:
        root = root.strip("/")
        if not root or ".." in root.split("/"):
            raise CgroupsError(f"invalid cgroups root {root!r}")
        self.root = root

    # -- what the subclasses provide ------------------------------------------------

    def controllers(self) -> set[str]:
        """Controllers that can be used for containers here."""
        raise NotImplementedError

    def path(self, controller: str | None, container_id: str) -> Path:
        """The container's directory in the hierarchy of ``controller``."""
        raise NotImplementedError

    def root_paths(self) -> list[Path]:
        """``<hierarchy>/<root>`` in every hierarchy this object manages."""
        raise NotImplementedError

    def create(self, container_id: str, controller: str | None) -> Path:
        """Make the container's cgroup for ``controller`` (idempotent)."""
        raise NotImplementedError

    async def kill(self, container_id: str) -> None:
        """SIGKILL every process in the container atomically and wait until it is empty."""
        raise NotImplementedError

    def tracking_path(self, container_id: str) -> Path:
        """The cgroup whose member list is the container's processes (freezer / unified)."""
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------

    def has(self, controller: str) -> bool:
        return controller in self.controllers()

    def require(self, controller: str) -> None:
        """Fail loudly when a controller the caller needs is missing."""
        if not self.has(controller):
            raise CgroupsError(
                f"cgroups v{self.version}: controller {controller!r} is not available "
                f"(available: {', '.join(sorted(self.controllers())) or 'none'})"
            )

    def procs_file(self, controller: str | None, container_id: str) -> Path:
        return self.path(controller, container_id) / "cgroup.procs"

    def assign(self, container_id: str, pid: int, controller: str | None) -> None:
        """Move ``pid`` into the container's cgroup for ``controller``."""
        _write(self.procs_file(controller, container_id), f"{pid}\n")

    def pids(self, container_id: str) -> set[int]:
        """Processes in the container (empty when the cgroup does not exist)."""
        return _read_pids(self.tracking_path(container_id) / "cgroup.procs")

    def threads(self, container_id: str, controller: str | None = None) -> int:
        tasks = "tasks" if self.version == 1 else "cgroup.threads"
        path = (
            self.tracking_path(container_id) if controller is None
            else self.path(controller, container_id)
        )
        return len(_read_pids(path / tasks))

    def exists(self, container_id: str, controller: str | None) -> bool:
        return self.path(controller, container_id).is_dir()

    def read(self, container_id: str, controller: str | None, name: str) -> str:
        return _read(self.path(controller, container_id) / name).strip()

    def write(self, container_id: str, controller: str | None, name: str, value: str) -> None:
        _write(self.path(controller, container_id) / name, value)

    def has_file(self, container_id: str, controller: str | None, name: str) -> bool:
        return (self.path(controller, container_id) / name).exists()

    def read_keyed(self, container_id: str, controller: str | None, name: str) -> dict[str, int]:
        """Parse a flat "key value" file such as memory.stat or cpu.stat."""
        out: dict[str, int] = {}
        for line in self.read(container_id, controller, name).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
        return out

    def containers(self) -> set[str]:
        """Container ids that have a cgroup under the root in any hierarchy."""
        found: set[str] = set()
        for root in self.root_paths():
            if root.is_dir():
                found.update(p.name for p in root.iterdir() if p.is_dir())
        return found

    async def destroy(self, container_id: str) -> None:
        """Kill everything in the container, then remove its cgroups everywhere."""
        check_container_id(container_id)
        await self.kill(container_id)
        deadline = asyncio.get_running_loop().time() + KILL_TIMEOUT
        for root in self.root_paths():
            path = root / container_id
            if path.is_dir():
                await _remove_tree(path, deadline)

    async def remove_root(self) -> None:
        """Remove the (empty) root directories; used by tests and operators cleaning up."""
        deadline = asyncio.get_running_loop().time() + KILL_TIMEOUT
        for root in self.root_paths():
            if root.is_dir():
                await _remove_tree(root, deadline)

    async def _wait_empty(self, path: Path) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + KILL_TIMEOUT
        while _read_pids(path / "cgroup.procs"):
            if loop.time() > deadline:
                left = sorted(_read_pids(path / "cgroup.procs"))
                raise CgroupsError(f"processes {left} still in {path} after SIGKILL")
            await asyncio.sleep(_POLL)


async def _remove_tree(path: Path, deadline: float) -> None:
    """rmdir a cgroup and any nested cgroups (deepest first); cgroups have no files."""
    try:
        children = sorted((p for p in path.iterdir() if p.is_dir()), reverse=True)
    except FileNotFoundError:
        return  # removed meanwhile (another destroy of the same container)
    for child in children:
        await _remove_tree(child, deadline)
    await _rmdir(path, deadline)


class CgroupsV1(Cgroups):
    """Separate hierarchies per controller, e.g. /sys/fs/cgroup/memory/<root>/<id>."""

    version = 1

    def __init__(self, mounts: dict[str, Path], root: str = "mesos") -> None:
        super().__init__(root)
        if not mounts:
            raise CgroupsError("no cgroup v1 hierarchies are mounted")
        self.mounts = dict(mounts)

    def controllers(self) -> set[str]:
        return set(self.mounts)

    def path(self, controller: str | None, container_id: str) -> Path:
        if controller is None:
            controller = "freezer"
        if controller not in self.mounts:
            self.require(controller)
        return self.mounts[controller] / self.root / check_container_id(container_id)

    def root_paths(self) -> list[Path]:
        # Co-mounted controllers share a directory; list each once.
        return list(dict.fromkeys(m / self.root for m in self.mounts.values()))

    def tracking_path(self, container_id: str) -> Path:
        if "freezer" in self.mounts:
            return self.path("freezer", container_id)
        # Without a freezer, any hierarchy's member list will do for kill/pids.
        return self.path(next(iter(sorted(self.mounts))), container_id)

    def create(self, container_id: str, controller: str | None) -> Path:
        path = self.path(controller, container_id)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CgroupsError(f"cannot create cgroup {path}: {e.strerror}") from e
        return path

    async def kill(self, container_id: str) -> None:
        path = self.tracking_path(container_id)
        if "freezer" not in self.mounts or not path.is_dir():
            # No freezer cgroup for this container (a posix launcher with cgroup
            # isolators): SIGKILL the members of every hierarchy it has.
            for root in self.root_paths():
                if (root / container_id).is_dir():
                    await _kill_loop(root / container_id)
            return
        state = path / "freezer.state"
        for _attempt in range(10):
            await _freeze(state)
            for pid in _read_pids(path / "cgroup.procs"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _write(state, "THAWED\n")
            with contextlib.suppress(CgroupsError):
                await self._wait_empty(path)
                return
        await self._wait_empty(path)


async def _freeze(state: Path) -> None:
    """Write FROZEN and wait until the kernel says so (a FREEZING cgroup is re-kicked)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_TIMEOUT
    _write(state, "FROZEN\n")
    while _read(state).strip() != "FROZEN":
        if loop.time() > deadline:
            raise CgroupsError(f"{state.parent} did not freeze")
        await asyncio.sleep(_POLL)
        _write(state, "FROZEN\n")


async def _kill_loop(path: Path) -> None:
    """Best effort without a freezer: SIGKILL the members until none is left."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_TIMEOUT
    while pids := _read_pids(path / "cgroup.procs"):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if loop.time() > deadline:
            raise CgroupsError(f"processes {sorted(pids)} still in {path} after SIGKILL")
        await asyncio.sleep(_POLL)


class CgroupsV2(Cgroups):
    """The unified hierarchy: one directory per container, controllers enabled per level."""

    version = 2

    def __init__(self, mount: Path, root: str = "mesos") -> None:
        super().__init__(root)
        if not (mount / "cgroup.controllers").exists():
            raise CgroupsError(f"{mount} is not a cgroup2 hierarchy")
        self.mount = mount

    def controllers(self) -> set[str]:
        # Controllers the hierarchy root offers; those bound to v1 are not listed.
        return set(_read(self.mount / "cgroup.controllers").split())

    def path(self, controller: str | None, container_id: str) -> Path:
        # cpu.stat (usage) is core in v2, so the cpuacct role needs no controller.
        if controller is not None and controller != "cpuacct":
            self.require(controller)
        return self.mount / self.root / check_container_id(container_id)

    def root_paths(self) -> list[Path]:
        return [self.mount / self.root]

    def tracking_path(self, container_id: str) -> Path:
        return self.path(None, container_id)

    def create(self, container_id: str, controller: str | None) -> Path:
        path = self.path(controller, container_id)
        try:
            (self.mount / self.root).mkdir(parents=True, exist_ok=True)
            if controller is not None and controller != "cpuacct":
                self._enable(controller)
            path.mkdir(exist_ok=True)
        except OSError as e:
            raise CgroupsError(f"cannot create cgroup {path}: {e.strerror}") from e
        return path

    def _enable(self, controller: str) -> None:
        """Enable ``controller`` in subtree_control from the mount down to the root dir."""
        level = self.mount
        for part in [None, *self.root.split("/")]:
            if part is not None:
                level = level / part
            control = level / "cgroup.subtree_control"
            if controller not in _read(control).split():
                _write(control, f"+{controller}\n")

    async def kill(self, container_id: str) -> None:
        path = self.path(None, container_id)
        if not path.is_dir():
            return
        if (path / "cgroup.kill").exists():
            _write(path / "cgroup.kill", "1\n")
        else:
            _write(path / "cgroup.freeze", "1\n")
            await _wait_frozen(path)
            for pid in _read_pids(path / "cgroup.procs"):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _write(path / "cgroup.freeze", "0\n")
        await self._wait_empty(path)


async def _wait_frozen(path: Path) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KILL_TIMEOUT
    while "frozen 1" not in _read(path / "cgroup.events"):
        if loop.time() > deadline:
            raise CgroupsError(f"{path} did not freeze")
        await asyncio.sleep(_POLL)


def open_cgroups(
    root: str = "mesos", layout: CgroupLayout | None = None, *, need: Iterable[str] = ()
) -> Cgroups:
    """The cgroups of this host under ``root``; fails loudly, saying why, when unusable."""
    if os.geteuid() != 0:
        raise CgroupsError(f"cgroups isolation needs root (effective uid is {os.geteuid()})")
    layout = layout or detect_layout()
    cgroups: Cgroups
    if layout.unified_is_primary and layout.unified is not None:
        cgroups = CgroupsV2(layout.unified, root)
    elif layout.v1:
        cgroups = CgroupsV1(layout.v1, root)
    elif layout.unified is not None:
        cgroups = CgroupsV2(layout.unified, root)
    else:
        raise CgroupsError("no cgroup hierarchy is mounted (see /proc/self/mountinfo)")
    for controller in need:
        cgroups.require(controller)
    return cgroups
