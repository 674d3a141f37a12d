"""How the agent starts executors: their environment, argv and containerizer settings.

Executors are started by the Mesos containerizer
(:mod:`mesos.agent.containerizer`); this module holds what the agent hands it: the
executor's environment and argv, the containerizer's flags built from the agent's,
and a container's resources (the executor's plus its tasks', as Mesos sizes it).

The session helpers below predate the containerizer and remain for what still
runs outside it (the operator API's nested containers, tools, tests): a process in
a new session (``setsid``) has its pid as process group id, and everything it
forks stays in that group unless it calls ``setsid`` itself; ``killpg`` plus a
sweep of the session kills it (no cgroups: a process that leaves escapes).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesos.agent.containerizer import (
    CgroupsError,
    ContainerizerFlags,
    IsolationError,
    MesosContainerizer,
    open_cgroups,
)
from mesos.agent.containerizer.cgroups import CgroupLayout, detect_layout
from mesos.agent.containerizer.isolators import CGROUP_ISOLATORS, parse_isolation
from mesos.agent.containerizer.procfs import group_pids, session_pids
from mesos.flags import format_duration
from mesos.resources import Resources
from mesos.v1 import mesos as v1

__all__ = [
    "ContainerProcess",
    "ExecutorEnv",
    "LaunchError",
    "command_argv",
    "container_limits",
    "containerizer_flags",
    "default_launcher",
    "executor_environment",
    "group_pids",
    "host_layout",
    "kill_group",
    "kill_session",
    "kill_session_remains",
    "launch",
    "make_containerizer",
    "make_sandbox",
    "session_pids",
    "wait_status",
]

# Inherited variables with these prefixes belong to the agent, not to its executors.
_AGENT_PREFIXES = ("MESOS_", "LIBPROCESS_")


class LaunchError(Exception):
    """The executor's process could not be started; the message says why."""


@dataclass(frozen=True)
class ContainerProcess:
    """The first process of a container the agent launched (its executor)."""

    pid: int


# ------------------------------------------------------------------ containerizer settings


def host_layout(hierarchy: str) -> CgroupLayout:
    """The host's cgroup mounts under ``--cgroups_hierarchy`` (others are ignored)."""
    base = Path(hierarchy)
    layout = detect_layout(base=str(base))

    def under(path: Path) -> bool:
        return path == base or base in path.parents

    unified = layout.unified if layout.unified is not None and under(layout.unified) else None
    return CgroupLayout(
        v1={c: p for c, p in layout.v1.items() if under(p)},
        unified=unified,
        unified_is_primary=layout.unified_is_primary and unified is not None,
    )


def default_launcher(cgroups_root: str, hierarchy: str) -> str:
    """Mesos' default ``--launcher``: ``linux`` when it can work here, else ``posix``.

    The linux launcher needs root, Linux, and a cgroup to track containers by: the
    v1 freezer, or a cgroup2 hierarchy.
    """
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "posix"
    try:
        cgroups = open_cgroups(cgroups_root, host_layout(hierarchy))
    except CgroupsError:
        return "posix"
    return "linux" if cgroups.version == 2 or cgroups.has("freezer") else "posix"


def containerizer_flags(flags: Any, resources: Resources, launcher: str) -> ContainerizerFlags:
    """The containerizer's settings from the agent's flags (same names) and resources.

    Every ContainerizerFlags field with an agent flag of the same name takes that
    flag's value (when set); ``agent_ports`` is the agent's own ``ports`` resource.
    """
    values: dict[str, Any] = {"launcher": launcher}
    for field in dataclasses.fields(ContainerizerFlags):
        if field.name in values:
            continue
        value = getattr(flags, field.name) if field.name in flags else None
        if value is not None:
            values[field.name] = value
    ports = resources.ranges("ports")
    if ports:
        values["agent_ports"] = tuple((int(b), int(e)) for b, e in ports)
    if values.get("nvidia_gpu_devices") is not None:
        values["nvidia_gpu_devices"] = tuple(values["nvidia_gpu_devices"])
    return ContainerizerFlags(**values)


def make_containerizer(
    flags: Any, resources: Resources, launcher_name: str
) -> MesosContainerizer:
    """The containerizer the flags ask for; OSError (a failure to start) saying why not."""
    try:
        cflags = containerizer_flags(flags, resources, launcher_name)
        cgroups = None
        if launcher_name == "linux" or CGROUP_ISOLATORS & set(parse_isolation(cflags.isolation)):
            try:
                cgroups = open_cgroups(cflags.cgroups_root,
                                       host_layout(flags.cgroups_hierarchy))
            except CgroupsError as exc:
                raise IsolationError(f"--launcher={launcher_name} --isolation="
                                     f"{cflags.isolation}: {exc}") from exc
        return MesosContainerizer.create(cflags, cgroups)
    except (IsolationError, CgroupsError, ValueError) as exc:
        raise OSError(f"Failed to create a containerizer: {exc}") from exc


def container_limits(
    held: Resources,
) -> tuple[dict[str, float], dict[str, tuple[tuple[int, int], ...]]]:
    """A container's scalar resources by name, and its range resources (ports)."""
    scalars = {name: held.scalar(name) for name in sorted(held.names())
               if held.scalar(name)}
    ranges = {name: tuple((int(b), int(e)) for b, e in held.ranges(name))
              for name in sorted(held.names()) if held.ranges(name)}
    return scalars, ranges


def make_sandbox(directory: str) -> None:
    """Create the run directory and point ``runs/latest`` at it."""
    os.makedirs(directory, exist_ok=True)
    runs = os.path.dirname(directory)
    link = os.path.join(runs, "latest")
    tmp = os.path.join(runs, f".latest.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(os.path.basename(directory), tmp)
    os.replace(tmp, link)


def command_argv(command: v1.CommandInfo) -> list[str]:
    """The argv of an executor's CommandInfo (``sh -c`` for a shell command).

    Without a shell Mesos execs ``value`` with ``arguments`` as its argv; the
    containerizer execs ``argv[0]``, so ``value`` takes ``arguments[0]``'s place.
    """
    if command.shell:
        if not command.value:
            raise LaunchError("Shell command has no 'value'")
        return ["/bin/sh", "-c", command.value]
    if not command.value:
        raise LaunchError("Command has no 'value' to execute")
    return [command.value, *command.arguments[1:]]


@dataclass(frozen=True)
class ExecutorEnv:
    """What ``executor_environment`` needs to know about the agent."""

    agent_id: str
    endpoint: str  # ip:port of the agent
    pid: str  # slave(1)@ip:port
    http_command_executor: bool
    shutdown_grace_period: float
    recovery_timeout: float
    subscription_backoff_max: float
    base: Mapping[str, str] | None = None  # --executor_environment_variables


def executor_environment(
    agent: ExecutorEnv,
    info: v1.ExecutorInfo,
    framework_info: v1.FrameworkInfo,
    directory: str,
    role: str | None,
    inherited: Mapping[str, str],
) -> dict[str, str]:
    """The environment of an executor process (ref §4.4)."""
    if agent.base is not None:
        env = dict(agent.base)
    else:
        env = {k: v for k, v in inherited.items() if not k.startswith(_AGENT_PREFIXES)}
    grace = agent.shutdown_grace_period
    if info.shutdown_grace_period is not None:
        grace = info.shutdown_grace_period.nanoseconds / 1e9
    assert info.framework_id is not None or framework_info.id is not None
    framework_id = (info.framework_id or framework_info.id).value  # type: ignore[union-attr]
    env.update({
        "MESOS_FRAMEWORK_ID": framework_id,
        "MESOS_EXECUTOR_ID": info.executor_id.value,
        "MESOS_DIRECTORY": directory,
        "MESOS_SANDBOX": directory,
        "MESOS_AGENT_ENDPOINT": agent.endpoint,
        "MESOS_SLAVE_ID": agent.agent_id,
        "MESOS_SLAVE_PID": agent.pid,
        "MESOS_CHECKPOINT": "1" if framework_info.checkpoint else "0",
        "MESOS_HTTP_COMMAND_EXECUTOR": "1" if agent.http_command_executor else "0",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(grace),
        "LIBPROCESS_PORT": "0",
    })
    if "LIBPROCESS_IP" in inherited:
        env["LIBPROCESS_IP"] = inherited["LIBPROCESS_IP"]
    if framework_info.checkpoint:
        env["MESOS_RECOVERY_TIMEOUT"] = format_duration(agent.recovery_timeout)
        env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = format_duration(agent.subscription_backoff_max)
    if role is not None:
        env["MESOS_ALLOCATION_ROLE"] = role
    command = info.command
    if command is not None and command.environment is not None:
        for variable in command.environment.variables:
            if variable.type in (None, "VALUE") and variable.value is not None:
                env[variable.name] = variable.value
    return env


async def launch(
    command: v1.CommandInfo, directory: str, env: Mapping[str, str]
) -> asyncio.subprocess.Process:
    """Start ``command`` in a new session, in ``directory``, output to its sandbox files."""
    if command.shell:
        if not command.value:
            raise LaunchError("Shell command has no 'value'")
        program, args, executable = "/bin/sh", ["-c", command.value], None
    else:
        if not command.value:
            raise LaunchError("Command has no 'value' to execute")
        argv = command.arguments or [command.value]
        program, args, executable = argv[0], argv[1:], command.value
    try:
        with (
            open(os.path.join(directory, "stdout"), "ab") as out,
            open(os.path.join(directory, "stderr"), "ab") as err,
        ):
            return await asyncio.create_subprocess_exec(
                program,
                *args,
                executable=executable,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=directory,
                env=dict(env),
                start_new_session=True,
            )
    except (OSError, ValueError) as exc:  # ValueError: NUL bytes, a variable named 'A=B'
        reason = getattr(exc, "strerror", None) or exc
        raise LaunchError(f"{reason}: '{command.value}'") from None


def kill_group(pgid: int) -> bool:
    """SIGKILL every process in the group; False if none was left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def kill_session(sid: int, rounds: int = 5) -> int:
    """SIGKILL the executor's process group and every process left in its session.

    Tasks may run in process groups of their own (the default executor puts each task
    in one), so killing the executor's group alone would leave them running. A few
    rounds catch processes forked while we scan. Returns how many were signalled.
    """
    killed = 1 if kill_group(sid) else 0
    for _ in range(rounds):
        pids = session_pids(sid)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def kill_session_remains(sid: int, rounds: int = 5) -> int:
    """``kill_session`` for a session whose leader (pid ``sid``) was already reaped.

    While any process of the session lives, the kernel does not hand its id out again.
    So if a process ``sid`` exists now, the number was reused and nothing of the old
    session is left: touch nothing (that process and its group are someone else's).
    """
    if os.path.exists(f"/proc/{sid}"):
        return 0
    return kill_session(sid, rounds)


def wait_status(returncode: int) -> int:
    """asyncio's returncode as the raw wait(2) status Mesos reports (exit << 8 | signal)."""
    if returncode < 0:
        return -returncode
    return (returncode & 0xFF) << 8
