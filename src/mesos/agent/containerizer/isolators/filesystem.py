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
    """``chown -R`` without following symlinks (a link's target is not ours to give).

    Bottom-up, ``path`` itself last: each path handed to ``lchown`` then runs only
    through directories that are still root's, so a process of the user (another
    container's, running meanwhile) cannot swap one of them for a link and have a
    later ``lchown`` land outside the sandbox, as it could once the top was its."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files + dirs:
            os.lchown(os.path.join(root, name), uid, gid)
    os.lchown(path, uid, gid)


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
