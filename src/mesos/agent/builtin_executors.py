"""The ExecutorInfo of the built-in executors (pure).

A task with a ``command`` runs on the command executor, whose ExecutorInfo the agent
makes up as Mesos does (executor id = task id, a name quoting the command, 0.1 cpus
and 32 MB on top of the task); a task group without an executor command runs on the
default executor.
"""

from __future__ import annotations

import msgspec

from mesos.v1 import mesos as v1

__all__ = [
    "COMMAND_EXECUTOR_CPUS",
    "COMMAND_EXECUTOR_MEM",
    "allocation_role",
    "command_executor_info",
    "command_executor_name",
    "default_executor_info",
]

# Mesos' DEFAULT_EXECUTOR_CPUS / DEFAULT_EXECUTOR_MEM: the command executor's allowance.
COMMAND_EXECUTOR_CPUS = 0.1
COMMAND_EXECUTOR_MEM = 32.0


def command_executor_name(task: v1.TaskInfo) -> str:
    """``Command Executor (Task: <id>) (Command: sh -c '<first 12 chars>...')``."""
    command = task.command or v1.CommandInfo()
    if command.shell:
        value = command.value or ""
        shown = value if len(value) <= 15 else value[:12] + "..."
        text = f"sh -c '{shown}'"
    else:
        text = "[" + ", ".join([command.value or "", *command.arguments]) + "]"
    return f"Command Executor (Task: {task.task_id.value}) (Command: {text})"


def allocation_role(resources: list[v1.Resource], info: v1.FrameworkInfo) -> str | None:
    """The role the resources were allocated to, else the framework's only role."""
    for resource in resources:
        if resource.allocation_info is not None and resource.allocation_info.role:
            return resource.allocation_info.role
    if len(info.roles) == 1:
        return info.roles[0]
    return info.role if info.role is not None else ("*" if not info.roles else None)


def _argv_command(argv: tuple[str, ...]) -> v1.CommandInfo:
    return v1.CommandInfo(shell=False, value=argv[0], arguments=list(argv))


def _overhead(role: str | None) -> list[v1.Resource]:
    alloc = v1.AllocationInfo(role=role) if role is not None else None
    return [
        v1.Resource(name="cpus", type="SCALAR", scalar=v1.Scalar(value=COMMAND_EXECUTOR_CPUS),
                    allocation_info=alloc),
        v1.Resource(name="mem", type="SCALAR", scalar=v1.Scalar(value=COMMAND_EXECUTOR_MEM),
                    allocation_info=alloc),
    ]


def command_executor_info(
    task: v1.TaskInfo, framework_info: v1.FrameworkInfo, role: str | None,
    argv: tuple[str, ...],
) -> v1.ExecutorInfo:
    """The command executor's ExecutorInfo for ``task``."""
    command = _argv_command(argv)
    if task.command is not None and task.command.user is not None:
        command = msgspec.structs.replace(command, user=task.command.user)
    if task.command is not None and task.command.uris:
        # As in Mesos, the task's URIs are fetched into the command executor's sandbox.
        command = msgspec.structs.replace(command, uris=task.command.uris)
    return v1.ExecutorInfo(
        type="CUSTOM",
        executor_id=v1.ExecutorID(value=task.task_id.value),
        framework_id=framework_info.id,
        command=command,
        container=task.container,
        resources=_overhead(role),
        name=command_executor_name(task),
        source=task.task_id.value,
        labels=task.labels,
    )


def default_executor_info(info: v1.ExecutorInfo, argv: tuple[str, ...]) -> v1.ExecutorInfo:
    """A task group's executor: DEFAULT unless typed, run as ``argv`` if it has no command."""
    if info.type is None:
        info = msgspec.structs.replace(info, type="DEFAULT")
    if info.command is None and info.type == "DEFAULT":
        info = msgspec.structs.replace(info, command=_argv_command(argv))
    return info
