"""Rebuilding the agent core from checkpoints (pure: no I/O, no clock).

:func:`restore` turns a :class:`~mesos.agent.checkpoint.RecoveredState` into the
core's frameworks, executors and tasks, as Mesos' ``Slave::recover``:

* an executor whose process is still alive (``alive`` names its container) is
  RUNNING but disconnected, until it re-subscribes;
* one whose process is gone is RUNNING too, and the caller dispatches
  ``ExecutorExited`` for it once registered: its live tasks then fail;
* a task's state is its latest checkpointed update's; a task whose terminal update
  was acknowledged is completed, one whose terminal update was not is terminated;
* a task with no update at all may never have reached its executor (the agent
  checkpoints a task when it takes it on, before the executor has subscribed): it is
  queued again, and sent when the executor (re-)subscribes. One the executor did
  get is named in its re-subscription (it has no acknowledged update of it), so it
  is not sent twice; if the executor never comes back, the task fails with it.
  Tasks of a default executor go back as one task group.

The updates not yet acknowledged are returned in order, per task, for the
status-update manager to resend after re-registering. :func:`container_states`
says which containers the containerizer is to take back (the rest under its
cgroups root are orphans).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import msgspec

from mesos.agent import checkpoint
from mesos.agent.containerizer import ContainerState
from mesos.agent.core import AgentCore
from mesos.agent.launcher import container_limits
from mesos.agent.state import Executor, Framework, QueuedLaunch, Task
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1 import mesos as v1
from mesos.v1.mesos import TERMINAL_STATES


@dataclass
class Restored:
    """What :func:`restore` leaves for the service to do."""

    # (framework id, status) for every unacknowledged update, in order per task.
    unacknowledged: list[tuple[str, v1.TaskStatus]] = field(default_factory=list)
    # (framework id, executor id, container id, pid) of executors to watch.
    live: list[tuple[str, str, str, int]] = field(default_factory=list)
    # (framework id, executor id, container id) of executors whose process is gone.
    dead: list[tuple[str, str, str]] = field(default_factory=list)


def restore(core: AgentCore, state: checkpoint.RecoveredState, alive: set[str]) -> Restored:
    """Put the checkpointed frameworks, executors and tasks into ``core``."""
    core.agent_info = msgspec.structs.replace(
        core.agent_info, id=v1.AgentID(value=state.agent_id))
    restored = Restored()
    for recovered in state.frameworks:
        framework = Framework(
            recovered.info,
            completed_executors=collections.deque(
                maxlen=core.config.max_completed_executors_per_framework),
        )
        for rex in recovered.executors:
            executor = _restore_executor(framework, rex, restored)
            if not executor.incomplete() and rex.container_id not in alive:
                continue
            framework.executors[executor.id] = executor
            key = (framework.id, executor.id, executor.container_id)
            if executor.container_id in alive and rex.pid is not None:
                restored.live.append((*key, rex.pid))
            else:
                restored.dead.append(key)
        if framework.executors:
            core.frameworks[framework.id] = framework
    return restored


def _restore_executor(framework: Framework, rex: checkpoint.RecoveredExecutor,
                      restored: Restored) -> Executor:
    executor = Executor(rex.info, framework.id, rex.container_id, rex.directory,
                        rex.command_executor, rex.role, state="RUNNING", pid=rex.pid)
    unsent: list[Task] = []
    for rtask in rex.tasks:
        task = Task(rtask.info, framework.id, executor.id)
        if not rtask.updates:
            unsent.append(task)
            continue
        for status in rtask.updates:
            task.state = status.state
            task.statuses.append(msgspec.structs.replace(status, data=None))
        pending = rtask.unacknowledged()
        restored.unacknowledged.extend((framework.id, s) for s in pending)
        if task.state not in TERMINAL_STATES:
            executor.launched[task.id] = task
        elif pending:
            executor.terminated[task.id] = task
        else:
            executor.completed.append(task)
    if unsent and rex.info.type == "DEFAULT":
        executor.queued.append(QueuedLaunch(unsent, group=True))
    else:
        executor.queued.extend(QueuedLaunch([t], group=False) for t in unsent)
    return executor


def container_states(state: checkpoint.RecoveredState, alive: set[str]
                     ) -> list[ContainerState]:
    """What the containerizer is told on recovery: every checkpointed run's container.

    A run's resources are its executor's plus those of its tasks not yet terminal;
    its pid is given only when the executor is still the same process (``alive``),
    since a dead one's number may have been reused by a stranger.
    """
    states = []
    for framework in state.frameworks:
        for rex in framework.executors:
            held = _resources(rex.info.resources)
            for rtask in rex.tasks:
                if not rtask.updates or rtask.updates[-1].state not in TERMINAL_STATES:
                    held = held + _resources(rtask.info.resources)
            scalars, ranges = container_limits(held)
            pid = rex.pid if rex.container_id in alive else None
            states.append(ContainerState(rex.container_id, pid, scalars, rex.directory, ranges))
    return states


def _resources(items: list[v1.Resource]) -> Resources:
    return Resources.from_json(codec.to_builtins(items)) if items else Resources.empty()


def alive_containers(state: checkpoint.RecoveredState) -> set[str]:
    """Containers whose checkpointed executor process is still the same process (I/O)."""
    return {
        rex.container_id
        for framework in state.frameworks for rex in framework.executors
        if rex.pid is not None and checkpoint.same_process(rex.pid, rex.start_time)
    }
