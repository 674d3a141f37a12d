"""The Mesos containerizer on this host's real cgroups (we run as root).

Every test uses its own ``--cgroups_root`` ("mesos-test-<pid>-<n>") and the
fixture removes every cgroup under it afterwards, killing (through the cgroups,
so only what the test started) whatever is still inside, even when the test
failed. Without root or without cgroups the tests fail and say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.containerizer import (
    ContainerizerFlags,
    ContainerState,
    LaunchInfo,
    MesosContainerizer,
    open_cgroups,
)
from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError, CgroupsV2, detect_layout
from mesos.agent.containerizer.isolator import ContainerConfig
from mesos.agent.containerizer.isolators.cgroups import CgroupsMemIsolator
from mesos.agent.containerizer.launcher import PosixLauncher

pytestmark = pytest.mark.slow

WAIT = 60.0
MB = 1024 * 1024
_counter = itertools.count()

ALLOCATE_64MB = "b = bytearray(64 * 1024 * 1024); import time; time.sleep(600)"
FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.02)
"""


def _require_cgroups() -> None:
    """Fail (not skip) with the reason when this host cannot run these tests."""
    if os.geteuid() != 0:
        pytest.fail("containerizer cgroup tests need root (CI runs as root)")
    try:
        open_cgroups("mesos-probe", need=["cpu", "cpuacct", "memory", "pids", "freezer"])
    except CgroupsError as e:
        pytest.fail(f"containerizer cgroup tests need cgroups: {e}")


async def wait_until(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    """Running (a zombie is dead: it waits only for a parent to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cgroup_dirs(cgroups: Cgroups, container_id: str) -> list[Path]:
    return [root / container_id for root in cgroups.root_paths() if (root / container_id).exists()]


@pytest.fixture
def cgroups_root() -> str:
    _require_cgroups()
    return f"mesos-test-{os.getpid()}-{next(_counter)}"


async def _scrub(cgroups: Cgroups) -> None:
    """Kill what is left in our root (ours only) and remove every cgroup under it."""
    for container_id in cgroups.containers():
        with contextlib.suppress(CgroupsError):
            await cgroups.destroy(container_id)
    await cgroups.remove_root()


@pytest.fixture
async def make(cgroups_root: str) -> AsyncIterator[Callable[..., MesosContainerizer]]:
    made: list[MesosContainerizer] = []

    def factory(isolation: str, **kw: Any) -> MesosContainerizer:
        flags = ContainerizerFlags(isolation=isolation, cgroups_root=cgroups_root, **kw)
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
        await _scrub(open_cgroups(cgroups_root))
        assert not any(root.exists() for root in open_cgroups(cgroups_root).root_paths())


def read(cgroups: Cgroups, controller: str, container_id: str, name: str) -> str:
    return (cgroups.path(controller, container_id) / name).read_text().strip()


# -- memory ------------------------------------------------------------------------


async def test_allocating_twice_the_limit_is_oom_killed_and_reported(
    make: Callable[..., MesosContainerizer],
) -> None:
    c = make("cgroups/cpu,cgroups/mem", launcher="linux")
    pid = await c.launch(
        "oom", [sys.executable, "-c", ALLOCATE_64MB], resources={"cpus": 0.5, "mem": 32}
    )
    assert pid > 0
    termination = await asyncio.wait_for(c.wait("oom"), WAIT)
    assert termination is not None
    assert termination.status == -9
    assert termination.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert termination.limitations[0].resources == {"mem": 32.0}
    assert "Memory limit exceeded" in termination.message
    assert not alive(pid)
    assert c.cgroups is not None and cgroup_dirs(c.cgroups, "oom") == []
    assert c.containers() == set()
    assert await c.wait("oom") == termination  # answered again after the end


@pytest.mark.parametrize("notice", ["eventfd", "poll"])
async def test_mem_isolator_watch_resolves_when_the_kernel_oom_kills(
    cgroups_root: str, notice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The isolator alone: nobody but the kernel kills the process here."""
    cgroups = open_cgroups(cgroups_root)
    isolator = CgroupsMemIsolator(ContainerizerFlags(oom_poll_interval=0.05), cgroups)
    if notice == "poll":  # as on v2, or a v1 kernel refusing cgroup.event_control
        monkeypatch.setattr(isolator, "_watch_eventfd", lambda *_: False)
    process = None
    try:
        config = ContainerConfig("m1", [], {}, None, {"mem": 32})
        info = isolator.prepare("m1", config)
        assert read(cgroups, "memory", "m1", "memory.limit_in_bytes") == str(32 * MB)
        watch = isolator.watch("m1")
        process = await PosixLauncher().fork(
            "m1", [sys.executable, "-c", ALLOCATE_64MB], dict(os.environ), None, info
        )
        limitation = await asyncio.wait_for(watch, WAIT)
        assert limitation.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert limitation.resources == {"mem": 32.0}
        assert await asyncio.wait_for(process.wait(), WAIT) == -9  # the OOM killer's SIGKILL
        await wait_until(lambda: isolator.oom_kills("m1") >= 1, "the oom_kill count")
        assert isolator.limitation_on_exit("m1") == limitation
    finally:
        isolator.cleanup("m1")
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await _scrub(cgroups)


async def test_mem_isolator_watch_is_cancelled_not_resolved_when_the_cgroup_goes(
    cgroups_root: str,
) -> None:
    """The kernel signals the OOM eventfd when the cgroup is removed; that is no OOM."""
    cgroups = open_cgroups(cgroups_root)
    isolator = CgroupsMemIsolator(ContainerizerFlags(), cgroups)
    try:
        isolator.prepare("gone", ContainerConfig("gone", [], {}, None, {"mem": 32}))
        watch = isolator.watch("gone")
        await cgroups.destroy("gone")  # e.g. another agent instance cleaning an orphan
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(watch, WAIT)
        assert isolator.limitation_on_exit("gone") is None
    finally:
        isolator.cleanup("gone")
        await _scrub(cgroups)


# -- pids --------------------------------------------------------------------------


async def test_fork_bomb_stays_bounded_and_is_destroyed_cleanly(
    make: Callable[..., MesosContainerizer],
) -> None:
    c = make("cgroups/cpu,cgroups/pids,cgroups/mem", cgroups_enable_cfs=True)
    cg = c.cgroups
    assert cg is not None
    await c.launch(
        "bomb", [sys.executable, "-c", FORK_BOMB], resources={"cpus": 0.5, "mem": 512, "pids": 16}
    )
    assert read(cg, "pids", "bomb", "pids.max") == "16"
    # The bomb fills its quota and the kernel starts refusing forks.
    await wait_until(lambda: int(read(cg, "pids", "bomb", "pids.current")) == 16,
                     "the bomb to reach pids.max")
    await wait_until(lambda: "max 0" not in read(cg, "pids", "bomb", "pids.events"),
                     "a refused fork in pids.events")
    members = c.pids("bomb")
    assert 1 <= len(members) <= 16
    assert int(read(cg, "pids", "bomb", "pids.current")) <= 16
    termination = await asyncio.wait_for(c.destroy("bomb"), WAIT)
    assert termination is not None and termination.status == -9
    assert termination.limitations == ()
    assert [p for p in members if alive(p)] == []
    assert cgroup_dirs(cg, "bomb") == []


# -- destroy -----------------------------------------------------------------------


async def test_destroy_leaves_nothing_including_setsid_escapees(
    make: Callable[..., MesosContainerizer], tmp_path: Path
) -> None:
    c = make("cgroups/mem,posix/cpu")
    assert c.cgroups is not None
    # The grandchild leaves the session and its parent exits: it is re-parented
    # to init and no process group or session contains it any more.
    script = "setsid sh -c 'sleep 600 & echo $! > escaped; exit 0' & sleep 600"
    pid = await c.launch("tree", ["sh", "-c", script], cwd=str(tmp_path),
                         resources={"cpus": 0.1, "mem": 64})
    escaped_file = tmp_path / "escaped"
    await wait_until(lambda: escaped_file.exists() and escaped_file.read_text().strip(),
                     "the escapee to start")
    escaped = int(escaped_file.read_text())
    assert os.getsid(escaped) != pid  # really outside the container's session
    assert escaped in c.pids("tree")  # but still inside its cgroups
    members = c.pids("tree")
    termination = await asyncio.wait_for(c.destroy("tree"), WAIT)
    assert termination is not None and termination.status == -9
    assert [p for p in members | {escaped, pid} if alive(p)] == []
    assert cgroup_dirs(c.cgroups, "tree") == []
    assert await c.destroy("tree") == termination  # idempotent


async def test_a_container_whose_process_exits_is_cleaned_up(
    make: Callable[..., MesosContainerizer],
) -> None:
    c = make("cgroups/cpu,cgroups/mem")
    assert c.cgroups is not None
    await c.launch("short", ["sh", "-c", "exit 3"], resources={"cpus": 0.1, "mem": 32})
    termination = await asyncio.wait_for(c.wait("short"), WAIT)
    assert termination is not None
    assert (termination.status, termination.reason) == (3, None)
    assert cgroup_dirs(c.cgroups, "short") == []


async def test_a_failed_launch_leaves_no_cgroup(make: Callable[..., MesosContainerizer]) -> None:
    from mesos.agent.containerizer import LaunchError

    c = make("cgroups/cpu,cgroups/mem")
    assert c.cgroups is not None
    with pytest.raises(LaunchError, match="no-such-binary"):
        await c.launch("bad", ["/no-such-binary"], resources={"cpus": 0.1, "mem": 32})
    assert cgroup_dirs(c.cgroups, "bad") == []
    assert c.containers() == set()


# -- cpu, limits, usage ------------------------------------------------------------


async def test_limits_follow_resources_and_usage_reports_cpu_time(
    make: Callable[..., MesosContainerizer],
) -> None:
    c = make("cgroups/cpu,cgroups/mem,cgroups/pids", cgroups_enable_cfs=True,
             cgroups_limit_swap=True, cgroups_pids_max=100)
    cg = c.cgroups
    assert cg is not None
    started = time.monotonic()
    # A small quota, so the loop is throttled even on a host busy with other work.
    await c.launch("busy", [sys.executable, "-c", "while True: pass"],
                   resources={"cpus": 0.2, "mem": 64})
    assert read(cg, "cpu", "busy", "cpu.shares") == "204"
    assert read(cg, "cpu", "busy", "cpu.cfs_period_us") == "100000"
    assert read(cg, "cpu", "busy", "cpu.cfs_quota_us") == "20000"
    assert read(cg, "memory", "busy", "memory.limit_in_bytes") == str(64 * MB)
    assert read(cg, "memory", "busy", "memory.memsw.limit_in_bytes") == str(64 * MB)
    assert read(cg, "pids", "busy", "pids.max") == "100"

    async def cpu_time() -> float:
        stats = await c.usage("busy")
        return stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"]

    deadline = time.monotonic() + WAIT
    while await cpu_time() < 0.3:
        assert time.monotonic() < deadline, "the busy loop got no cpu time"
        await asyncio.sleep(0.1)
    stats = await c.usage("busy")
    wall = time.monotonic() - started
    used = stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"]
    # The quota is a ceiling whatever the load: a fifth of a cpu (plus ticks).
    assert used <= 0.2 * wall + 0.25, (used, wall)
    assert stats["cpus_limit"] == 0.2
    assert stats["cpus_nr_periods"] > 0
    assert stats["cpus_nr_throttled"] > 0  # a busy loop at a fifth of a cpu hits the quota
    assert stats["cpus_throttled_time_secs"] > 0
    assert stats["mem_limit_bytes"] == 64 * MB
    assert 0 < stats["mem_rss_bytes"] <= stats["mem_total_bytes"] <= 64 * MB
    assert stats["processes"] == 1 and stats["threads"] >= 1
    assert stats["timestamp"] == pytest.approx(time.time(), abs=60)

    await c.update("busy", {"cpus": 1.5, "mem": 128})
    assert read(cg, "cpu", "busy", "cpu.shares") == "1536"
    assert read(cg, "cpu", "busy", "cpu.cfs_quota_us") == "150000"
    assert read(cg, "memory", "busy", "memory.limit_in_bytes") == str(128 * MB)
    assert read(cg, "memory", "busy", "memory.memsw.limit_in_bytes") == str(128 * MB)
    # Shrinking: cpu follows; memory lowers only the soft limit (as Mesos), since a
    # lower hard limit could OOM-kill the running container on the spot.
    await c.update("busy", {"cpus": 0.25, "mem": 48})
    assert read(cg, "cpu", "busy", "cpu.cfs_quota_us") == "25000"
    assert read(cg, "memory", "busy", "memory.soft_limit_in_bytes") == str(48 * MB)
    assert read(cg, "memory", "busy", "memory.limit_in_bytes") == str(128 * MB)
    assert read(cg, "memory", "busy", "memory.memsw.limit_in_bytes") == str(128 * MB)
    assert (await c.usage("busy"))["cpus_limit"] == 0.25


async def test_posix_isolators_report_usage_of_the_process_tree(
    make: Callable[..., MesosContainerizer],
) -> None:
    c = make("posix/cpu,posix/mem", launcher="posix")
    assert c.cgroups is None  # nothing here needs cgroups
    await c.launch("p", [sys.executable, "-c", "while True: pass"],
                   resources={"cpus": 1, "mem": 64})
    await wait_until(lambda: c.pids("p"), "the process")

    async def busy() -> bool:
        stats = await c.usage("p")
        return stats["cpus_user_time_secs"] + stats["cpus_system_time_secs"] >= 0.3

    deadline = time.monotonic() + WAIT
    while not await busy():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    stats = await c.usage("p")
    assert stats["mem_rss_bytes"] > 0 and stats["mem_limit_bytes"] == 64 * MB
    assert stats["processes"] == 1
    termination = await asyncio.wait_for(c.destroy("p"), WAIT)
    assert termination is not None and termination.status == -9


# -- pid namespace -----------------------------------------------------------------


async def test_pid_namespace_makes_the_task_pid_one(
    make: Callable[..., MesosContainerizer], tmp_path: Path
) -> None:
    c = make("cgroups/mem,namespaces/pid", launcher="linux")
    out = tmp_path / "out"
    with open(out, "w") as f:
        await c.launch("ns", ["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"],
                       resources={"mem": 32}, stdout=f)
    termination = await asyncio.wait_for(c.wait("ns"), WAIT)
    assert termination is not None and termination.status == 0
    own_pid, visible = out.read_text().split()
    assert own_pid == "1"
    assert int(visible) <= 3  # sh, ls, grep: the host's processes are invisible


# -- recovery ----------------------------------------------------------------------

# A stand-in agent that launches two containers and dies without cleaning up.
_CRASHING_AGENT = """
import asyncio, os, subprocess, sys
from mesos.agent.containerizer import ContainerizerFlags, MesosContainerizer
async def main():
    c = MesosContainerizer.create(ContainerizerFlags(
        isolation="cgroups/cpu,cgroups/mem", cgroups_root=sys.argv[1]))
    pids = [await c.launch(n, ["sleep", "600"], resources={"cpus": 0.1, "mem": 32},
                           stdout=subprocess.DEVNULL)
            for n in ("keep", "orphan")]
    print(*pids, flush=True)
    os._exit(0)
asyncio.run(main())
"""


async def test_recover_reattaches_known_containers_and_destroys_orphans(
    make: Callable[..., MesosContainerizer], cgroups_root: str
) -> None:
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_AGENT, cgroups_root, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(agent.communicate(), WAIT)
    keep_pid, orphan_pid = map(int, stdout.split())
    c = make("cgroups/cpu,cgroups/mem")
    assert c.cgroups is not None
    assert c.cgroups.containers() == {"keep", "orphan"}

    orphans = await c.recover([ContainerState("keep", keep_pid, {"cpus": 0.1, "mem": 32})])
    assert orphans == {"orphan"}
    assert cgroup_dirs(c.cgroups, "orphan") == []
    assert not alive(orphan_pid)
    assert alive(keep_pid) and c.pids("keep") == {keep_pid}
    assert c.containers() == {"keep"}
    assert (await c.usage("keep"))["mem_limit_bytes"] == 32 * MB

    termination = await asyncio.wait_for(c.destroy("keep"), WAIT)
    assert termination is not None
    assert termination.status is None  # not our child: its exit status is not ours to see
    assert not alive(keep_pid)
    assert c.cgroups.containers() == set()


async def test_recovered_container_exiting_by_itself_is_noticed(
    make: Callable[..., MesosContainerizer],
) -> None:
    first = make("cgroups/mem")
    pid = await first.launch("k", ["sleep", "600"], resources={"mem": 32})
    second = make("cgroups/mem")  # a restarted agent, same root
    assert await second.recover([ContainerState("k", pid)]) == set()
    waiting = asyncio.ensure_future(second.wait("k"))
    os.kill(pid, 9)  # the task dies on its own while the new agent watches
    termination = await asyncio.wait_for(waiting, WAIT)
    assert termination is not None and termination.status is None
    assert termination.limitations == ()
    old = await asyncio.wait_for(first.wait("k"), WAIT)  # the old instance reaps its child
    assert old is not None and old.status == -9 and old.limitations == ()


# -- cgroups v2 --------------------------------------------------------------------


async def test_v2_hierarchy_join_and_kill(cgroups_root: str) -> None:
    """The v2 code path on the unified mount this host has (often with no controllers)."""
    layout = detect_layout()
    if layout.unified is None:
        pytest.skip("no cgroup2 hierarchy is mounted on this host; v2 path not exercised")
    v2 = CgroupsV2(layout.unified, cgroups_root)
    try:
        for controller in ("memory", "cpu", "pids"):
            if not v2.has(controller):
                with pytest.raises(CgroupsError, match=f"'{controller}' is not available"):
                    v2.create("x", controller)
        v2.create("v2c", None)
        info = LaunchInfo(join_cgroups=[v2.procs_file(None, "v2c")])
        process = await PosixLauncher().fork(
            "v2c", ["sh", "-c", "setsid sleep 600 & sleep 600"], dict(os.environ), None, info
        )
        await wait_until(lambda: len(v2.pids("v2c")) == 3, "three processes in the cgroup")
        members = v2.pids("v2c")
        assert process.pid in members
        await v2.destroy("v2c")
        assert await asyncio.wait_for(process.wait(), WAIT) == -9
        assert [p for p in members if alive(p)] == []
        assert v2.containers() == set()
    finally:
        await _scrub(v2)
    assert not (layout.unified / cgroups_root).exists()


async def test_recover_ignores_a_checkpointed_pid_that_left_the_cgroup(
    make: Callable[..., MesosContainerizer],
) -> None:
    """A stale pid (exited, maybe reused by a stranger) is neither adopted nor killed."""
    first = make("cgroups/mem,posix/cpu")
    real = await first.launch("s", ["sleep", "600"], resources={"mem": 32})
    own_cgroups = Path("/proc/self/cgroup").read_text()
    second = make("cgroups/mem,posix/cpu")
    stranger = os.getpid()  # stands in for whoever now has the checkpointed pid
    assert await second.recover([ContainerState("s", stranger, {"mem": 32})]) == set()
    assert second.pid("s") is None
    assert second.pids("s") == {real}
    assert Path("/proc/self/cgroup").read_text() == own_cgroups  # not moved in
    termination = await asyncio.wait_for(second.destroy("s"), WAIT)
    assert termination is not None and termination.status is None
    assert alive(stranger) and not alive(real)
    await asyncio.wait_for(first.wait("s"), WAIT)


async def test_posix_launcher_with_cgroup_isolators_still_kills_escapees(
    make: Callable[..., MesosContainerizer], tmp_path: Path
) -> None:
    """No freezer cgroup here: the escapee is found and killed through the memory cgroup."""
    c = make("cgroups/mem", launcher="posix")
    assert c.cgroups is not None
    script = "setsid sh -c 'sleep 600 & echo $! > escaped; exit 0' & sleep 600"
    await c.launch("px", ["sh", "-c", script], cwd=str(tmp_path), resources={"mem": 64})
    escaped_file = tmp_path / "escaped"
    await wait_until(lambda: escaped_file.exists() and escaped_file.read_text().strip(),
                     "the escapee to start")
    escaped = int(escaped_file.read_text())
    assert escaped not in c.pids("px")  # the posix launcher has lost it...
    termination = await asyncio.wait_for(c.destroy("px"), WAIT)
    assert termination is not None
    assert not alive(escaped)  # ...but its memory cgroup has not
    assert cgroup_dirs(c.cgroups, "px") == []
