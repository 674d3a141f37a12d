"""A private network namespace joined to the host by a veth pair, for partition tests.

    with veth_namespace() as ns:
        ns.host_ip, ns.ns_ip        # the two ends of a private /30 (10.200.x.y)
        ns.prefix                   # ["nsenter", "--net=/run/netns/NAME"]: run inside
        ns.cut()                    # blackhole the link both ways
        ns.restore()                # and back

Why a blackhole and not a link down: taking either veth down removes the addresses'
routes on that side (the master, or the agent's own address, would vanish), and a
refused connection is not what a partition looks like. ``cut`` instead puts a
``pfifo`` qdisc with a limit of 0 packets on both ends (sch_fifo is always built in,
unlike netem): every packet is dropped silently, TCP retransmits into the void, and
both ends stay up. Neighbour entries are pinned (``nud permanent``) so that ARP
failures cannot turn the silence into fast "host unreachable" errors.

``nsenter --net`` joins only the network namespace (``ip netns exec`` would also
remount /sys in a new mount namespace), and it execs, so the PID a test holds is the
program's own.

Names carry the test process' PID so parallel runs do not collide; everything is
removed on exit, even when the body raises, and any process still inside the
namespace (necessarily one the test started) is SIGKILLed first. Needs root.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["NetnsError", "VethNamespace", "veth_namespace"]

NAME_PREFIX = "mesostest"
_counter = itertools.count()


class NetnsError(RuntimeError):
    """A namespace or link could not be set up (the message says which command)."""


def _ip(*args: str, netns: str | None = None) -> str:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    return _run(cmd)


def _run(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(cmd)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def _host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address in."""
    networks = []
    for line in _ip("-4", "-o", "addr", "show").splitlines():
        parts = line.split()
        if "inet" in parts:
            iface = ipaddress.IPv4Interface(parts[parts.index("inet") + 1])
            networks.append(iface.network)
    return networks


def _pick_subnet(seed: int) -> tuple[str, str]:
    """The two usable addresses of a /30 in 10.200.0.0/16 that overlaps nothing the
    host has, starting from ``seed`` so that concurrent test processes (different
    PIDs) start apart."""
    taken = _host_networks()
    slots = 256 * 64
    for step in range(slots):
        slot = (seed + step) % slots
        net = ipaddress.IPv4Network(f"10.200.{slot // 64}.{(slot % 64) * 4}/30")
        if not any(net.overlaps(other) for other in taken):
            host, peer = list(net.hosts())
            return str(host), str(peer)
    raise NetnsError("no free /30 left in 10.200.0.0/16")


def _mac(ifname: str, netns: str | None = None) -> str:
    """The link-layer address of ``ifname`` (in ``netns``, if given)."""
    shown = _ip("-o", "link", "show", ifname, netns=netns)
    return shown.split("link/ether", 1)[1].split()[0]


def _netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def _pids_in(inode: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    out.append(int(entry.name))
    return out


@dataclass
class VethNamespace:
    """One namespace and its veth pair; see the module docstring."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str
    is_cut: bool = field(default=False)

    @property
    def prefix(self) -> list[str]:
        """Command prefix that runs a program inside the namespace (and execs it)."""
        return ["nsenter", f"--net=/run/netns/{self.name}"]

    def cut(self) -> None:
        """Drop every packet both ways, silently (see the module docstring)."""
        _run(["tc", "qdisc", "replace", "dev", self.host_if, "root", "pfifo", "limit", "0"])
        _run(["ip", "netns", "exec", self.name, "tc", "qdisc", "replace", "dev", self.ns_if,
              "root", "pfifo", "limit", "0"])
        self.is_cut = True

    def restore(self) -> None:
        """Undo :meth:`cut`: packets flow again (TCP's retransmissions get through)."""
        _run(["tc", "qdisc", "del", "dev", self.host_if, "root"])
        _run(["ip", "netns", "exec", self.name, "tc", "qdisc", "del", "dev", self.ns_if, "root"])
        self.is_cut = False

    def pids(self) -> list[int]:
        """Processes inside the namespace now."""
        return _pids_in(_netns_inode(self.name))


def _create(name: str, host_if: str, ns_if: str, host_ip: str, ns_ip: str) -> None:
    _ip("netns", "add", name)
    _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
    _ip("link", "set", ns_if, "netns", name)
    _ip("addr", "add", f"{host_ip}/30", "dev", host_if)
    _ip("link", "set", host_if, "up")
    _ip("addr", "add", f"{ns_ip}/30", "dev", ns_if, netns=name)
    _ip("link", "set", ns_if, "up", netns=name)
    _ip("link", "set", "lo", "up", netns=name)
    # Pinned neighbours: a cut link is silence, never an ARP failure.
    _ip("neigh", "replace", ns_ip, "lladdr", _mac(ns_if, name), "dev", host_if,
        "nud", "permanent")
    _ip("neigh", "replace", host_ip, "lladdr", _mac(host_if), "dev", ns_if, "nud", "permanent",
        netns=name)


def _destroy(name: str, host_if: str) -> list[str]:
    """Remove what :func:`_create` made, as far as it got; the errors, if any."""
    errors = []
    with contextlib.suppress(OSError):
        for pid in _pids_in(_netns_inode(name)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    if Path(f"/sys/class/net/{host_if}").exists():
        try:
            _ip("link", "del", host_if)  # takes its peer with it
        except NetnsError as exc:
            errors.append(str(exc))
    if Path(f"/run/netns/{name}").exists():
        try:
            _ip("netns", "del", name)
        except NetnsError as exc:
            errors.append(str(exc))
    return errors


def _remove_stale() -> None:
    """Namespaces left by a test process that was itself SIGKILLed (its PID is gone)."""
    with contextlib.suppress(OSError):
        for entry in Path("/run/netns").iterdir():
            rest = entry.name.removeprefix(NAME_PREFIX)
            pid = rest.split("x", 1)[0]
            if rest != entry.name and pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _destroy(entry.name, f"vh{rest}")


def require_root() -> str | None:
    """Why this machine cannot run namespace tests (None if it can)."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns add, veth, tc)"
    return None


@contextlib.contextmanager
def veth_namespace() -> Iterator[VethNamespace]:
    """Create a namespace linked to the host by a fresh /30; remove it all on exit.

    Raises :class:`NetnsError` naming the failed command when the machine cannot do
    it, so a test fails loudly instead of testing nothing.
    """
    reason = require_root()
    if reason is not None:
        raise NetnsError(reason)
    _remove_stale()
    tag = f"{os.getpid()}x{next(_counter)}"
    name, host_if, ns_if = f"{NAME_PREFIX}{tag}", f"vh{tag}", f"vn{tag}"
    host_ip, ns_ip = _pick_subnet(os.getpid() * 7 + int(tag.split("x")[1]))
    finished = False
    try:
        _create(name, host_if, ns_if, host_ip, ns_ip)
        yield VethNamespace(name, host_if, ns_if, host_ip, ns_ip)
        finished = True
    finally:
        errors = _destroy(name, host_if)
        if errors:
            message = f"could not clean up namespace {name}: " + "; ".join(errors)
            if finished:
                raise NetnsError(message)
            sys.stderr.write(message + "\n")  # do not hide what the body raised
