"""The ``network/ports`` isolator: containers may listen only on the ports they were given.

Containers share the host's network here, so nothing stops a task from binding
any port; like Mesos this isolator finds out afterwards. Every
``--container_ports_watch_interval`` it reads the listening TCP sockets of the
network namespace each container's processes are in (``/proc/<pid>/net/tcp`` and
``tcp6``), maps their socket inodes to the container through
``/proc/<pid>/fd``, and compares the ports with the container's ``ports``
resource. A port outside it is logged once and, with
``--enforce_container_ports``, reported as a REASON_CONTAINER_LIMITATION
limitation naming the port(s), so the containerizer destroys the container.

``--check_agent_port_range_only`` narrows the check to the agent's own ``ports``
range: a task may then listen elsewhere (an ephemeral port, say) but not on an
agent port it was not offered.

The container's processes are its cgroup's members when it has one (nothing
escapes that), otherwise its first process and that process's descendants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mesos.agent.containerizer.cgroups import Cgroups
from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Limitation,
    Ranges,
)
from mesos.agent.containerizer.procfs import descendants
from mesos.flags import Duration, Flag

__all__ = [
    "FLAGS",
    "NetworkPortsIsolator",
    "format_ranges",
    "in_ranges",
    "listening_sockets",
    "process_socket_inodes",
    "to_ranges",
]

log = logging.getLogger(__name__)

FLAGS = [
    Flag("container_ports_watch_interval", Duration, "30secs",
         "Interval between checks of the ports containers listen on (network/ports)."),
    Flag("check_agent_port_range_only", bool, False,
         "Only check ports inside the agent's 'ports' resource range (network/ports)."),
    Flag("enforce_container_ports", bool, False,
         "Kill a container listening on a port it was not given (network/ports); "
         "without this the violation is only logged."),
]

_TCP_LISTEN = "0A"


# -- ranges ----------------------------------------------------------------------------


def in_ranges(port: int, ranges: Ranges) -> bool:
    return any(begin <= port <= end for begin, end in ranges)


def to_ranges(ports: Iterable[int]) -> Ranges:
    """Ports as the fewest inclusive ranges, ascending."""
    out: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if out and out[-1][1] == port - 1:
            out[-1] = (out[-1][0], port)
        else:
            out.append((port, port))
    return tuple(out)


def format_ranges(ranges: Ranges) -> str:
    """Mesos' text form of a Ranges value: ``[31000-31000, 31005-31010]``."""
    return "[" + ", ".join(f"{begin}-{end}" for begin, end in ranges) + "]"


# -- /proc -----------------------------------------------------------------------------


def listening_sockets(pid: int | str = "self") -> dict[int, int]:
    """Listening TCP sockets of ``pid``'s network namespace: {socket inode: port}."""
    out: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                lines = f.read().splitlines()[1:]
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st ... uid timeout inode
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            inode = int(fields[9])
            if inode != 0:  # 0: the kernel did not say (never for a live socket)
                out[inode] = int(fields[1].rsplit(":", 1)[1], 16)
    return out


def process_socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` has open (empty when it is gone)."""
    inodes: set[int] = set()
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return inodes
    for name in names:
        with contextlib.suppress(OSError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[len("socket:["):-1]))
    return inodes


def _netns(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def container_listeners(pids_by_container: Mapping[str, set[int]]) -> dict[str, set[int]]:
    """The ports each container's processes listen on (blocking: run it in a thread)."""
    tables: dict[int, dict[int, int]] = {}  # per network namespace, read once
    out: dict[str, set[int]] = {}
    for container_id, pids in pids_by_container.items():
        ports: set[int] = set()
        for pid in pids:
            ns = _netns(pid)
            if ns is None:
                continue  # exited meanwhile
            if ns not in tables:
                tables[ns] = listening_sockets(pid)
            table = tables[ns]
            ports.update(table[i] for i in process_socket_inodes(pid) if i in table)
        out[container_id] = ports
    return out


# -- the isolator ----------------------------------------------------------------------


@dataclass
class _Info:
    limitation: asyncio.Future[Limitation]
    pid: int | None = None
    allocated: Ranges | None = None  # None: not known yet (recovered): nothing checked
    reported: frozenset[int] = field(default_factory=frozenset)  # last logged violation
    observed: set[int] = field(default_factory=set)  # ports seen at the last scan


class NetworkPortsIsolator(Isolator):
    """See the module docstring."""

    name = "network/ports"

    def __init__(self, flags: ContainerizerFlags, cgroups: Cgroups | None) -> None:
        self.flags = flags
        self.cgroups = cgroups
        self.infos: dict[str, _Info] = {}
        self.scans = 0  # completed scans, for operators and tests
        self._loop_task: asyncio.Task[None] | None = None

    def observed(self, container_id: str) -> set[int]:
        """Ports the container was seen listening on at the last scan."""
        info = self.infos.get(container_id)
        return set(info.observed) if info is not None else set()

    # -- lifecycle --------------------------------------------------------------------

    def recover(self, states: Mapping[str, ContainerState], orphans: set[str]) -> None:
        for container_id, state in states.items():
            info = self._add(container_id)
            info.pid = state.pid
            if state.ranges is not None:
                info.allocated = tuple(state.ranges.get("ports", ()))

    def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        info = self._add(container_id)
        info.allocated = tuple(config.ranges.get("ports", ()))
        return None

    def _add(self, container_id: str) -> _Info:
        loop = asyncio.get_running_loop()
        info = _Info(limitation=loop.create_future())
        self.infos[container_id] = info
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = loop.create_task(self._scan_forever())
        return info

    def isolate(self, container_id: str, pid: int) -> None:
        info = self.infos.get(container_id)
        if info is not None:
            info.pid = pid

    def watch(self, container_id: str) -> asyncio.Future[Limitation] | None:
        info = self.infos.get(container_id)
        return info.limitation if info is not None else None

    def update_ranges(self, container_id: str, ranges: Mapping[str, Ranges]) -> None:
        info = self.infos.get(container_id)
        if info is not None:
            info.allocated = tuple(ranges.get("ports", ()))
            log.info("container %s: ports are now %s", container_id,
                     format_ranges(info.allocated))

    def limitation_on_exit(self, container_id: str) -> Limitation | None:
        info = self.infos.get(container_id)
        if info is not None and info.limitation.done() and not info.limitation.cancelled():
            return info.limitation.result()
        return None

    def cleanup(self, container_id: str) -> None:
        info = self.infos.pop(container_id, None)
        if info is not None and not info.limitation.done():
            info.limitation.cancel()
        if not self.infos and self._loop_task is not None:
            self._loop_task.cancel()
            self._loop_task = None

    # -- scanning ---------------------------------------------------------------------

    def _pids(self, container_id: str, first: int | None) -> set[int]:
        if self.cgroups is not None and self.cgroups.tracking_path(container_id).is_dir():
            return self.cgroups.pids(container_id)
        if first is None:
            return set()
        return {st.pid for st in descendants(first)}

    def _collect(self, targets: Mapping[str, int | None]) -> dict[str, set[int]]:
        pids = {cid: self._pids(cid, first) for cid, first in targets.items()}
        return container_listeners(pids)

    async def scan(self) -> None:
        """One pass over every container (the loop calls this each interval)."""
        targets = {cid: info.pid for cid, info in self.infos.items()}
        if targets:
            listeners = await asyncio.to_thread(self._collect, targets)
            for container_id, ports in listeners.items():
                self._check(container_id, ports)
        self.scans += 1

    async def _scan_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flags.container_ports_watch_interval)
            try:
                await self.scan()
            except Exception:  # a bad scan must not end the watching for good
                log.exception("network/ports: scan failed")

    def _check(self, container_id: str, ports: set[int]) -> None:
        info = self.infos.get(container_id)
        if info is None:
            return  # cleaned up while the scan ran
        info.observed = set(ports)
        if info.allocated is None:
            return
        if self.flags.check_agent_port_range_only:
            ports = {p for p in ports if in_ranges(p, self.flags.agent_ports)}
        unallocated = frozenset(p for p in ports if not in_ranges(p, info.allocated))
        if not unallocated or unallocated == info.reported:
            return
        info.reported = unallocated
        ranges = to_ranges(unallocated)
        message = (f"Container {container_id} is listening on unallocated port(s): "
                   f"{format_ranges(ranges)}")
        log.info("%s", message)
        if self.flags.enforce_container_ports and not info.limitation.done():
            info.limitation.set_result(Limitation(
                resources={}, message=message, reason="REASON_CONTAINER_LIMITATION",
                ranges={"ports": ranges},
            ))
