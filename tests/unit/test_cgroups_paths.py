"""The containerizer's pure parts: mountinfo parsing, paths, limit arithmetic, flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos.agent.containerizer import cgroups as cg
from mesos.agent.containerizer.isolator import ContainerizerFlags, LaunchInfo
from mesos.agent.containerizer.isolators import IsolationError, parse_isolation
from mesos.agent.containerizer.isolators.cgroups import (
    cfs_quota_us,
    cpu_shares,
    cpu_weight,
    mem_limit_bytes,
)
from mesos.agent.containerizer.procfs import ProcStat, descendants

HYBRID = """\
24 18 0:21 / /sys/fs/cgroup rw,relatime shared:7 - tmpfs tmpfs rw,mode=755
25 24 0:22 / /sys/fs/cgroup/cpu rw,relatime shared:8 - cgroup cgroup rw,cpu
26 24 0:23 / /sys/fs/cgroup/cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpuacct
27 24 0:24 / /sys/fs/cgroup/memory rw,relatime shared:10 - cgroup cgroup rw,memory
28 24 0:25 / /sys/fs/cgroup/freezer rw,relatime shared:11 - cgroup cgroup rw,freezer
29 24 0:26 / /sys/fs/cgroup/systemd rw,relatime shared:12 - cgroup cgroup rw,name=systemd
30 24 0:27 / /sys/fs/cgroup/unified rw,relatime shared:13 - cgroup2 cgroup2 rw
31 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw
"""

COMOUNTED = """\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
"""

UNIFIED = """\
24 18 0:21 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
"""


def test_hybrid_layout_uses_v1_controllers_and_notes_the_extra_v2_mount() -> None:
    layout = cg.detect_layout(HYBRID)
    assert layout.v1 == {
        "cpu": Path("/sys/fs/cgroup/cpu"),
        "cpuacct": Path("/sys/fs/cgroup/cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
        "freezer": Path("/sys/fs/cgroup/freezer"),
    }
    assert layout.unified == Path("/sys/fs/cgroup/unified")
    assert not layout.unified_is_primary


def test_unified_layout_is_primary() -> None:
    layout = cg.detect_layout(UNIFIED)
    assert layout.v1 == {}
    assert layout.unified == Path("/sys/fs/cgroup")
    assert layout.unified_is_primary


def test_comounted_controllers_share_one_root_path() -> None:
    layout = cg.detect_layout(COMOUNTED)
    v1 = cg.CgroupsV1(layout.v1, "mesos")
    assert v1.path("cpu", "c1") == Path("/sys/fs/cgroup/cpu,cpuacct/mesos/c1")
    assert v1.path("cpuacct", "c1") == v1.path("cpu", "c1")
    assert v1.root_paths() == [
        Path("/sys/fs/cgroup/cpu,cpuacct/mesos"),
        Path("/sys/fs/cgroup/pids/mesos"),
    ]


def test_v1_paths_and_missing_controller_error() -> None:
    v1 = cg.CgroupsV1({"memory": Path("/m"), "freezer": Path("/f")}, "/mesos/nested/")
    assert v1.root == "mesos/nested"
    assert v1.path("memory", "abc") == Path("/m/mesos/nested/abc")
    assert v1.tracking_path("abc") == Path("/f/mesos/nested/abc")
    with pytest.raises(cg.CgroupsError, match=r"'pids' is not available.*freezer, memory"):
        v1.path("pids", "abc")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "cgroup.procs", "x\0y"])
def test_container_ids_that_are_not_one_safe_name_are_refused(bad: str) -> None:
    with pytest.raises(cg.CgroupsError, match="invalid container id"):
        cg.check_container_id(bad)


@pytest.mark.parametrize("root", ["", "/", "a/../b"])
def test_bad_cgroups_root_is_refused(root: str) -> None:
    with pytest.raises(cg.CgroupsError, match="invalid cgroups root"):
        cg.CgroupsV1({"memory": Path("/m")}, root)


def test_open_cgroups_fails_loudly_without_hierarchies_or_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(cg.CgroupsError, match="no cgroup hierarchy is mounted"):
        cg.open_cgroups("mesos", cg.CgroupLayout())
    monkeypatch.setattr(cg.os, "geteuid", lambda: 1000)
    with pytest.raises(cg.CgroupsError, match="needs root"):
        cg.open_cgroups("mesos", cg.detect_layout(HYBRID))


def test_read_keyed_parses_stat_files(tmp_path: Path) -> None:
    (tmp_path / "mesos" / "c1").mkdir(parents=True)
    (tmp_path / "mesos" / "c1" / "cpu.stat").write_text(
        "nr_periods 12\nnr_throttled 3\nthrottled_time 4500000\nbogus line here\n"
    )
    v1 = cg.CgroupsV1({"cpu": tmp_path}, "mesos")
    assert v1.read_keyed("c1", "cpu", "cpu.stat") == {
        "nr_periods": 12,
        "nr_throttled": 3,
        "throttled_time": 4500000,
    }


def test_limit_arithmetic_matches_mesos() -> None:
    assert cpu_shares(0.5) == 512
    assert cpu_shares(2) == 2048
    assert cpu_shares(0.001) == 2  # Mesos' MIN_CPU_SHARES
    assert cfs_quota_us(0.5) == 50_000
    assert cfs_quota_us(0.001) == 1_000  # at least 1ms per 100ms period
    assert cpu_weight(2) == 1 and cpu_weight(262144) == 10000
    assert cpu_weight(1024) == 39
    assert mem_limit_bytes(64) == 64 * 1024 * 1024
    assert mem_limit_bytes(1) == 32 * 1024 * 1024  # Mesos' MIN_MEMORY


def test_isolation_flag_names_the_unknown_isolator() -> None:
    assert parse_isolation("cgroups/cpu, cgroups/mem,posix/cpu") == [
        "cgroups/cpu",
        "cgroups/mem",
        "posix/cpu",
    ]
    with pytest.raises(IsolationError, match="unknown isolator 'cgroups/bogus'"):
        parse_isolation("cgroups/cpu,cgroups/bogus")
    with pytest.raises(IsolationError, match="twice"):
        parse_isolation("posix/cpu,posix/cpu")


def test_unknown_launcher_is_refused() -> None:
    from mesos.agent.containerizer import MesosContainerizer

    with pytest.raises(IsolationError, match="unknown --launcher='docker'"):
        MesosContainerizer.create(ContainerizerFlags(isolation="posix/cpu", launcher="docker"))
    with pytest.raises(IsolationError, match="namespaces/pid needs --launcher=linux"):
        MesosContainerizer.create(
            ContainerizerFlags(isolation="namespaces/pid", launcher="posix")
        )


def test_launch_info_merge_keeps_order_and_drops_duplicates() -> None:
    a = LaunchInfo(env={"A": "1"}, join_cgroups=[Path("/x")], namespaces=["pid"])
    a.merge(LaunchInfo(env={"B": "2"}, join_cgroups=[Path("/x"), Path("/y")], namespaces=["pid"]))
    a.merge(None)
    assert a == LaunchInfo({"A": "1", "B": "2"}, [Path("/x"), Path("/y")], ["pid"])


def test_descendants_walks_the_tree_only() -> None:
    table = [
        ProcStat(10, 1, 0.5, 0.1, 100, 1),
        ProcStat(11, 10, 1.0, 0.0, 200, 2),
        ProcStat(12, 11, 0.0, 0.2, 300, 1),
        ProcStat(13, 1, 9.0, 9.0, 999, 1),  # a sibling of the root: not counted
    ]
    assert sorted(st.pid for st in descendants(10, table)) == [10, 11, 12]
    assert descendants(99, table) == []
