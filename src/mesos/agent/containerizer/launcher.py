"""Launchers: how a container's first process is started, tracked and killed.

``linux`` tracks a container by a cgroup (the v1 freezer, or the v2 unified
directory): the child writes its own pid into every ``cgroup.procs`` it was
given between fork and exec, so by the time the command runs it and all it will
ever fork are inside. Killing is the freezer kill of ``Cgroups.kill``, which
no ``setsid`` or double fork escapes. A container asking for the ``pid``
namespace is started through util-linux ``unshare --pid --fork --mount-proc``,
so it sees itself as pid 1 with its own /proc.

``posix`` is Mesos' posix launcher: a new session per container, killed with
``killpg`` plus a sweep of the session; a process that calls ``setsid`` escapes.

Either launcher runs the command as another user when ``LaunchInfo.user`` says so
(filesystem/posix asks for it when the agent is root): the child drops to that
user's uid, gid and supplementary groups right after joining its cgroups; inside
a pid namespace ``unshare`` needs root, so util-linux ``setpriv`` drops them there.

``LaunchInfo.mounts`` (read-only persistent volumes) need a mount namespace of the
container's own, so that what is mounted there is private to it and goes with its
last process. The linux launcher makes one (the pid namespace's, or ``unshare
--mount`` alone; propagation private), where the ``bind_mount`` helper bind-mounts
each source on its target by descriptor (the sandbox is the user's by then) and
remounts the read-only ones read-only (non-recursive binds: no writable submount
comes along), and only then drops to the user and execs the command. The posix
launcher has no namespaces and refuses such a launch.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mesos.agent.containerizer import bind_mount
from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError
from mesos.agent.containerizer.isolator import BindMount, LaunchInfo
from mesos.agent.containerizer.procfs import descendants, session_pids

__all__ = [
    "Credentials",
    "LaunchError",
    "Launcher",
    "LinuxLauncher",
    "PosixLauncher",
    "credentials",
]

Stream = int | IO[Any] | None


class LaunchError(Exception):
    """The container's first process could not be started; the message says why."""


@dataclass(frozen=True)
class Credentials:
    """Who a container's command runs as: a user's ids and supplementary groups."""

    user: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def credentials(user: str) -> Credentials:
    """Look ``user`` up (passwd and group databases); LaunchError when unknown."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LaunchError(f"user {user!r} does not exist on this agent") from None
    groups = tuple(os.getgrouplist(user, entry.pw_gid))
    return Credentials(user, entry.pw_uid, entry.pw_gid, groups)


def _child_setup(paths: Sequence[Path], creds: Credentials | None) -> Any:
    """A pre-exec function: join each cgroup.procs file, then become ``creds``.

    Joining comes first since only root may write the cgroup files; the ids are
    dropped last (groups, then gid, then uid: once uid is gone nothing else can
    change). Runs in the forked child before exec: kept to plain os calls.
    """
    encoded = [os.fsencode(p) for p in paths]

    def setup() -> None:
        pid = str(os.getpid()).encode()
        for path in encoded:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if creds is not None:
            os.setgroups(list(creds.groups))
            os.setgid(creds.gid)
            os.setuid(creds.uid)

    return setup


def _resolve_user(user: str | None) -> Credentials | None:
    """Credentials to switch to, or None when the agent already runs as ``user``."""
    if user is None:
        return None
    creds = credentials(user)
    if creds.uid == os.geteuid():
        return None
    if os.geteuid() != 0:
        raise LaunchError(
            f"cannot run as user {user!r}: the agent runs as uid {os.geteuid()}, not root"
        )
    return creds


class Launcher:
    """Start, list and kill a container's processes."""

    name = "base"

    async def fork(
        self,
        container_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        info: LaunchInfo,
        stdout: Stream = None,
        stderr: Stream = None,
    ) -> asyncio.subprocess.Process:
        raise NotImplementedError

    def pids(self, container_id: str, pid: int | None) -> set[int]:
        """The container's live processes."""
        raise NotImplementedError

    async def kill(self, container_id: str, pid: int | None) -> None:
        """Kill every process of the container and return once none is left."""
        raise NotImplementedError

    async def _spawn(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        join: Sequence[Path],
        stdout: Stream,
        stderr: Stream,
        creds: Credentials | None = None,
    ) -> asyncio.subprocess.Process:
        if not argv:
            raise LaunchError("empty command")
        setup = _child_setup(join, creds) if join or creds is not None else None
        try:
            return await asyncio.create_subprocess_exec(
                *argv,
                env=dict(env),
                cwd=cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=setup,
                close_fds=True,
            )
        except OSError as e:
            raise LaunchError(f"cannot run {argv[0]!r}: {e.strerror}") from e
        except Exception as e:  # subprocess reports a failed preexec_fn this way
            raise LaunchError(f"cannot start {argv[0]!r}: {e}") from e


class LinuxLauncher(Launcher):
    """Cgroup-tracked processes, optional pid namespace (see the module docstring)."""

    name = "linux"

    def __init__(self, cgroups: Cgroups) -> None:
        self.cgroups = cgroups
        self.unshare = shutil.which("unshare")

    async def fork(
        self,
        container_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        info: LaunchInfo,
        stdout: Stream = None,
        stderr: Stream = None,
    ) -> asyncio.subprocess.Process:
        try:
            self.cgroups.create(container_id, "freezer" if self.cgroups.version == 1 else None)
        except CgroupsError as e:
            raise LaunchError(str(e)) from e
        tracking = self.cgroups.tracking_path(container_id) / "cgroup.procs"
        join = [tracking, *(p for p in info.join_cgroups if p != tracking)]
        argv = list(argv)
        unknown = set(info.namespaces) - {"pid"}
        if unknown:
            raise LaunchError(f"namespaces {sorted(unknown)} are not supported")
        creds = _resolve_user(info.user)
        if "pid" in info.namespaces or info.mounts:
            if self.unshare is None:
                needs = "namespaces/pid" if "pid" in info.namespaces else info.mounts[0].what
                raise LaunchError(f"{needs} needs util-linux 'unshare' on PATH")
            if creds is not None:
                # unshare needs root: the ids are dropped inside the namespace instead.
                argv = [*_setpriv(creds), *argv]
                creds = None
            if info.mounts:
                argv = [*_mount_prefix(info.mounts), *argv]
            if "pid" in info.namespaces:
                argv = [self.unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "--",
                        *argv]
            else:  # a mount namespace alone: the command keeps the pid we track
                argv = [self.unshare, "--mount", "--propagation", "private", "--", *argv]
        return await self._spawn(argv, env, cwd, join, stdout, stderr, creds)

    def pids(self, container_id: str, pid: int | None) -> set[int]:
        return self.cgroups.pids(container_id)

    async def kill(self, container_id: str, pid: int | None) -> None:
        await self.cgroups.kill(container_id)


def _mount_prefix(mounts: Sequence[BindMount]) -> list[str]:
    """argv prefix making ``mounts`` (in order) inside the new mount namespace and then
    exec'ing the rest: the ``bind_mount`` helper, run isolated by this Python. It
    reaches each target by descriptor, never through a link the sandbox's user may
    have planted (see its docstring for why not mount(8)); any failure ends the
    container (exit 121, the reason in its stderr) before the command runs."""
    argv = [sys.executable, "-I", "-S", bind_mount.__file__]
    for m in mounts:
        if not (os.path.isabs(m.source) and os.path.isabs(m.target)):
            raise LaunchError(f"{m.what}: mount paths must be absolute")
        argv += ["ro" if m.read_only else "rw", m.source, m.target]
    return [*argv, "--"]


def _setpriv(creds: Credentials) -> list[str]:
    """util-linux ``setpriv`` argv prefix switching to ``creds`` before exec."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise LaunchError("running as a user inside a pid namespace needs util-linux 'setpriv'")
    groups = (
        [f"--groups={','.join(map(str, creds.groups))}"] if creds.groups else ["--clear-groups"]
    )
    return [setpriv, f"--reuid={creds.uid}", f"--regid={creds.gid}", *groups, "--"]


class PosixLauncher(Launcher):
    """One session per container; no cgroups (see the module docstring)."""

    name = "posix"

    async def fork(
        self,
        container_id: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: str | None,
        info: LaunchInfo,
        stdout: Stream = None,
        stderr: Stream = None,
    ) -> asyncio.subprocess.Process:
        if info.namespaces:
            raise LaunchError(f"the posix launcher cannot enter namespaces {info.namespaces}")
        if info.mounts:
            # A volume reaches a posix container as a symlink, which cannot be made
            # read-only (nor can Mesos' filesystem/posix isolator): refuse, rather than
            # hand out write access.
            m = info.mounts[0]
            access = "read-only " if m.read_only else ""
            raise LaunchError(
                f"cannot mount {access}{m.what} at {m.target}: the posix launcher gives a "
                "container no mount namespace, so it cannot be enforced (use "
                "--launcher=linux)")
        creds = _resolve_user(info.user)
        return await self._spawn(argv, env, cwd, info.join_cgroups, stdout, stderr, creds)

    def pids(self, container_id: str, pid: int | None) -> set[int]:
        if pid is None:
            return set()
        tree = {st.pid for st in descendants(pid)}
        # Zombies are dead already; they wait only for their parent to reap them.
        return {p for p in tree | set(session_pids(pid)) if not _is_zombie(p)}

    async def kill(self, container_id: str, pid: int | None) -> None:
        if pid is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        # Each pass scans /proc: run it on a worker thread, off the agent's loop.
        while members := await asyncio.to_thread(self.pids, container_id, pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            for member in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(member, signal.SIGKILL)
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True
