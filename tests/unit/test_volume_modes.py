"""How the agent lays volumes into a sandbox: RW as symlinks, RO as mount points for
the launcher (never as a writable stand-in), and new volumes given to the task's user.
Real directories; the chown cases need root (CI runs as root)."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from mesos.agent import volumes
from mesos.agent.containerizer.isolator import BindMount
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
