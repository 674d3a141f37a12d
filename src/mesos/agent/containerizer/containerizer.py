"""The Mesos containerizer: one launcher plus the isolators named by ``--isolation``.

Lifecycle of a container, all on the agent's event loop:

``launch``: every isolator ``prepare``s (creating cgroups, asking for namespaces),
the launcher forks a child that joins those cgroups before it execs, every
isolator ``isolate``s the pid, and two background tasks start: one reaps the
first process, one waits for the first ``Limitation`` any isolator reports.

Either of them (or a caller's ``destroy``) ends the container exactly once:
the launcher kills every process (freezer kill with cgroups), the first process
is reaped, isolators get a last look (``limitation_on_exit``) and ``cleanup``,
and the container's cgroups are removed. ``wait`` returns the resulting
``ContainerTermination``, whose ``limitations`` say why a limit-killed container
died (e.g. REASON_CONTAINER_LIMITATION_MEMORY for an OOM kill).

``recover`` re-attaches to containers the agent checkpointed (by the pid it
recorded) and destroys orphans: cgroups under ``--cgroups_root`` nobody knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError, check_container_id
from mesos.agent.containerizer.cgroups import open_cgroups as _open_cgroups
from mesos.agent.containerizer.isolator import (
    BindMount,
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Limitation,
    Ranges,
    Resources,
    Statistics,
    resolve,
)
from mesos.agent.containerizer.isolators import (
    CGROUP_ISOLATORS,
    IsolationError,
    build_isolators,
    parse_isolation,
)
from mesos.agent.containerizer.launcher import (
    Launcher,
    LaunchError,
    LinuxLauncher,
    PosixLauncher,
    Stream,
)

__all__ = ["ContainerTermination", "ContainerizerError", "MesosContainerizer"]

log = logging.getLogger(__name__)

# How many finished containers ``wait`` still answers for.
_TERMINATED_KEPT = 1024


class ContainerizerError(Exception):
    """A containerizer call could not be done; the message says why."""


@dataclass(frozen=True)
class ContainerTermination:
    """How a container ended (Mesos' ContainerTermination)."""

    status: int | None  # returncode of the first process (-N: signal N); None: unknown
    limitations: tuple[Limitation, ...] = ()
    message: str = ""

    @property
    def reason(self) -> str | None:
        """The TaskStatus reason of the first limitation, if a limit ended the container."""
        return self.limitations[0].reason if self.limitations else None


@dataclass
class _Container:
    container_id: str
    resources: Resources
    pid: int | None = None
    process: asyncio.subprocess.Process | None = None
    limitations: list[Limitation] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    destroying: asyncio.Task[ContainerTermination] | None = None
    exited: asyncio.Future[int | None] | None = None


class MesosContainerizer:
    """Launch, watch, resize, measure and destroy containers (see the module docstring)."""

    def __init__(
        self, flags: ContainerizerFlags, launcher: Launcher, isolators: Sequence[Isolator],
        cgroups: Cgroups | None,
    ) -> None:
        self.flags = flags
        self.launcher = launcher
        self.isolators = list(isolators)
        self.cgroups = cgroups
        self._containers: dict[str, _Container] = {}
        self._terminated: OrderedDict[str, ContainerTermination] = OrderedDict()

    @classmethod
    def create(cls, flags: ContainerizerFlags, cgroups: Cgroups | None = None
               ) -> MesosContainerizer:
        """Build from flags; fails loudly (IsolationError) naming what is wrong or missing."""
        names = parse_isolation(flags.isolation)
        if flags.launcher not in ("linux", "posix"):
            raise IsolationError(f"unknown --launcher={flags.launcher!r} (known: linux, posix)")
        needs_cgroups = flags.launcher == "linux" or bool(CGROUP_ISOLATORS & set(names))
        if "namespaces/pid" in names and flags.launcher != "linux":
            raise IsolationError("namespaces/pid needs --launcher=linux")
        if needs_cgroups and cgroups is None:
            try:
                cgroups = _open_cgroups(flags.cgroups_root)
            except CgroupsError as e:
                raise IsolationError(
                    f"--launcher={flags.launcher} --isolation={flags.isolation}: {e}"
                ) from e
        if flags.launcher == "linux":
            assert cgroups is not None
            if cgroups.version == 1 and not cgroups.has("freezer"):
                raise IsolationError("--launcher=linux needs the cgroup v1 freezer hierarchy")
            launcher: Launcher = LinuxLauncher(cgroups)
        else:
            launcher = PosixLauncher()
        return cls(flags, launcher, build_isolators(names, flags, cgroups), cgroups)

    # -- queries --------------------------------------------------------------------

    def containers(self) -> set[str]:
        """Ids of containers that are not destroyed yet."""
        return set(self._containers)

    def pid(self, container_id: str) -> int | None:
        c = self._containers.get(container_id)
        return c.pid if c else None

    def pids(self, container_id: str) -> set[int]:
        """Every live process of the container."""
        c = self._require(container_id)
        return self.launcher.pids(container_id, c.pid)

    def _require(self, container_id: str) -> _Container:
        c = self._containers.get(container_id)
        if c is None:
            raise ContainerizerError(f"unknown container {container_id}")
        return c

    # -- launch ---------------------------------------------------------------------

    async def launch(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        resources: Resources,
        stdout: Stream = None,
        stderr: Stream = None,
        sandbox: str | None = None,
        user: str | None = None,
        ranges: Mapping[str, Ranges] | None = None,
        mounts: Sequence[BindMount] = (),
    ) -> int:
        """Start ``argv`` as the container's first process; returns its pid.

        ``sandbox`` is the executor run's directory (disk/du measures it,
        filesystem/posix hands it to ``user``; it is the working directory when
        ``cwd`` is not given); ``ranges`` holds range resources such as ports;
        ``mounts`` are made in the container's own mount namespace (read-only
        volumes), or the launch is refused where the launcher gives it none.
        Raises LaunchError (and leaves nothing behind) when any step fails.
        """
        try:
            check_container_id(container_id)
        except CgroupsError as e:
            raise LaunchError(str(e)) from e
        if container_id in self._containers:
            raise LaunchError(f"container {container_id} already exists")
        c = _Container(container_id, dict(resources))
        self._containers[container_id] = c
        self._terminated.pop(container_id, None)
        env = dict(env if env is not None else os.environ)
        if cwd is None:
            cwd = sandbox
        config = ContainerConfig(
            container_id, list(argv), env, cwd, c.resources, user=user, sandbox=sandbox,
            ranges=dict(ranges or {}),
        )
        try:
            info = LaunchInfo(mounts=list(mounts))
            for isolator in self.isolators:
                info.merge(await resolve(isolator.prepare(container_id, config)))
            env.update(info.env)
            process = await self.launcher.fork(
                container_id, argv, env, cwd, info, stdout=stdout, stderr=stderr
            )
        except Exception as e:
            await self._teardown(c)
            self._containers.pop(container_id, None)
            if isinstance(e, LaunchError):
                raise
            raise LaunchError(f"container {container_id}: {e}") from e
        c.process, c.pid = process, process.pid
        try:
            for isolator in self.isolators:
                await resolve(isolator.isolate(container_id, process.pid))
        except Exception as e:
            await self.destroy(container_id)
            raise LaunchError(f"container {container_id}: isolate failed: {e}") from e
        self._start_watching(c, _reap_child(process))
        return process.pid

    def _start_watching(self, c: _Container, exited: asyncio.Future[int | None]) -> None:
        loop = asyncio.get_running_loop()
        c.exited = exited
        c.tasks.append(loop.create_task(self._on_exit(c)))
        futures = [f for i in self.isolators if (f := i.watch(c.container_id)) is not None]
        if futures:
            c.tasks.append(loop.create_task(self._on_limitation(c, futures)))

    async def _on_exit(self, c: _Container) -> None:
        assert c.exited is not None
        await asyncio.shield(c.exited)
        self._begin_destroy(c)

    async def _on_limitation(self, c: _Container, futures: list[asyncio.Future[Limitation]]
                             ) -> None:
        done, _ = await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            if not future.cancelled() and future.exception() is None:
                c.limitations.append(future.result())
        if c.limitations:
            log.info("container %s: %s", c.container_id, c.limitations[0].message)
            self._begin_destroy(c)

    # -- wait / destroy ---------------------------------------------------------------

    async def wait(self, container_id: str) -> ContainerTermination | None:
        """Block until the container ends; None when it was never known (Mesos' wait)."""
        c = self._containers.get(container_id)
        if c is None:
            return self._terminated.get(container_id)
        if c.exited is not None:
            try:
                await asyncio.shield(c.exited)
            except asyncio.CancelledError:
                # The caller stopped waiting (or the loop is being torn down, which
                # cancels the reaper too): that must not destroy the container.
                task = asyncio.current_task()
                if not c.exited.cancelled() or (task is not None and task.cancelling()):
                    raise
        return await asyncio.shield(self._begin_destroy(c))

    async def destroy(self, container_id: str) -> ContainerTermination | None:
        """Kill everything in the container and clean it up; None when unknown."""
        c = self._containers.get(container_id)
        if c is None:
            return self._terminated.get(container_id)
        return await asyncio.shield(self._begin_destroy(c))

    def _begin_destroy(self, c: _Container) -> asyncio.Task[ContainerTermination]:
        if c.destroying is None:
            c.destroying = asyncio.get_running_loop().create_task(self._destroy(c))
        return c.destroying

    async def _destroy(self, c: _Container) -> ContainerTermination:
        cid = c.container_id
        message = ""
        try:
            await self.launcher.kill(cid, c.pid)
        except CgroupsError as e:
            message = f"kill failed: {e}"
            log.error("container %s: %s", cid, message)
        status: int | None = None
        if c.exited is not None:
            status = await asyncio.shield(c.exited)
        for isolator in self.isolators:
            if not c.limitations:
                found = await resolve(isolator.limitation_on_exit(cid))
                if found is not None:
                    c.limitations.append(found)
        message = "; ".join(m for m in [*(lim.message for lim in c.limitations), message] if m)
        await self._teardown(c)
        termination = ContainerTermination(status, tuple(c.limitations), message)
        self._containers.pop(cid, None)
        self._terminated[cid] = termination
        while len(self._terminated) > _TERMINATED_KEPT:
            self._terminated.popitem(last=False)
        return termination

    async def _teardown(self, c: _Container) -> None:
        """Isolators' cleanup (last first), background tasks, then the cgroups."""
        for task in c.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        for isolator in reversed(self.isolators):
            try:
                await resolve(isolator.cleanup(c.container_id))
            except Exception:
                log.exception("container %s: %s cleanup failed", c.container_id, isolator.name)
        if self.cgroups is not None:
            await self.cgroups.destroy(c.container_id)

    # -- update / usage ---------------------------------------------------------------

    async def update(
        self, container_id: str, resources: Resources,
        ranges: Mapping[str, Ranges] | None = None,
    ) -> None:
        """The container's resources changed: every isolator follows (limits, shares).

        ``ranges`` (e.g. the new ``ports``) is passed on only when given.
        """
        c = self._require(container_id)
        c.resources = dict(resources)
        for isolator in self.isolators:
            await resolve(isolator.update(container_id, c.resources))
            if ranges is not None:
                await resolve(isolator.update_ranges(container_id, dict(ranges)))

    async def usage(self, container_id: str) -> Statistics:
        """ResourceStatistics (Mesos field names) merged over the isolators."""
        c = self._require(container_id)
        stats: Statistics = {}
        for isolator in self.isolators:
            stats.update(await resolve(isolator.usage(container_id)))
        if "processes" not in stats and isinstance(self.launcher, LinuxLauncher):
            stats["processes"] = float(len(self.launcher.pids(container_id, c.pid)))
        if "threads" not in stats and self.cgroups is not None and isinstance(
            self.launcher, LinuxLauncher
        ):
            stats["threads"] = float(self.cgroups.threads(container_id))
        stats["timestamp"] = time.time()
        return stats

    # -- recovery ---------------------------------------------------------------------

    async def recover(self, states: Iterable[ContainerState]) -> set[str]:
        """Re-attach to the containers the agent checkpointed; destroy orphans.

        Orphans are containers with cgroups under ``--cgroups_root`` that are not in
        ``states``; their ids are returned. A checkpointed pid that is no longer in
        its container's cgroup (it exited, and may have been reused) is ignored, so
        a stranger is never watched, measured or killed. A known container whose
        processes are all gone is destroyed at once (termination status None).
        """
        known = {s.container_id: s for s in states}
        for cid in known:
            check_container_id(cid)
        on_disk = self.cgroups.containers() if self.cgroups is not None else set()
        orphans = on_disk - set(known)
        for cid, state in list(known.items()):
            if state.pid is not None and not self._still_ours(cid, state.pid):
                known[cid] = replace(state, pid=None)
        for isolator in self.isolators:
            await resolve(isolator.recover(known, orphans))
        for orphan in sorted(orphans):
            log.info("destroying orphan container %s", orphan)
            for isolator in reversed(self.isolators):
                with contextlib.suppress(Exception):
                    await resolve(isolator.cleanup(orphan))
            assert self.cgroups is not None
            await self.cgroups.destroy(orphan)
        for cid, state in known.items():
            if cid in self._containers:
                continue
            c = _Container(cid, dict(state.resources or {}), pid=state.pid)
            self._containers[cid] = c
            self._start_watching(c, self._reap_recovered(cid, state.pid))
        return orphans

    def _still_ours(self, container_id: str, pid: int) -> bool:
        if isinstance(self.launcher, LinuxLauncher):
            return pid in self.launcher.pids(container_id, None)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _reap_recovered(self, container_id: str, pid: int | None) -> asyncio.Future[int | None]:
        """Not our child any more: watch its pidfd, or the container's cgroup emptying."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int | None] = loop.create_future()
        fd: int | None = None
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                fd = os.pidfd_open(pid)
        if fd is not None:
            def gone() -> None:
                loop.remove_reader(fd)
                os.close(fd)
                if not future.done():
                    future.set_result(None)

            loop.add_reader(fd, gone)
            return future

        async def poll() -> None:
            while self.launcher.pids(container_id, pid):
                await asyncio.sleep(0.1)
            if not future.done():
                future.set_result(None)

        task = loop.create_task(poll())
        future.add_done_callback(lambda _f: task.cancel())
        return future


def _reap_child(process: asyncio.subprocess.Process) -> asyncio.Future[int | None]:
    async def reap() -> int | None:
        return await process.wait()

    return asyncio.ensure_future(reap())
