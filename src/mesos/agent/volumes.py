"""Persistent volumes and checkpointed resources on the agent.

The master owns the decisions (RESERVE, CREATE, DESTROY ... by frameworks or
operators); the agent is told the result as its full set of *checkpointed
resources* (dynamic reservations and persistent volumes, Mesos'
``CheckpointResourcesMessage``). This module does what the agent must do with it:

* remember it across restarts (``<work_dir>/meta/resources/resources.info``) and lay
  it over the flag resources to get the total the agent reports on (re-)registration;
* keep one directory per volume, ``<work_dir>/volumes/roles/<role>/<persistence_id>``:
  created when the volume appears, deleted with its data when the volume is
  destroyed, and left alone by task and sandbox garbage collection, which is what
  makes it outlive its tasks;
* make a volume visible to a task at ``<sandbox>/<container_path>``. A read-write
  volume is, as Mesos' ``filesystem/posix`` isolator does it, a symlink to the volume
  directory (no mount namespace is needed, and several tasks can link one shared
  volume). A symlink cannot be made read-only, so a read-only volume (``mode: RO``)
  gets a mount point there instead, and the launcher bind-mounts the volume on it
  and remounts it read-only inside the container's own mount namespace (Mesos'
  ``filesystem/linux`` way); a launcher that gives the container no mount namespace
  refuses the launch rather than hand out write access;
* a task of a task group (default executor) runs in its own sandbox,
  ``<executor sandbox>/tasks/<task id>`` (its MESOS_SANDBOX), as each task is a
  nested container in Mesos: the volumes of that task's resources appear there, at
  ``$MESOS_SANDBOX/<container_path>`` (:func:`link_task_volumes`,
  :func:`task_mount_points`), made by descriptor without following any link the
  task's user may have planted; the executor's own volumes (ExecutorInfo resources)
  stay at ``<executor sandbox>/<container_path>``, linked by descriptor too (the
  executor's sandbox is its user's while it runs);
* give a new read-write volume to the task's user: on its first use (the directory
  is still empty) by a task running as another user than the agent's, the volume
  directory is chowned (not recursively) to that user, so the task can write to it.
  A volume that already holds data keeps its owner, and a read-only volume is never
  given away (its owner could write to it through its host path). This differs from
  Mesos, whose isolator chowns the volume to each new container's user whenever no
  other running container uses it, data or not: here whose data it is is settled by
  its first user, so a later task of another user cannot take a volume over (it
  gets the permissions the data's owner set). The same goes for a volume added to
  a running container.

Everything here is synchronous file-system work, small and bounded; the agent runs
it off its event loop if it wants to.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import re
import shutil
from dataclasses import dataclass

from mesos.agent import checkpoint
from mesos.agent.containerizer.isolator import BindMount
from mesos.agent.group_fetch import UnsafePathError, open_subdir
from mesos.resources import Resources, ResourcesError, Volume, apply_checkpointed

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointedResources",
    "VolumeError",
    "apply",
    "link_task_volumes",
    "link_volumes",
    "mount_points",
    "mounted_read_only",
    "recover",
    "task_mount_points",
    "volume_path",
]


class VolumeError(Exception):
    """A volume could not be prepared, or the checkpoint does not fit the agent."""


def volume_path(work_dir: str, role: str, persistence_id: str) -> str:
    """Where the volume's data lives (Mesos' ``paths::getPersistentVolumePath``)."""
    if not persistence_id or "/" in persistence_id or persistence_id in (".", ".."):
        raise VolumeError(f"Invalid persistence id '{persistence_id}'")
    return os.path.join(work_dir, "volumes", "roles", role, persistence_id)


@dataclass(frozen=True)
class CheckpointedResources:
    """The agent's resources: from its flags, checkpointed, and the two together."""

    static: Resources
    checkpointed: Resources
    total: Resources


def recover(work_dir: str, static: Resources) -> CheckpointedResources:
    """Read the checkpoint and lay it over the flag resources; make sure every
    volume still has its directory. Raises VolumeError if the checkpoint is corrupt or
    the flags no longer hold what was reserved (the agent must not start then, as in
    Mesos, rather than silently drop volumes)."""
    try:
        checkpointed = Resources.from_json(checkpoint.read_resources(work_dir))
    except (checkpoint.CheckpointError, ResourcesError) as exc:
        raise VolumeError(f"Cannot recover checkpointed resources: {exc}") from None
    try:
        total = apply_checkpointed(static, checkpointed)
    except ResourcesError as exc:
        raise VolumeError(str(exc)) from None
    for volume in checkpointed.volumes():
        _make_volume_dir(work_dir, volume)
    return CheckpointedResources(static, checkpointed, total)


def apply(work_dir: str, current: CheckpointedResources,
          resources: Resources) -> CheckpointedResources:
    """The master sent the new checkpointed resources: write them, create the
    directories of new volumes and delete those of destroyed ones.

    The new total is checked against the flags first, so a message that does not fit
    changes nothing (VolumeError). The checkpoint is written before any directory is
    deleted: a crash in between leaves an orphan directory, never a volume without
    its data.
    """
    checkpointed = resources.unallocated().checkpointed()
    try:
        total = apply_checkpointed(current.static, checkpointed)
    except ResourcesError as exc:
        raise VolumeError(str(exc)) from None
    for volume in checkpointed.volumes():
        volume_path(work_dir, volume.role, volume.persistence_id)  # refuse bad ids first
    checkpoint.write_resources(work_dir, checkpointed.to_json())
    new_ids = {(v.role, v.persistence_id) for v in checkpointed.volumes()}
    for volume in checkpointed.volumes():
        _make_volume_dir(work_dir, volume)
    for volume in current.checkpointed.volumes():
        if (volume.role, volume.persistence_id) not in new_ids:
            path = volume_path(work_dir, volume.role, volume.persistence_id)
            log.info("Deleting destroyed persistent volume '%s' of role '%s' at %s",
                     volume.persistence_id, volume.role, path)
            shutil.rmtree(path, ignore_errors=True)
    return CheckpointedResources(current.static, checkpointed, total)


def _make_volume_dir(work_dir: str, volume: Volume) -> str:
    path = volume_path(work_dir, volume.role, volume.persistence_id)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise VolumeError(f"Cannot create persistent volume directory {path}: {exc}") from None
    return path


def _give_to_user(path: str, user: str | None) -> None:
    """Chown a still empty volume directory to ``user`` (its first use by a task of
    that user), when the agent is root and ``user`` is another user. Never recursive,
    and never for a volume holding data: whose data it is was settled by its first
    user."""
    if not user or os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise VolumeError(f"user '{user}' does not exist on this agent") from None
    info = os.stat(path)
    if (info.st_uid, info.st_gid) == (entry.pw_uid, entry.pw_gid) or os.listdir(path):
        return
    os.chown(path, entry.pw_uid, entry.pw_gid)
    log.info("Gave new persistent volume %s to user '%s'", path, user)


def mount_points(work_dir: str, sandbox: str, resources: Resources) -> list[BindMount]:
    """For a container about to start: a mount point at ``<sandbox>/<container_path>``
    for each read-only volume in ``resources``, and the mounts the launcher must make
    in the container's mount namespace. Call before :func:`link_volumes`. Made by
    descriptor, as :func:`task_mount_points` (an executor with the same id may have
    run in this sandbox before, as its user)."""
    real_sandbox = os.path.realpath(sandbox)
    fd = _open_sandbox(real_sandbox)
    try:
        return task_mount_points(work_dir, fd, real_sandbox, resources)
    finally:
        os.close(fd)


def link_volumes(work_dir: str, sandbox: str, resources: Resources, *,
                 user: str | None = None) -> list[str]:
    """Make each read-write persistent volume in ``resources`` (a container's
    resources) visible at ``<sandbox>/<container_path>`` as a symlink to its
    directory; returns the links made. A link already there and pointing at the
    volume is kept, so this can run again whenever the container's tasks change.
    Anything else in the way is a VolumeError: a task's files are never replaced by a
    volume. ``user`` (the container's user) is given new, empty volumes and the
    directories made on the way.

    This runs for running containers too (a volume of a new task, the executor's own
    on every resize), whose sandbox belongs to their user, who may have planted links
    there: everything is done through a descriptor of the sandbox, one component at a
    time with O_NOFOLLOW, the link made with ``symlinkat`` (:func:`link_task_volumes`).

    A read-only volume must already have the mount point :func:`mount_points` made
    when its container started; one added to a running container is a VolumeError and
    gets no directory, so its tasks find nothing rather than a writable stand-in.
    """
    real_sandbox = os.path.realpath(sandbox)
    fd = _open_sandbox(real_sandbox)
    try:
        owner = _owner(user)
        made = link_task_volumes(work_dir, fd, real_sandbox, resources, owner=owner,
                                 user=user)
        unmounted = [v.persistence_id for v in resources.volumes()
                     if v.mode == "RO" and not _has_dir(fd, _relative_parts(v))]
    finally:
        os.close(fd)
    if unmounted:  # after the others are linked: one bad volume does not hold them up
        raise VolumeError(f"Read-only persistent volume(s) {', '.join(unmounted)} can only "
                          "be mounted when their container starts, not added to a running "
                          "one")
    return made


def _open_sandbox(real_sandbox: str) -> int:
    """The sandbox (its real path: its parents are the agent's) as a directory fd."""
    try:
        return os.open(real_sandbox, _DIR_FLAGS)
    except OSError as exc:
        raise VolumeError(f"Cannot open the sandbox {real_sandbox}: {exc}") from None


def _owner(user: str | None) -> tuple[int, int] | None:
    """(uid, gid) to give what is made in a sandbox, when the agent is root."""
    if not user or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise VolumeError(f"user '{user}' does not exist on this agent") from None
    return entry.pw_uid, entry.pw_gid


def _has_dir(sandbox_fd: int, parts: list[str]) -> bool:
    """Whether ``parts`` under the sandbox are directories, none of them a link."""
    fd = os.dup(sandbox_fd)
    try:
        for name in parts:
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return False
            os.close(fd)
            fd = child
        return True
    finally:
        os.close(fd)


def mounted_read_only(pid: int, path: str) -> bool:
    """Whether ``path`` (a real path) is a read-only mount point in the mount
    namespace of process ``pid`` (a running container's): how an agent that did not
    start the container, one recovered after a restart, learns which read-only
    volumes it got. Read from the kernel (``/proc/<pid>/mountinfo``), never from the
    sandbox, whose user could make any directory look like a mount point. The last
    mount at ``path`` is the one seen there."""
    try:
        with open(f"/proc/{pid}/mountinfo", encoding="utf-8",
                  errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    found: bool | None = None
    for line in lines:
        fields = line.split(" ")
        if len(fields) < 6:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == path:
            found = "ro" in fields[5].split(",")
    return bool(found)


# --------------------------------------------------------------- a task group's tasks
#
# Each task of a task group runs in its own sandbox, <executor sandbox>/tasks/<id>
# (its MESOS_SANDBOX), and sees the volumes of its own resources there, as a nested
# container does in Mesos. That directory belongs to the task's user, whose processes
# may already run in the container (an earlier group): anything in it may be a
# symlink planted to make the agent, running as root, write elsewhere. So the agent
# works there only through a descriptor of the task sandbox (opened without following
# links, see ``group_fetch.open_task_sandbox``), one path component at a time with
# O_NOFOLLOW, and makes each link with ``symlinkat``, which never follows the name it
# creates.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _relative_parts(volume: Volume) -> list[str]:
    """The volume's container path as components under the sandbox; VolumeError if
    it names the sandbox itself or anything outside it."""
    path = os.path.normpath(volume.container_path)
    parts = path.split("/")
    if os.path.isabs(path) or path == "." or ".." in parts or "\0" in path:
        raise VolumeError(
            f"Volume '{volume.persistence_id}': container path '{volume.container_path}' "
            "is not inside the sandbox"
        )
    return parts


def _open_parent(task_fd: int, parts: list[str], owner: tuple[int, int] | None,
                 volume: Volume) -> int:
    """An open descriptor of the directory that will hold the last of ``parts``,
    creating the ones before it (given to ``owner``) and refusing to go through a
    symlink or a non-directory (``group_fetch.open_subdir``, one component at a
    time)."""
    fd = os.dup(task_fd)
    try:
        for i, name in enumerate(parts[:-1]):
            child = open_subdir(fd, name, "/".join(parts[:i + 1]), owner)
            os.close(fd)
            fd = child
    except UnsafePathError as exc:
        os.close(fd)
        raise VolumeError(f"Volume '{volume.persistence_id}': {exc}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def task_mount_points(work_dir: str, task_fd: int, task_dir: str, resources: Resources,
                      owner: tuple[int, int] | None = None) -> list[BindMount]:
    """:func:`mount_points` for a task group's task about to start with its container:
    a mount point at ``<task_dir>/<container_path>`` for each read-only volume in the
    task's ``resources``, made through ``task_fd`` (the open ``task_dir``, named by its
    real path); directories on the way are given to ``owner`` (the task's user). The
    user may swap a directory on the way for a link after this: the launcher's mount
    helper (``containerizer.bind_mount``) walks to each mount point by descriptor
    without following links, and fails the launch on one."""
    mounts: list[BindMount] = []
    for volume in resources.volumes():
        if volume.mode != "RO":
            continue
        source = _make_volume_dir(work_dir, volume)
        parts = _relative_parts(volume)
        what = f"persistent volume '{volume.persistence_id}'"
        shown = os.path.join(task_dir, *parts)
        try:
            parent = _open_parent(task_fd, parts, owner, volume)
            try:
                try:
                    os.mkdir(parts[-1], 0o755, dir_fd=parent)
                except FileExistsError:
                    point = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
                    try:
                        empty = not os.listdir(point)
                    finally:
                        os.close(point)
                    if not empty:
                        raise VolumeError(f"Volume '{volume.persistence_id}': {shown} "
                                          "already exists in the sandbox") from None
            finally:
                os.close(parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise VolumeError(f"Volume '{volume.persistence_id}': {shown} already "
                                  "exists in the sandbox") from None
            raise VolumeError(f"Cannot make a mount point for {what} in the task "
                              f"sandbox: {exc}") from None
        mounts.append(BindMount(source, shown, read_only=True, what=what))
    return mounts


def link_task_volumes(work_dir: str, task_fd: int, task_dir: str, resources: Resources, *,
                      owner: tuple[int, int] | None = None,
                      user: str | None = None) -> list[str]:
    """:func:`link_volumes` for a task group's task: each read-write volume in the
    task's ``resources`` linked at ``<task_dir>/<container_path>``, made through
    ``task_fd`` (the open ``task_dir``) without following any link; directories on
    the way are given to ``owner``, new empty volumes to ``user`` (both the task's
    user). Returns the links made; one already pointing at the volume is kept.

    A read-only volume must have the mount point :func:`task_mount_points` made when
    the container started (checked by the caller, which knows what was mounted)."""
    made: list[str] = []
    for volume in resources.volumes():
        if volume.mode == "RO":
            continue
        target = _make_volume_dir(work_dir, volume)
        parts = _relative_parts(volume)
        shown = os.path.join(task_dir, *parts)
        try:
            _give_to_user(target, user)
        except OSError as exc:
            raise VolumeError(f"Cannot give volume '{volume.persistence_id}' to user "
                              f"'{user}': {exc}") from None
        try:
            parent = _open_parent(task_fd, parts, owner, volume)
            try:
                if _symlink_at(parent, parts[-1], target, shown, volume):
                    made.append(shown)
            finally:
                os.close(parent)
        except OSError as exc:
            raise VolumeError(f"Cannot link volume '{volume.persistence_id}' into the "
                              f"task sandbox: {exc}") from None
    return made


def _symlink_at(parent: int, name: str, target: str, shown: str, volume: Volume) -> bool:
    """Link ``name`` in the directory ``parent`` to ``target``; False when that link
    is already there. Nothing at ``name`` is ever followed or replaced."""
    try:
        current = os.readlink(name, dir_fd=parent)
    except FileNotFoundError:
        current = None
    except OSError as exc:
        if exc.errno == errno.EINVAL:  # there, and not a link
            raise VolumeError(f"Volume '{volume.persistence_id}': {shown} already exists "
                              "in the sandbox") from None
        raise
    if current is not None:
        if os.path.normpath(current) == os.path.normpath(target):
            return False
        raise VolumeError(f"Volume '{volume.persistence_id}': {shown} already links "
                          "somewhere else")
    try:
        os.symlink(target, name, dir_fd=parent)
    except FileExistsError:
        raise VolumeError(f"Volume '{volume.persistence_id}': {shown} already exists in "
                          "the sandbox") from None
    log.info("Linked persistent volume '%s' at %s", volume.persistence_id, shown)
    return True
