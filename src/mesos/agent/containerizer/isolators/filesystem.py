"""The ``filesystem/posix`` isolator: the sandbox belongs to the task's user.

When the agent runs as root and a container names a user (the task's or the
framework's ``user``), Mesos hands the sandbox to that user and runs the command
as that user, so a task cannot touch what root owns or what other users' tasks
wrote. With ``--no-switch_user`` (or an agent that is not root) every task runs
as the agent's own user and the sandbox is left as it is.

The ownership change is recursive (the fetcher may have put files there already)
and runs in a thread; the switch itself is done by the launcher between fork and
exec (supplementary groups, then gid, then uid), after the child joined its cgroups.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat

from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    Isolator,
    LaunchInfo,
)
from mesos.agent.containerizer.launcher import LaunchError, credentials
from mesos.flags import Flag

__all__ = ["FLAGS", "FilesystemPosixIsolator", "chown_tree"]

log = logging.getLogger(__name__)

FLAGS = [
    Flag("switch_user", bool, True,
         "Run each task as its (or its framework's) user when the agent runs as root; "
         "otherwise tasks run as the agent's user."),
]


def chown_tree(path: str, uid: int, gid: int) -> None:
    """``chown -R`` that a process of the user, running meanwhile, cannot redirect.

    Parts of the sandbox may be the user's already (a task sandbox, a volume's
    parent directories), so any directory below ``path`` can be swapped for a link
    while this runs. Hence every directory is opened by descriptor without following
    links (:func:`os.fwalk`) and every entry is changed relative to its directory's
    descriptor without following a link in its last component (``fchownat`` with
    ``AT_SYMLINK_NOFOLLOW``): no path resolved here runs through anything the user
    can replace. A file with more than one hard link is left alone (it may be a link
    to a file outside the sandbox, where ``protected_hardlinks`` is off). Bottom-up,
    ``path`` itself last."""
    for _root, dirs, files, dir_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in files + dirs:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                    log.warning("not giving %s/%s to uid %d: it has %d hard links",
                                _root, name, uid, st.st_nlink)
                    continue
                os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed meanwhile (by the user's own processes)
    os.chown(path, uid, gid, follow_symlinks=False)


class FilesystemPosixIsolator(Isolator):
    """See the module docstring."""

    name = "filesystem/posix"

    def __init__(self, flags: ContainerizerFlags) -> None:
        self.flags = flags

    async def prepare(self, container_id: str, config: ContainerConfig) -> LaunchInfo | None:
        if config.user is None or not self.flags.switch_user:
            return None
        if os.geteuid() != 0:
            log.info("container %s: not switching to user %r, the agent is not root",
                     container_id, config.user)
            return None
        creds = credentials(config.user)  # LaunchError when the user does not exist
        if config.sandbox is not None:
            try:
                await asyncio.to_thread(chown_tree, config.sandbox, creds.uid, creds.gid)
            except OSError as e:
                raise LaunchError(
                    f"cannot give sandbox {config.sandbox} to user {config.user!r}: {e}"
                ) from e
        return LaunchInfo(user=config.user)
