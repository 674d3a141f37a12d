"""Pure parts of disk/du, network/ports, cgroups/devices and gpu/nvidia.

The /proc and filesystem readers are exercised against the real thing (a real
listening socket, real files), the parsers against fixed text.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from mesos.agent.containerizer.isolator import ContainerizerFlags
from mesos.agent.containerizer.isolators import IsolationError, build_isolators, parse_isolation
from mesos.agent.containerizer.isolators.devices import DeviceEntry, parse_devices_list
from mesos.agent.containerizer.isolators.disk import FLAGS as DISK_FLAGS
from mesos.agent.containerizer.isolators.disk import disk_usage
from mesos.agent.containerizer.isolators.filesystem import FLAGS as FS_FLAGS
from mesos.agent.containerizer.isolators.gpu import FLAGS as GPU_FLAGS
from mesos.agent.containerizer.isolators.gpu import (
    Gpu,
    GpuAllocator,
    GpuError,
    control_devices,
    parse_gpu_devices,
    parse_nvidia_smi,
)
from mesos.agent.containerizer.isolators.ports import FLAGS as PORTS_FLAGS
from mesos.agent.containerizer.isolators.ports import (
    format_ranges,
    in_ranges,
    listening_sockets,
    process_socket_inodes,
    to_ranges,
)
from mesos.flags import parse_flags

# -- flags -----------------------------------------------------------------------------


def test_new_flags_parse_with_mesos_defaults() -> None:
    flags = parse_flags("mesos-agent", DISK_FLAGS + PORTS_FLAGS + FS_FLAGS + GPU_FLAGS, [], {})
    assert flags.container_disk_watch_interval == 15.0
    assert flags.enforce_container_disk_quota is False
    assert flags.container_ports_watch_interval == 30.0
    assert flags.check_agent_port_range_only is False
    assert flags.enforce_container_ports is False
    assert flags.switch_user is True
    assert flags.nvidia_gpu_devices is None
    flags = parse_flags("mesos-agent", GPU_FLAGS, ["--nvidia_gpu_devices=1,0"], {})
    assert flags.nvidia_gpu_devices == (1, 0)


@pytest.mark.parametrize("text", ["0,0", "a", "-1"])
def test_bad_gpu_device_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid GPU device list"):
        parse_gpu_devices(text)


# -- disk ------------------------------------------------------------------------------


def test_disk_usage_counts_allocated_blocks_once_per_inode(tmp_path: Path) -> None:
    empty = disk_usage(str(tmp_path))
    (tmp_path / "sub").mkdir()
    data = tmp_path / "sub" / "data"
    data.write_bytes(os.urandom(1024 * 1024))
    os.link(data, tmp_path / "hardlink")  # same inode: counted once
    (tmp_path / "link").symlink_to("/usr")  # not followed
    with open(tmp_path / "sparse", "wb") as f:
        f.truncate(64 * 1024 * 1024)  # 64 MB apparent, nothing allocated
    used = disk_usage(str(tmp_path))
    assert 1024 * 1024 <= used - empty < 2 * 1024 * 1024


def test_disk_usage_of_a_missing_sandbox_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        disk_usage(str(tmp_path / "nope"))


# -- ports -----------------------------------------------------------------------------


def test_ranges_helpers() -> None:
    assert to_ranges([5, 3, 4, 9, 11, 10]) == ((3, 5), (9, 11))
    assert format_ranges(((31000, 31000), (31005, 31010))) == "[31000-31000, 31005-31010]"
    assert in_ranges(31005, ((31000, 31000), (31005, 31010)))
    assert not in_ranges(31001, ((31000, 31000), (31005, 31010)))


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_a_listening_socket_of_this_process_is_found(family: int) -> None:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as e:  # pragma: no cover - a host without IPv6
        pytest.skip(f"no {family!r} sockets here: {e}")
    with sock:
        try:
            sock.bind((host, 0))
        except OSError as e:  # pragma: no cover
            pytest.skip(f"cannot bind {host}: {e}")
        port = sock.getsockname()[1]
        assert port not in listening_sockets().values()  # bound, not listening yet
        sock.listen()
        table = listening_sockets()
        ours = process_socket_inodes(os.getpid())
        assert port in {table[i] for i in ours if i in table}


# -- devices and gpus ------------------------------------------------------------------


def test_devices_list_round_trip() -> None:
    text = "c 1:3 rwm\nc *:* m\nb 8:* r\nc 136:* rwm\n"
    entries = parse_devices_list(text)
    assert entries[0] == DeviceEntry("c", 1, 3, "rwm")
    assert entries[1] == DeviceEntry("c", None, None, "m")
    assert "\n".join(map(str, entries)) + "\n" == text
    assert str(DeviceEntry("a")) == "a"


NVIDIA_SMI = """\
0, GPU-6f3a2bc1-0000-0000-0000-000000000000, NVIDIA H100 80GB HBM3, 81559 MiB, 00000000:19:00.0
1, GPU-6f3a2bc1-1111-1111-1111-111111111111, NVIDIA H100 80GB HBM3, 81559, 00000000:3B:00.0
"""


def test_nvidia_smi_csv_is_parsed() -> None:
    gpus = parse_nvidia_smi(NVIDIA_SMI)
    assert [(g.index, g.minor, g.major) for g in gpus] == [(0, 0, 195), (1, 1, 195)]
    assert gpus[0].name == "NVIDIA H100 80GB HBM3" and gpus[1].memory_mb == 81559
    assert gpus[1].uuid.startswith("GPU-6f3a")
    with pytest.raises(GpuError, match="unexpected nvidia-smi line"):
        parse_nvidia_smi("garbage\n")


def test_control_devices_include_uvm_when_loaded() -> None:
    assert control_devices("Character devices:\n  1 mem\n") == [DeviceEntry("c", 195, 255)]
    entries = control_devices("Character devices:\n195 nvidia\n511 nvidia-uvm\n")
    assert entries == [DeviceEntry("c", 195, 255), DeviceEntry("c", 511, 0),
                       DeviceEntry("c", 511, 1)]


def test_gpu_allocator_hands_out_lowest_free_and_takes_back() -> None:
    alloc = GpuAllocator([Gpu(1, 1), Gpu(0, 0), Gpu(2, 2)])
    first = alloc.allocate(2)
    assert [g.index for g in first] == [0, 1]
    with pytest.raises(GpuError, match="2 GPU\\(s\\) requested but only 1 of 3 are free"):
        alloc.allocate(2)
    alloc.release(first[:1])
    assert [g.index for g in alloc.allocate(2)] == [0, 2]
    alloc.claim([Gpu(1, 1)])
    assert alloc.available() == []


def test_gpu_isolator_needs_cgroups_devices_first() -> None:
    flags = ContainerizerFlags(isolation="gpu/nvidia,cgroups/devices")
    names = parse_isolation(flags.isolation)
    with pytest.raises(IsolationError, match="needs cgroups/devices before it"):
        build_isolators(names, flags, None)
