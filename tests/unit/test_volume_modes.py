"""How the agent lays volumes into a sandbox: RW as symlinks, RO as mount points for
the launcher (never as a writable stand-in), and new volumes given to the task's user.
Real directories; the chown cases need root (CI runs as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from mesos.agent import volumes
from mesos.agent.containerizer.isolator import BindMount
from mesos.agent.containerizer.isolators.filesystem import chown_tree
from mesos.agent.containerizer.launcher import _mount_prefix
from mesos.agent.group_fetch import open_task_sandbox
from tests.unit.test_resources_volumes import DYN, disk, res


def test_read_only_volume_gets_a_mount_point_not_a_link(tmp_path: Path) -> None:
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    both = res(disk(10, reservations=DYN, vid="ro", path="in/ro", mode="RO"),
               disk(10, reservations=DYN, vid="rw", path="rw"))
    mounts = volumes.mount_points(work, str(sandbox), both)
    source = volumes.volume_path(work, "db", "ro")
    target = str(sandbox.resolve() / "in" / "ro")
    assert mounts == [BindMount(source, target, read_only=True,
                                what="persistent volume 'ro'")]
    assert volumes.link_volumes(work, str(sandbox), both) == [str(sandbox.resolve() / "rw")]
    assert (sandbox / "rw").is_symlink()
    ro = sandbox / "in" / "ro"
    assert ro.is_dir() and not ro.is_symlink() and list(ro.iterdir()) == []
    # Again later (a running container's tasks changed): nothing new to do.
    assert volumes.link_volumes(work, str(sandbox), both) == []


def test_read_only_volume_added_to_a_running_container_is_refused(tmp_path: Path) -> None:
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    late = res(disk(10, reservations=DYN, vid="late", path="late", mode="RO"),
               disk(10, reservations=DYN, vid="rw", path="rw"))
    with pytest.raises(volumes.VolumeError, match="late can only be mounted when"):
        volumes.link_volumes(work, str(sandbox), late)
    assert not os.path.lexists(sandbox / "late")  # no writable stand-in
    assert (sandbox / "rw").is_symlink()  # the others are linked all the same


def test_mount_point_never_replaces_sandbox_files(tmp_path: Path) -> None:
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    (sandbox / "taken").mkdir(parents=True)
    (sandbox / "taken" / "file").write_text("mine")
    with pytest.raises(volumes.VolumeError, match="already exists"):
        volumes.mount_points(work, str(sandbox),
                             res(disk(10, reservations=DYN, vid="v", path="taken", mode="RO")))
    with pytest.raises(volumes.VolumeError, match="not inside the sandbox"):
        volumes.mount_points(work, str(sandbox),
                             res(disk(10, reservations=DYN, vid="v", path="../out", mode="RO")))


def test_new_volume_goes_to_the_user_and_one_with_data_keeps_its_owner(
        tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: chowning a volume to another user needs root "
                    "(CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    fresh = res(disk(10, reservations=DYN, vid="fresh"))
    volumes.link_volumes(work, str(sandbox), fresh, user="nobody")
    st = os.stat(volumes.volume_path(work, "db", "fresh"))
    assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)

    used = res(disk(10, reservations=DYN, vid="used", path="used"))
    volumes.link_volumes(work, str(sandbox), used)  # first used by root
    Path(volumes.volume_path(work, "db", "used"), "data").write_text("root's")
    volumes.link_volumes(work, str(sandbox), used, user="nobody")
    assert os.stat(volumes.volume_path(work, "db", "used")).st_uid == 0

    # A read-only volume is never given away: its owner could write to it through
    # its host path.
    ro = res(disk(10, reservations=DYN, vid="ro", path="ro", mode="RO"))
    volumes.mount_points(work, str(sandbox), ro)
    volumes.link_volumes(work, str(sandbox), ro, user="nobody")
    assert os.stat(volumes.volume_path(work, "db", "ro")).st_uid == 0

    with pytest.raises(volumes.VolumeError, match="does not exist"):
        volumes.link_volumes(work, str(sandbox),
                             res(disk(10, reservations=DYN, vid="x", path="x")),
                             user="no-such-user-here")


# ------------------------------------------------------------ a task group's task


def _task_fd(executor_sandbox: Path, task_id: str,
             owners: tuple[tuple[int, int] | None, tuple[int, int] | None] = (None, None),
             ) -> int:
    return open_task_sandbox(str(executor_sandbox), task_id, owners)


def test_task_volumes_appear_in_the_task_sandbox(tmp_path: Path) -> None:
    """A task group's task gets its RW volume linked, and its RO volume a mount point,
    at ``<executor sandbox>/tasks/<id>/<container_path>``; nothing in the executor's."""
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    both = res(disk(10, reservations=DYN, vid="ro", path="in/ro", mode="RO"),
               disk(10, reservations=DYN, vid="rw", path="deep/rw"))
    task_dir = sandbox / "tasks" / "t1"
    fd = _task_fd(sandbox, "t1")
    try:
        mounts = volumes.task_mount_points(work, fd, str(task_dir), both)
        assert mounts == [BindMount(volumes.volume_path(work, "db", "ro"),
                                    str(task_dir / "in" / "ro"), read_only=True,
                                    what="persistent volume 'ro'")]
        made = volumes.link_task_volumes(work, fd, str(task_dir), both)
        assert made == [str(task_dir / "deep" / "rw")]
        assert os.readlink(task_dir / "deep" / "rw") == volumes.volume_path(work, "db", "rw")
        ro = task_dir / "in" / "ro"
        assert ro.is_dir() and not ro.is_symlink() and list(ro.iterdir()) == []
        # Again (the container's tasks changed): the link is kept, nothing new made.
        assert volumes.link_task_volumes(work, fd, str(task_dir), both) == []
    finally:
        os.close(fd)
    assert sorted(p.name for p in sandbox.iterdir()) == ["tasks"]


def test_task_volumes_never_follow_a_planted_link(tmp_path: Path) -> None:
    """The task's user may have put links in its sandbox (or at ``tasks``): the agent
    refuses to go through them, and never writes where they point."""
    work, sandbox, elsewhere = str(tmp_path / "work"), tmp_path / "sandbox", tmp_path / "x"
    (sandbox / "tasks" / "t1").mkdir(parents=True)
    elsewhere.mkdir()
    task_dir = sandbox / "tasks" / "t1"
    (task_dir / "deep").symlink_to(elsewhere)
    (task_dir / "ro").symlink_to(elsewhere)
    (task_dir / "rw").symlink_to(elsewhere / "rw")  # dangling: a link, never replaced
    (task_dir / "file").write_text("mine")
    fd = _task_fd(sandbox, "t1")
    try:
        for path, match in (("deep/v", "symbolic link or not a directory"),
                            ("rw", "already links somewhere else"),
                            ("file", "already exists")):
            vol = res(disk(10, reservations=DYN, vid="v", path=path))
            with pytest.raises(volumes.VolumeError, match=match):
                volumes.link_task_volumes(work, fd, str(task_dir), vol)
        for path in ("ro", "deep/ro", "file"):
            vol = res(disk(10, reservations=DYN, vid="r", path=path, mode="RO"))
            with pytest.raises(volumes.VolumeError):
                volumes.task_mount_points(work, fd, str(task_dir), vol)
        with pytest.raises(volumes.VolumeError, match="not inside the sandbox"):
            volumes.link_task_volumes(work, fd, str(task_dir),
                                      res(disk(10, reservations=DYN, vid="v", path="../o")))
    finally:
        os.close(fd)
    assert list(elsewhere.iterdir()) == []
    assert (task_dir / "file").read_text() == "mine"

    # A link at ``tasks`` or at the task's sandbox is refused before anything is made.
    other = tmp_path / "other"
    other.mkdir()
    (other / "tasks").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        _task_fd(other, "t1")
    (sandbox / "tasks" / "t2").symlink_to(elsewhere)
    with pytest.raises(OSError, match="symbolic link"):
        _task_fd(sandbox, "t2")
    assert list(elsewhere.iterdir()) == []


def test_task_volume_and_sandbox_go_to_the_task_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("SKIPPED LOUDLY: chowning a volume to another user needs root "
                    "(CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    owner = (nobody.pw_uid, nobody.pw_gid)
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    fd = _task_fd(sandbox, "t1", (None, owner))
    try:
        task_dir = sandbox / "tasks" / "t1"
        volumes.link_task_volumes(work, fd, str(task_dir),
                                  res(disk(10, reservations=DYN, vid="v", path="a/v")),
                                  owner=owner, user="nobody")
    finally:
        os.close(fd)
    for path in (task_dir, task_dir / "a", Path(volumes.volume_path(work, "db", "v"))):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == owner, path
    assert (sandbox / "tasks").stat().st_uid == 0


def test_running_container_volume_never_follows_a_planted_parent_link(
        tmp_path: Path) -> None:
    """A running container's sandbox is its user's: a link planted on a volume's
    container path (an executor's own volume, linked again on every resize, or a custom
    executor's task volume) is refused, and nothing is made where it points."""
    work, sandbox, victim = str(tmp_path / "work"), tmp_path / "sandbox", tmp_path / "root"
    sandbox.mkdir()
    victim.mkdir(mode=0o700)
    (sandbox / "a").symlink_to(victim)
    (sandbox / "l").symlink_to(victim)
    for path in ("a/new", "a/b/new"):
        vol = res(disk(10, reservations=DYN, vid="v", path=path))
        with pytest.raises(volumes.VolumeError, match="symbolic link or not a directory"):
            volumes.link_volumes(work, str(sandbox), vol)
    ro = res(disk(10, reservations=DYN, vid="r", path="l/ro", mode="RO"))
    with pytest.raises(volumes.VolumeError, match="only be mounted when"):
        volumes.link_volumes(work, str(sandbox), ro)  # the link is not its mount point
    with pytest.raises(volumes.VolumeError):
        volumes.mount_points(work, str(sandbox), ro)
    assert list(victim.iterdir()) == []
    # Directories made on the way belong to the container's user, not root.
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        volumes.link_volumes(work, str(sandbox),
                             res(disk(10, reservations=DYN, vid="w", path="d/e/w")),
                             user="nobody")
        for path in (sandbox / "d", sandbox / "d" / "e"):
            assert path.stat().st_uid == nobody.pw_uid, path
        assert (sandbox / "d" / "e" / "w").is_symlink()


def test_recovered_read_only_mounts_are_read_from_the_kernel(tmp_path: Path) -> None:
    """After a restart the agent learns a container's read-only volumes from that
    container's mount table, not from the sandbox: a plain directory there (which the
    sandbox's user can make) is not a read-only mount."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("SKIPPED LOUDLY: mount namespaces need root and util-linux unshare "
                    "(CI runs as root)")
    source, sandbox = tmp_path / "vol", (tmp_path / "sand box").resolve()
    for d in (source, sandbox / "ro", sandbox / "fake"):
        d.mkdir(parents=True)
    target = str(sandbox / "ro")
    argv = [unshare, "--mount", "--propagation", "private", "--",
            *_mount_prefix([BindMount(str(source), target, read_only=True)]),
            "sleep", "120"]
    proc = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 60
        while not volumes.mounted_read_only(proc.pid, target):
            assert proc.poll() is None, "the container ended before its mount was made"
            assert time.monotonic() < deadline, "the read-only mount never showed"
            time.sleep(0.05)
        assert not volumes.mounted_read_only(proc.pid, str(sandbox / "fake"))
        assert not volumes.mounted_read_only(os.getpid(), target)  # not the agent's
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert not volumes.mounted_read_only(proc.pid, target)  # gone with its process


def test_sandbox_is_given_away_without_following_a_swapped_in_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``filesystem/posix`` chowns a sandbox parts of which may be its user's
    already: a process of that user swaps a directory for a link to a root-owned
    one while the tree is being given away. Nothing outside the sandbox may change
    owner (a path-based walk did: it chowned the link's target)."""
    if os.geteuid() != 0:
        pytest.fail("this test gives files to another uid and needs root")
    nobody = 65534
    sandbox, victim, moved = tmp_path / "sandbox", tmp_path / "victim", tmp_path / "moved"
    (sandbox / "a" / "b").mkdir(parents=True)
    (sandbox / "a" / "b" / "f").write_text("x")
    (sandbox / "link").symlink_to("/etc")
    (victim / "b").mkdir(parents=True)
    (victim / "b" / "f").write_text("root's")
    swapped: list[bool] = []

    def swap_once() -> None:
        if not swapped:  # what the user's process does, once the walk is under way
            swapped.append(True)
            os.rename(sandbox / "a", moved)
            os.symlink(victim, sandbox / "a")

    real_chown, real_lchown = os.chown, os.lchown

    def chown(*args: Any, **kwargs: Any) -> None:
        swap_once()
        real_chown(*args, **kwargs)

    def lchown(*args: Any, **kwargs: Any) -> None:
        swap_once()
        real_lchown(*args, **kwargs)

    monkeypatch.setattr(os, "chown", chown)
    monkeypatch.setattr(os, "lchown", lchown)
    chown_tree(str(sandbox), nobody, nobody)
    monkeypatch.undo()
    assert swapped
    for path in (victim, victim / "b", victim / "b" / "f", Path("/etc")):
        assert path.stat().st_uid == 0, f"{path} was given away through the link"
    # What was in the sandbox is the user's, wherever the user moved it.
    assert (moved / "b" / "f").stat().st_uid == nobody
    assert sandbox.stat().st_uid == nobody
    assert os.lstat(sandbox / "link").st_uid == nobody  # the link itself, not /etc


def test_a_hard_linked_file_is_not_given_away(tmp_path: Path) -> None:
    """A file with several hard links may be one to a file outside the sandbox."""
    if os.geteuid() != 0:
        pytest.fail("this test gives files to another uid and needs root")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    outside = tmp_path / "outside"
    outside.write_text("root's")
    os.link(outside, sandbox / "hard")
    (sandbox / "own").write_text("x")
    chown_tree(str(sandbox), 65534, 65534)
    assert outside.stat().st_uid == 0
    assert (sandbox / "own").stat().st_uid == 65534


def test_mount_helper_hands_the_command_exactly_its_environment() -> None:
    """Python sets LC_CTYPE=C.UTF-8 in its own environment when started in the C
    locale (PEP 538); the helper must not pass that on to the task's command."""
    helper = _mount_prefix([])[:-1]  # the helper's argv, without mounts or "--"
    env_cmd = shutil.which("env")
    assert env_cmd is not None, "coreutils 'env' is missing"
    out = subprocess.run([*helper, "--", env_cmd], env={"FOO": "1"}, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.splitlines() == ["FOO=1"], out.stdout
