"""disk/du, network/ports, filesystem/posix, cgroups/devices and gpu/nvidia, for real.

Real processes in real cgroups (we run as root; each test has its own
``--cgroups_root``, removed afterwards with whatever is still in it, even when
the test fails), real files, real listening sockets on 127.0.0.1.

This host has no Nvidia GPU: the gpu/nvidia tests put a FAKE ``nvidia-smi``
(a shell script printing two GPUs) first on PATH, and stand in for
``/dev/nvidia0`` and ``/dev/nvidia1`` with device nodes (major 195) made in a
temporary directory. The devices cgroup that guards them is the kernel's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import pwd
import shutil
import socket
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mesos.agent.containerizer import (
    ContainerizerFlags,
    ContainerState,
    LaunchError,
    MesosContainerizer,
    open_cgroups,
)
from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import Isolator
from mesos.agent.containerizer.isolators.gpu import NvidiaGpuIsolator
from mesos.agent.containerizer.isolators.ports import NetworkPortsIsolator
from tests.integration.test_containerizer_cgroups import alive, wait_until

pytestmark = pytest.mark.slow

WAIT = 60.0
MB = 1024 * 1024
_counter = itertools.count()
IsolatorT = TypeVar("IsolatorT", bound=Isolator)


def _require_root_cgroups(*controllers: str) -> None:
    """Fail (not skip) with the reason when this host cannot run these tests."""
    if os.geteuid() != 0:
        pytest.fail("containerizer isolator tests need root (CI runs as root)")
    try:
        open_cgroups("mesos-probe", need=["freezer", *controllers])
    except CgroupsError as e:
        pytest.fail(f"containerizer isolator tests need cgroups: {e}")


def isolator(c: MesosContainerizer, cls: type[IsolatorT]) -> IsolatorT:
    found = [i for i in c.isolators if isinstance(i, cls)]
    assert len(found) == 1
    return found[0]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., MesosContainerizer]]:
    _require_root_cgroups()
    root = f"mesos-test-iso-{os.getpid()}-{next(_counter)}"
    made: list[MesosContainerizer] = []

    def factory(isolation: str, **kw: Any) -> MesosContainerizer:
        flags = ContainerizerFlags(isolation=isolation, cgroups_root=root, **kw)
        containerizer = MesosContainerizer.create(flags)
        made.append(containerizer)
        return containerizer

    try:
        yield factory
    finally:
        for containerizer in made:
            for container_id in containerizer.containers():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(containerizer.destroy(container_id), WAIT)
        await _scrub(open_cgroups(root))
        assert not any(p.exists() for p in open_cgroups(root).root_paths())


async def _scrub(cgroups: Cgroups) -> None:
    for container_id in cgroups.containers():
        with contextlib.suppress(CgroupsError):
            await cgroups.destroy(container_id)
    await cgroups.remove_root()


# -- disk/du -----------------------------------------------------------------------------


async def test_writing_past_the_disk_quota_kills_with_the_disk_reason(
    make: Callable[..., MesosContainerizer], tmp_path: Path,
) -> None:
    c = make("cgroups/mem,disk/du", container_disk_watch_interval=0.1,
             enforce_container_disk_quota=True)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    pid = await c.launch(
        "du1", ["sh", "-c", "dd if=/dev/zero of=fill bs=1M count=8 2>/dev/null; sleep 600"],
        resources={"mem": 64, "disk": 4}, sandbox=str(sandbox),
    )
    termination = await asyncio.wait_for(c.wait("du1"), WAIT)
    assert termination is not None
    assert termination.reason == "REASON_CONTAINER_LIMITATION_DISK"
    assert termination.status == -9  # killed, not finished: the sleep had ten minutes left
    limitation = termination.limitations[0]
    assert limitation.resources == {"disk": 4.0}
    assert limitation.message.startswith("Disk usage (")
    assert limitation.message.endswith("exceeds quota (4MB)")
    assert not alive(pid)
    assert (sandbox / "fill").exists()  # the sandbox stays for the agent (and its GC)


async def test_disk_usage_is_reported_and_not_enforced_by_default(
    make: Callable[..., MesosContainerizer], tmp_path: Path,
) -> None:
    c = make("disk/du", launcher="posix", container_disk_watch_interval=0.1)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    await c.launch(
        "du2", ["sh", "-c", "dd if=/dev/zero of=fill bs=1M count=3 2>/dev/null; sleep 600"],
        resources={"disk": 1}, sandbox=str(sandbox),
    )

    async def used() -> float:
        return (await c.usage("du2")).get("disk_used_bytes", 0.0)

    deadline = time.monotonic() + WAIT
    while await used() < 3 * MB:
        assert time.monotonic() < deadline, "disk_used_bytes never reached 3MB"
        await asyncio.sleep(0.05)
    stats = await c.usage("du2")
    assert stats["disk_limit_bytes"] == 1 * MB
    assert "du2" in c.containers()  # over its disk, but nobody asked for enforcement
    await c.update("du2", {"disk": 16})
    assert (await c.usage("du2"))["disk_limit_bytes"] == 16 * MB


# -- network/ports -----------------------------------------------------------------------

LISTEN = """
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
open(sys.argv[2], "w").write(str(s.getsockname()[1]))
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def listen(c: MesosContainerizer, cid: str, port: int, tmp_path: Path,
                 ports: tuple[tuple[int, int], ...]) -> int:
    """Launch a container listening on ``port`` (0: any); returns the port it got."""
    out = tmp_path / f"{cid}.port"
    await c.launch(cid, [sys.executable, "-c", LISTEN, str(port), str(out)],
                   resources={"mem": 64}, ranges={"ports": ports})
    return int(await wait_until(lambda: out.exists() and out.read_text(), f"{cid} to listen"))


async def test_listening_on_an_unallocated_port_is_a_limitation(
    make: Callable[..., MesosContainerizer], tmp_path: Path,
) -> None:
    c = make("cgroups/mem,network/ports", container_ports_watch_interval=0.1,
             enforce_container_ports=True)
    allocated = free_port()
    port = await listen(c, "bad", 0, tmp_path, ((allocated, allocated),))
    termination = await asyncio.wait_for(c.wait("bad"), WAIT)
    assert termination is not None
    assert termination.reason == "REASON_CONTAINER_LIMITATION"
    assert termination.status == -9
    limitation = termination.limitations[0]
    assert limitation.ranges == {"ports": ((port, port),)}
    assert limitation.message == (
        f"Container bad is listening on unallocated port(s): [{port}-{port}]"
    )


async def test_listening_on_an_allocated_port_is_fine(
    make: Callable[..., MesosContainerizer], tmp_path: Path,
) -> None:
    c = make("cgroups/mem,network/ports", container_ports_watch_interval=0.1,
             enforce_container_ports=True)
    ports = isolator(c, NetworkPortsIsolator)
    port = free_port()
    assert await listen(c, "good", port, tmp_path, ((port - 1, port + 1),)) == port
    await wait_until(lambda: port in ports.observed("good"), "a scan to see the listener")
    seen_at = ports.scans
    await wait_until(lambda: ports.scans >= seen_at + 3, "three more scans")
    watch = ports.watch("good")
    assert watch is not None and not watch.done()
    assert "good" in c.containers()
    # The executor loses its ports: the same listener is now a violation.
    await c.update("good", {"mem": 64}, ranges={"ports": ()})
    termination = await asyncio.wait_for(c.wait("good"), WAIT)
    assert termination is not None and termination.reason == "REASON_CONTAINER_LIMITATION"


async def test_agent_port_range_only_and_log_only_modes(
    make: Callable[..., MesosContainerizer], tmp_path: Path,
) -> None:
    agent_port = free_port()
    c = make("cgroups/mem,network/ports", container_ports_watch_interval=0.1,
             enforce_container_ports=True, check_agent_port_range_only=True,
             agent_ports=((agent_port, agent_port),))
    ports = isolator(c, NetworkPortsIsolator)
    # An ephemeral port outside the agent's range: not the isolator's business.
    elsewhere = await listen(c, "ephemeral", 0, tmp_path, ())
    await wait_until(lambda: elsewhere in ports.observed("ephemeral"), "a scan to see it")
    seen_at = ports.scans
    await wait_until(lambda: ports.scans >= seen_at + 2, "two more scans")
    assert "ephemeral" in c.containers()
    # An agent port the container was not given: killed.
    await listen(c, "squatter", agent_port, tmp_path, ())
    termination = await asyncio.wait_for(c.wait("squatter"), WAIT)
    assert termination is not None
    assert termination.limitations[0].ranges == {"ports": ((agent_port, agent_port),)}
    assert "ephemeral" in c.containers()

    # Without --enforce_container_ports the violation is only logged.
    lenient = make("network/ports", launcher="posix", container_ports_watch_interval=0.1)
    lenient_ports = isolator(lenient, NetworkPortsIsolator)
    port = await listen(lenient, "logged", 0, tmp_path, ())
    await wait_until(lambda: port in lenient_ports.observed("logged"), "a scan to see it")
    seen_at = lenient_ports.scans
    await wait_until(lambda: lenient_ports.scans >= seen_at + 2, "two more scans")
    assert "logged" in lenient.containers()


# -- filesystem/posix --------------------------------------------------------------------


@pytest.fixture
def world_sandbox() -> Iterator[Path]:
    """A sandbox whose ancestors 'nobody' can traverse (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="mesos-fs-test-", dir="/tmp"))
    try:
        base.chmod(0o755)
        (base / "sandbox").mkdir()
        (base / "sandbox" / "fetched").mkdir()
        (base / "sandbox" / "fetched" / "file").write_text("from the fetcher")
        (base / "root-only").mkdir(mode=0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def run_to_end(c: MesosContainerizer, cid: str, script: str, out: Path,
                     **kw: Any) -> list[str]:
    with open(out, "w") as f:
        await c.launch(cid, ["sh", "-c", script], resources={"mem": 64}, stdout=f, **kw)
    termination = await asyncio.wait_for(c.wait(cid), WAIT)
    assert termination is not None and termination.status == 0, out.read_text()
    return out.read_text().split("\n")


async def test_task_runs_as_its_user_and_owns_its_sandbox(
    make: Callable[..., MesosContainerizer], world_sandbox: Path, tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    groups = sorted(os.getgrouplist("nobody", nobody.pw_gid))
    c = make("cgroups/mem,filesystem/posix")
    sandbox = world_sandbox / "sandbox"
    script = (
        "id -u; id -g; id -G | tr ' ' '\\n' | sort -n | tr '\\n' ' '; echo;"
        " touch written && stat -c %U written;"
        f" touch {world_sandbox}/root-only/x 2>/dev/null && echo allowed || echo denied"
    )
    lines = await run_to_end(c, "fs", script, tmp_path / "out", sandbox=str(sandbox),
                             user="nobody")
    assert lines[0] == str(nobody.pw_uid)
    assert lines[1] == str(nobody.pw_gid)
    assert [int(g) for g in lines[2].split()] == groups
    assert lines[3] == "nobody"
    assert lines[4] == "denied"
    for path in (sandbox, sandbox / "fetched", sandbox / "fetched" / "file"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    assert not (world_sandbox / "root-only" / "x").exists()


async def test_user_inside_a_pid_namespace_and_switch_user_off(
    make: Callable[..., MesosContainerizer], world_sandbox: Path, tmp_path: Path,
) -> None:
    nobody = pwd.getpwnam("nobody")
    sandbox = world_sandbox / "sandbox"
    c = make("cgroups/mem,namespaces/pid,filesystem/posix")
    lines = await run_to_end(c, "ns", "id -u; echo $$", tmp_path / "ns", sandbox=str(sandbox),
                             user="nobody")
    assert lines[:2] == [str(nobody.pw_uid), "1"]

    off = make("cgroups/mem,filesystem/posix", switch_user=False)
    (sandbox / "later").write_text("root's")
    lines = await run_to_end(off, "off", "id -u", tmp_path / "off", sandbox=str(sandbox),
                             user="nobody")
    assert lines[0] == "0"
    assert (sandbox / "later").stat().st_uid == 0  # left alone


async def test_an_unknown_user_fails_the_launch_and_leaves_nothing(
    make: Callable[..., MesosContainerizer], world_sandbox: Path,
) -> None:
    c = make("cgroups/mem,filesystem/posix")
    with pytest.raises(LaunchError, match="user 'no-such-user-here' does not exist"):
        await c.launch("ghost", ["true"], resources={"mem": 32},
                       sandbox=str(world_sandbox / "sandbox"), user="no-such-user-here")
    assert c.containers() == set()
    assert c.cgroups is not None and "ghost" not in c.cgroups.containers()


# -- cgroups/devices + gpu/nvidia (fake nvidia-smi; see the module docstring) ------------

FAKE_NVIDIA_SMI = """#!/bin/sh
# FAKE nvidia-smi for tests on a host without GPUs: two H100s, answers --query-gpu only.
case "$*" in
  *--query-gpu=*) ;;
  *) echo "fake nvidia-smi: unexpected arguments: $*" >&2; exit 2 ;;
esac
echo "0, GPU-00000000-fake-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559, 00000000:19:00.0"
echo "1, GPU-11111111-fake-1111-1111-111111111111, NVIDIA H100 80GB HBM3, 81559, 00000000:3B:00.0"
"""

PROBE = """
import errno, os, sys
for path in sys.argv[1:]:
    try:
        os.close(os.open(path, os.O_RDWR))
        print(path, "ok")
    except OSError as e:
        print(path, errno.errorcode[e.errno])
print("env", os.environ.get("CUDA_VISIBLE_DEVICES"), os.environ.get("NVIDIA_VISIBLE_DEVICES"))
"""


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake nvidia-smi first on PATH, and stand-in /dev/nvidia{0,1} nodes; returns their dir."""
    _require_root_cgroups("devices")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    dev = tmp_path / "dev"
    dev.mkdir()
    for minor in (0, 1, 255):
        name = "nvidiactl" if minor == 255 else f"nvidia{minor}"
        os.mknod(dev / name, stat.S_IFCHR | 0o666, os.makedev(195, minor))
    return dev


def devices_list(c: MesosContainerizer, cid: str) -> set[str]:
    assert c.cgroups is not None
    return set(c.cgroups.read(cid, "devices", "devices.list").splitlines())


async def probe(c: MesosContainerizer, cid: str, dev: Path, tmp_path: Path,
                gpus: float) -> dict[str, str]:
    out = tmp_path / f"{cid}.probe"
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")}
    paths = [str(dev / "nvidia0"), str(dev / "nvidia1"), str(dev / "nvidiactl"), "/dev/null"]
    with open(out, "w") as f:
        await c.launch(cid, [sys.executable, "-c", PROBE, *paths], env=env,
                       resources={"mem": 64, "gpus": gpus}, stdout=f)
    termination = await asyncio.wait_for(c.wait(cid), WAIT)
    assert termination is not None and termination.status == 0, out.read_text()
    lines = [line.split(" ", 1) for line in out.read_text().splitlines()]
    return {Path(k).name: v for k, v in lines}


async def test_a_container_given_gpu_0_of_2_can_open_only_that_one(
    make: Callable[..., MesosContainerizer], fake_gpus: Path, tmp_path: Path,
) -> None:
    c = make("cgroups/mem,cgroups/devices,gpu/nvidia")
    gpu = isolator(c, NvidiaGpuIsolator)
    assert [(g.index, g.minor, g.uuid[:12]) for g in gpu.allocator.total] == [
        (0, 0, "GPU-00000000"), (1, 1, "GPU-11111111"),
    ]
    # No driver stands behind major 195 here, so a device the cgroup lets through
    # fails to open with ENXIO; one it denies fails with EPERM before any driver.
    allowed = {"ok", "ENXIO"}
    seen = await probe(c, "one", fake_gpus, tmp_path, gpus=1)
    assert seen["nvidia0"] in allowed and seen["nvidiactl"] in allowed
    assert seen["nvidia1"] == "EPERM"
    assert seen["null"] == "ok"
    assert seen["env"] == "None None"  # as Mesos: no CUDA_/NVIDIA_VISIBLE_DEVICES
    seen = await probe(c, "none", fake_gpus, tmp_path, gpus=0)
    assert seen["nvidia0"] == seen["nvidia1"] == "EPERM"
    assert seen["nvidiactl"] in allowed  # nvidia-smi works even with no GPU
    assert gpu.allocator.available() == gpu.allocator.total  # released on cleanup


async def test_gpu_allocation_follows_updates_and_is_recovered(
    make: Callable[..., MesosContainerizer], fake_gpus: Path,
) -> None:
    c = make("cgroups/devices,gpu/nvidia")
    gpu = isolator(c, NvidiaGpuIsolator)
    pid = await c.launch("a", ["sleep", "600"], resources={"gpus": 1})
    await c.launch("b", ["sleep", "600"], resources={"gpus": 1})
    listed = devices_list(c, "a")
    assert {"c 195:0 rwm", "c 195:255 rwm", "c 1:3 rwm", "c *:* m"} <= listed
    assert "c 195:1 rwm" not in listed and "a *:* rwm" not in listed
    assert "c 195:1 rwm" in devices_list(c, "b") and "c 195:0 rwm" not in devices_list(c, "b")
    with pytest.raises(LaunchError, match="1 GPU\\(s\\) requested but only 0 of 2 are free"):
        await c.launch("c", ["sleep", "600"], resources={"gpus": 1})
    with pytest.raises(LaunchError, match="whole number"):
        await c.launch("half", ["sleep", "600"], resources={"gpus": 0.5})

    await c.destroy("b")
    await c.update("a", {"gpus": 2})
    assert {"c 195:0 rwm", "c 195:1 rwm"} <= devices_list(c, "a")
    await c.update("a", {"gpus": 1})
    assert "c 195:1 rwm" not in devices_list(c, "a")
    assert [g.index for g in gpu.allocator.available()] == [1]

    # A restarted agent finds the allocation in the cgroup.
    again = make("cgroups/devices,gpu/nvidia")
    assert await again.recover([ContainerState("a", pid, {"gpus": 1})]) == set()
    regpu = isolator(again, NvidiaGpuIsolator)
    assert [g.index for g in regpu.allocated("a")] == [0]
    assert [g.index for g in regpu.allocator.available()] == [1]
    await again.destroy("a")
    assert [g.index for g in regpu.allocator.available()] == [0, 1]
    await asyncio.wait_for(c.wait("a"), WAIT)  # the first instance reaps its child


def test_gpu_isolator_discovery_with_a_device_subset(
    fake_gpus: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mesos.agent.containerizer.isolators.gpu import GpuError, discover_gpus

    assert [g.index for g in discover_gpus((1,))] == [1]
    with pytest.raises(GpuError, match="names GPUs \\[7\\]"):
        discover_gpus((0, 7))
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi at all
    assert discover_gpus() == []
    assert [(g.index, g.minor) for g in discover_gpus((2, 3))] == [(2, 2), (3, 3)]
