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

import logging
import os
import pwd
import shutil
from dataclasses import dataclass

from mesos.agent import checkpoint
from mesos.agent.containerizer.isolator import BindMount
from mesos.resources import Resources, ResourcesError, Volume, apply_checkpointed

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointedResources",
    "VolumeError",
    "apply",
    "link_volumes",
    "mount_points",
    "recover",
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


def _sandbox_path(real_sandbox: str, volume: Volume) -> str:
    path = os.path.normpath(os.path.join(real_sandbox, volume.container_path))
    if os.path.commonpath([path, real_sandbox]) != real_sandbox or path == real_sandbox:
        raise VolumeError(
            f"Volume '{volume.persistence_id}': container path '{volume.container_path}' "
            "is not inside the sandbox"
        )
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
    in the container's mount namespace. Call before :func:`link_volumes`."""
    mounts: list[BindMount] = []
    real_sandbox = os.path.realpath(sandbox)
    for volume in resources.volumes():
        if volume.mode != "RO":
            continue
        source = _make_volume_dir(work_dir, volume)
        path = _sandbox_path(real_sandbox, volume)
        what = f"persistent volume '{volume.persistence_id}'"
        if os.path.lexists(path) and (os.path.islink(path) or not os.path.isdir(path)
                                      or os.listdir(path)):
            raise VolumeError(f"Volume '{volume.persistence_id}': {path} already exists in "
                              "the sandbox")
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise VolumeError(f"Cannot make a mount point for {what} in the sandbox: "
                              f"{exc}") from None
        mounts.append(BindMount(source, path, read_only=True, what=what))
    return mounts


def link_volumes(work_dir: str, sandbox: str, resources: Resources, *,
                 user: str | None = None) -> list[str]:
    """Make each read-write persistent volume in ``resources`` (a container's
    resources) visible at ``<sandbox>/<container_path>`` as a symlink to its
    directory; returns the links made. A link already there and pointing at the
    volume is kept, so this can run again whenever the container's tasks change.
    Anything else in the way is a VolumeError: a task's files are never replaced by a
    volume. ``user`` (the container's user) is given new, empty volumes.

    A read-only volume must already have the mount point :func:`mount_points` made
    when its container started; one added to a running container is a VolumeError and
    gets no directory, so its tasks find nothing rather than a writable stand-in.
    """
    made: list[str] = []
    unmounted: list[str] = []
    real_sandbox = os.path.realpath(sandbox)
    for volume in resources.volumes():
        target = _make_volume_dir(work_dir, volume)
        path = _sandbox_path(real_sandbox, volume)
        if volume.mode != "RO":  # a read-only one is not the task's to write, nor own
            try:
                _give_to_user(target, user)
            except OSError as exc:
                raise VolumeError(f"Cannot give volume '{volume.persistence_id}' to user "
                                  f"'{user}': {exc}") from None
        if volume.mode != "RO":
            if _symlink(target, path, volume):
                made.append(path)
        elif not (os.path.isdir(path) and not os.path.islink(path)):
            unmounted.append(volume.persistence_id)
    if unmounted:  # after the others are linked: one bad volume does not hold them up
        raise VolumeError(f"Read-only persistent volume(s) {', '.join(unmounted)} can only "
                          "be mounted when their container starts, not added to a running "
                          "one")
    return made


def _symlink(target: str, link: str, volume: Volume) -> bool:
    """Link ``link`` to the volume; False when that link is already there."""
    if os.path.islink(link):
        if os.path.realpath(link) == os.path.realpath(target):
            return False
        raise VolumeError(f"Volume '{volume.persistence_id}': {link} already links "
                          "somewhere else")
    if os.path.lexists(link):
        raise VolumeError(f"Volume '{volume.persistence_id}': {link} already exists in "
                          "the sandbox")
    try:
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
    except OSError as exc:
        raise VolumeError(f"Cannot link volume '{volume.persistence_id}' into the "
                          f"sandbox: {exc}") from None
    log.info("Linked persistent volume '%s' at %s", volume.persistence_id, link)
    return True
