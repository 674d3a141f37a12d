"""Make a container's bind mounts without resolving a path its user controls.

Run as a script (``python -I -S bind_mount.py MODE SOURCE TARGET ... -- COMMAND``)
by the linux launcher inside the container's new mount namespace, as root, before the
command (and before the ids are dropped); it then execs the command. Stdlib only and
run isolated (``-I -S``): the task's environment must not load code into a root
process.

Why a helper and not ``mount --bind SOURCE TARGET`` (or keeping the sandbox
root-owned until the mounts are made): the sandbox is already its user's when the
container starts (``filesystem/posix`` chowns it first, and an executor's earlier
processes, or another container of the same user, may be running), so any directory
on the way to TARGET can be swapped for a symlink between the agent's checks and the
mount, which would then land wherever the link points, e.g. over ``/etc`` in the
container's namespace. mount(8) takes paths and canonicalises them itself (even a
``/proc/self/fd/N`` one), so it cannot be made safe; keeping the sandbox root-owned
would not cover a directory an earlier process of the user already holds open or
owns. Here TARGET is walked from ``/`` one component at a time with
``O_PATH|O_NOFOLLOW|O_DIRECTORY`` (a symlink anywhere fails the mount), and mount(2)
is called through ctypes on ``/proc/self/fd/N``, which the kernel resolves to the
very directory opened, as runc does. The agent passes a TARGET under the sandbox's
real path, so a legitimate one has no link to refuse.

MODE is ``rw`` (a recursive bind, mounts under SOURCE come along, as Mesos' MS_REC)
or ``ro``: a non-recursive bind, so that no submount of SOURCE comes along writable
(a read-only remount applies to one mount only), remounted read-only; SOURCE is also
bound read-only onto itself, so the container cannot write the volume through its
host path either. The remount keeps the mount's nosuid/nodev/noexec/atime flags.
Any failure exits 121 with the reason on stderr, before the command could run
without its mount.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Sequence

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
# statvfs f_flag bits that are also mount(2) flags, kept across a read-only remount.
_KEPT = (os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_NOATIME | os.ST_NODIRATIME
         | os.ST_SYNCHRONOUS | os.ST_MANDLOCK)
_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
EXIT_FAILED = 121


class MountError(Exception):
    """A mount could not be made safely; the message says why."""


def _mount(source: str | None, target: str, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    src = source.encode() if source is not None else None
    if libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise MountError(os.strerror(err))


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def open_beneath_root(path: str) -> tuple[int, int, str]:
    """(fd of ``path``'s parent, fd of ``path``, its last component), both O_PATH
    directories reached from ``/`` without following any symlink. MountError if a
    component is a link, not a directory, ``.``/``..``, or missing."""
    if not os.path.isabs(path):
        raise MountError("the mount target must be an absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise MountError("the mount target must name a directory below /")
    fd = os.open("/", _PATH)
    parent = -1
    try:
        for name in parts:
            try:
                child = os.open(name, _PATH | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise MountError(f"'{name}' on the way is a symbolic link or not a "
                                 f"directory ({exc.strerror})") from None
            if not stat.S_ISDIR(os.fstat(child).st_mode):  # belt and braces
                os.close(child)
                raise MountError(f"'{name}' on the way is not a directory")
            if parent >= 0:
                os.close(parent)
            parent, fd = fd, child
    except BaseException:
        os.close(fd)
        if parent >= 0:
            os.close(parent)
        raise
    return parent, fd, parts[-1]


def _same(a: int, b: int) -> bool:
    x, y = os.fstat(a), os.fstat(b)
    return (x.st_dev, x.st_ino) == (y.st_dev, y.st_ino)


def _remount_read_only(top: int, source_fd: int) -> None:
    """Remount the mount whose root ``top`` is (a bind of ``source_fd``) read-only."""
    if not _same(top, source_fd):
        raise MountError("the new mount was replaced before it was made read-only")
    kept = os.fstatvfs(top).f_flag & _KEPT
    _mount(None, _fd_path(top), MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def bind(mode: str, source: str, target: str) -> None:
    """Bind ``source`` at ``target`` (see the module docstring for ``mode``)."""
    if mode not in ("ro", "rw"):
        raise MountError(f"unknown mode {mode!r}")
    source_fd = os.open(source, _PATH)  # the agent's volume directory: root's parents
    try:
        parent, target_fd, name = open_beneath_root(target)
        try:
            flags = MS_BIND if mode == "ro" else MS_BIND | MS_REC
            _mount(_fd_path(source_fd), _fd_path(target_fd), flags)
            if mode == "rw":
                return
            # target_fd is the directory now covered: the new mount's root is reached
            # again from its (held) parent, never by path.
            top = os.open(name, _PATH | os.O_NOFOLLOW, dir_fd=parent)
            try:
                _remount_read_only(top, source_fd)
            finally:
                os.close(top)
        finally:
            os.close(target_fd)
            os.close(parent)
        _mount(_fd_path(source_fd), _fd_path(source_fd), MS_BIND)
        top = os.open(source, _PATH)  # now the bind just made over the host path
        try:
            _remount_read_only(top, source_fd)
        finally:
            os.close(top)
    finally:
        os.close(source_fd)


def _environment_given() -> dict[bytes, bytes]:
    """The environment this process was started with, for the command.

    Not ``os.environ``: Python changes that at start-up (PEP 538 sets
    ``LC_CTYPE=C.UTF-8`` when the locale is C, ``-I`` notwithstanding), and the
    command must get exactly the task's environment. ``/proc/self/environ`` holds the
    block the kernel was given at exec, which later ``setenv`` calls do not touch."""
    with open("/proc/self/environ", "rb") as f:
        block = f.read()
    env: dict[bytes, bytes] = {}
    for entry in block.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key] = value
    return env


def main(argv: Sequence[str]) -> int:
    """Make the mounts in ``argv`` (groups of mode, source, target, then ``--``) and
    exec the rest; only returns on failure."""
    args = list(argv)
    try:
        end = args.index("--")
    except ValueError:
        print("mesos-mount: usage: MODE SOURCE TARGET ... -- COMMAND", file=sys.stderr)
        return EXIT_FAILED
    specs, command = args[:end], args[end + 1:]
    if len(specs) % 3 or not command:
        print("mesos-mount: usage: MODE SOURCE TARGET ... -- COMMAND", file=sys.stderr)
        return EXIT_FAILED
    for i in range(0, len(specs), 3):
        mode, source, target = specs[i:i + 3]
        try:
            bind(mode, source, target)
        except (MountError, OSError) as exc:
            print(f"mesos-mount: cannot mount {source} at {target}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    try:
        os.execvpe(command[0], command, _environment_given())
    except OSError as exc:
        print(f"mesos-mount: cannot run {command[0]!r}: {exc.strerror}", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
