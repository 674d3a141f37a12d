"""The agent core: executor and task life cycles as events in, effects out (no I/O)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from mesos.agent.builtin_executors import command_executor_name
from mesos.agent.core import AgentCore, CoreConfig
from mesos.agent.events import (
    CheckpointTasks,
    CloseExecutorStream,
    DestroyContainer,
    Effect,
    ExecutorDisconnected,
    ExecutorExited,
    ExecutorLaunchFailed,
    ExecutorMessage,
    ExecutorMessageToMaster,
    ExecutorStarted,
    ExecutorSubscribed,
    ExecutorUpdate,
    ExitedExecutor,
    ForwardStatus,
    FrameworkMessage,
    FrameworksRemoved,
    KillTask,
    LaunchExecutor,
    Registered,
    RegistrationTimeout,
    RunTask,
    RunTaskGroup,
    SendToExecutor,
    ShutdownAll,
    ShutdownContainer,
    ShutdownExecutor,
    ShutdownFramework,
    UpdateAcknowledged,
    UpdateContainer,
)
from mesos.v1 import executor as ev1
from mesos.v1 import mesos as v1

FW = "fw-1"
WORK = "/work"


class Harness:
    """A core with deterministic ids that checks its invariants after every step."""

    def __init__(self) -> None:
        counter = itertools.count(1)
        self.core = AgentCore(
            CoreConfig(
                work_dir=WORK,
                command_executor_argv=("/py", "-S", "-I", "/x/command.py"),
                default_executor_argv=("/py", "-S", "-I", "/x/default.py"),
                shutdown_grace_period=5.0,
                registration_timeout=60.0,
            ),
            v1.AgentInfo(hostname="h", port=5051),
            new_container_id=lambda: f"c{next(counter)}",
            new_uuid=lambda: next(counter).to_bytes(16, "big"),
        )
        self.now = 1000.0
        self.do(Registered("agent-1"))

    def do(self, event: Any) -> list[Effect]:
        self.now += 1.0
        effects = self.core.handle(event, self.now)
        self.core.validate()
        return effects


def framework_info(*caps: str) -> v1.FrameworkInfo:
    return v1.FrameworkInfo(
        user="u", name="f", id=v1.FrameworkID(value=FW), roles=["web"],
        capabilities=[v1.FrameworkCapability(type=c) for c in caps],  # type: ignore[arg-type]
    )


def command_task(task_id: str, cmd: str = "echo hello") -> v1.TaskInfo:
    return v1.TaskInfo(
        name=task_id, task_id=v1.TaskID(value=task_id), agent_id=v1.AgentID(value="agent-1"),
        command=v1.CommandInfo(value=cmd),
        resources=[v1.Resource(name="cpus", type="SCALAR", scalar=v1.Scalar(value=1.0),
                               allocation_info=v1.AllocationInfo(role="web"))],
    )


def custom_task(task_id: str, executor_id: str = "ex") -> v1.TaskInfo:
    executor = v1.ExecutorInfo(
        executor_id=v1.ExecutorID(value=executor_id),
        command=v1.CommandInfo(value="./my-executor"),
        shutdown_grace_period=v1.DurationInfo(nanoseconds=2_000_000_000),
    )
    return v1.TaskInfo(
        name=task_id, task_id=v1.TaskID(value=task_id), agent_id=v1.AgentID(value="agent-1"),
        executor=executor,
    )


def update(task_id: str, state: str, n: int) -> v1.TaskStatus:
    return v1.TaskStatus(task_id=v1.TaskID(value=task_id), state=state,  # type: ignore[arg-type]
                         source="SOURCE_EXECUTOR", uuid=(10_000 + n).to_bytes(16, "big"))


def only(effects: list[Effect], kind: type) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def event_of(effect: Effect) -> ev1.Event:
    assert isinstance(effect, SendToExecutor)
    return effect.event


def sent(effects: list[Effect]) -> list[str]:
    return [e.event.type for e in effects if isinstance(e, SendToExecutor)]


@pytest.fixture
def h() -> Harness:
    return Harness()


def start_command_task(h: Harness, task_id: str = "t1") -> LaunchExecutor:
    effects = h.do(RunTask(framework_info(), command_task(task_id)))
    (launch,) = only(effects, LaunchExecutor)
    h.do(ExecutorStarted(FW, task_id, launch.container_id, 4242))
    return launch


def test_command_task_full_life_cycle(h: Harness) -> None:
    launch = start_command_task(h)
    info = launch.executor_info
    assert launch.command_executor and launch.role == "web"
    assert info.executor_id.value == "t1" and info.source == "t1"
    assert info.name == "Command Executor (Task: t1) (Command: sh -c 'echo hello')"
    assert info.command is not None and info.command.arguments == [
        "/py", "-S", "-I", "/x/command.py"]
    assert {r.name: r.scalar.value for r in info.resources if r.scalar} == {
        "cpus": 0.1, "mem": 32.0}
    assert launch.directory == f"{WORK}/slaves/agent-1/frameworks/{FW}/executors/t1/runs/c1"
    executor = h.core.executor(FW, "t1")
    assert executor is not None and [t.state for t in executor.queued_tasks()] == [
        "TASK_STAGING"]

    effects = h.do(ExecutorSubscribed(FW, "t1"))
    assert sent(effects) == ["SUBSCRIBED", "LAUNCH"]
    subscribed = event_of(effects[0]).subscribed
    assert subscribed is not None
    assert subscribed.agent_info.id == v1.AgentID(value="agent-1")
    assert subscribed.framework_info.id == v1.FrameworkID(value=FW)
    assert subscribed.container_id == v1.ContainerID(value="c1")
    assert executor.state == "RUNNING" and list(executor.launched) == ["t1"]

    effects = h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_RUNNING", 1)))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.ack_executor == "t1"
    assert fwd.status.agent_id == v1.AgentID(value="agent-1")
    assert fwd.status.executor_id == v1.ExecutorID(value="t1")
    assert fwd.status.timestamp == h.now
    assert fwd.status.container_status == v1.ContainerStatus(
        container_id=v1.ContainerID(value="c1"), executor_pid=4242)

    h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_FINISHED", 2)))
    assert list(executor.terminated) == ["t1"]
    effects = h.do(ExecutorExited(FW, "t1", "c1", 0))
    assert only(effects, DestroyContainer) and only(effects, CloseExecutorStream)
    assert only(effects, ExitedExecutor) == []  # command executors stay unknown to the master
    assert only(effects, ForwardStatus) == []  # nothing live to fail
    assert h.core.executor(FW, "t1") is executor  # waits for the terminal ack

    effects = h.do(UpdateAcknowledged(FW, "t1", "TASK_FINISHED"))
    assert only(effects, FrameworksRemoved) == [FrameworksRemoved((FW,))]
    assert FW not in h.core.frameworks
    (done,) = h.core.completed_frameworks
    assert [t.id for t in done.completed_executors[0].completed] == ["t1"]
    assert h.core.terminal_counts["TASK_FINISHED"] == 1


def test_later_tasks_of_a_subscribed_executor_launch_at_once(h: Harness) -> None:
    effects = h.do(RunTask(framework_info(), custom_task("a")))
    (launch,) = only(effects, LaunchExecutor)
    assert not launch.command_executor
    assert launch.executor_info.framework_id == v1.FrameworkID(value=FW)
    h.do(RunTask(framework_info(), custom_task("b")))
    assert sent(h.do(ExecutorSubscribed(FW, "ex"))) == ["SUBSCRIBED", "LAUNCH", "LAUNCH"]
    effects = h.do(RunTask(framework_info(), custom_task("c")))
    assert only(effects, LaunchExecutor) == [] and sent(effects) == ["LAUNCH"]


def test_kill_of_a_queued_task_is_answered_by_the_agent(h: Harness) -> None:
    start_command_task(h, "q")
    effects = h.do(KillTask(FW, "q"))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.state == "TASK_KILLED"
    assert fwd.status.reason == "REASON_TASK_KILLED_DURING_LAUNCH"
    assert fwd.status.source == "SOURCE_AGENT" and fwd.status.uuid is not None
    # Nothing left to run: the executor is torn down.
    assert only(effects, DestroyContainer)
    executor = h.core.executor(FW, "q")
    assert executor is not None and executor.state == "TERMINATING"
    # It subscribing late only gets SHUTDOWN.
    assert sent(h.do(ExecutorSubscribed(FW, "q"))) == ["SHUTDOWN"]


def test_kill_of_a_running_task_goes_to_the_executor(h: Harness) -> None:
    start_command_task(h)
    h.do(ExecutorSubscribed(FW, "t1"))
    policy = v1.KillPolicy(grace_period=v1.DurationInfo(nanoseconds=1))
    effects = h.do(KillTask(FW, "t1", policy))
    assert sent(effects) == ["KILL"]
    kill = event_of(effects[0]).kill
    assert kill is not None
    assert kill.task_id.value == "t1" and kill.kill_policy == policy


@pytest.mark.parametrize(("caps", "state"), [((), "TASK_LOST"),
                                             (("PARTITION_AWARE",), "TASK_DROPPED")])
def test_kill_of_an_unknown_task(h: Harness, caps: tuple[str, ...], state: str) -> None:
    h.do(RunTask(framework_info(*caps), custom_task("a")))
    (fwd,) = only(h.do(KillTask(FW, "nope")), ForwardStatus)
    assert fwd.status.state == state and fwd.status.reason == "REASON_EXECUTOR_TERMINATED"
    assert fwd.status.source == "SOURCE_AGENT"
    # A framework the agent does not know: nothing (as Mesos).
    assert h.do(KillTask("other-fw", "x")) == []


def test_registration_timeout_fails_the_tasks(h: Harness) -> None:
    launch = start_command_task(h)
    assert h.do(RegistrationTimeout(FW, "t1", "stale-container")) == []
    effects = h.do(RegistrationTimeout(FW, "t1", launch.container_id))
    assert only(effects, DestroyContainer)
    effects = h.do(ExecutorExited(FW, "t1", launch.container_id, 9))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.state == "TASK_FAILED"
    assert fwd.status.reason == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    # Subscribed in time: the timer is harmless.
    launch = start_command_task(h, "t2")
    h.do(ExecutorSubscribed(FW, "t2"))
    assert h.do(RegistrationTimeout(FW, "t2", launch.container_id)) == []


def test_the_container_follows_its_tasks(h: Harness) -> None:
    """Tasks added to a running executor or ending resize its container (Mesos'
    containerizer update); a new executor's container is sized when it is launched."""
    launch = running_custom_executor(h, "a")
    resize = UpdateContainer(FW, "ex", launch.container_id)
    assert only(h.do(RunTask(framework_info(), custom_task("b"))), UpdateContainer) == [resize]
    assert only(h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_RUNNING", 1))),
                UpdateContainer) == []
    assert only(h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_FINISHED", 2))),
                UpdateContainer) == [resize]
    # Once the executor is gone there is nothing to resize.
    effects = h.do(ExecutorExited(FW, "ex", launch.container_id, 9))
    assert only(effects, UpdateContainer) == []
    assert only(h.do(RunTask(framework_info(), custom_task("c", "ex2"))), UpdateContainer) == []


def test_a_container_limitation_fails_the_tasks_with_its_reason(h: Harness) -> None:
    """A container ended by a limit (an OOM kill): its live tasks fail with that reason,
    from the agent, as in Mesos."""
    launch = running_custom_executor(h, "a")
    h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_RUNNING", 1)))
    effects = h.do(ExecutorExited(FW, "ex", launch.container_id, 9,
                                  "REASON_CONTAINER_LIMITATION_MEMORY", "Memory limit exceeded"))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.state == "TASK_FAILED" and fwd.status.source == "SOURCE_AGENT"
    assert fwd.status.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert fwd.status.message == "Memory limit exceeded"


def test_an_executor_reported_failure_carries_the_container_limitation(h: Harness) -> None:
    """The kernel's OOM kill can reach the executor first: its TASK_FAILED then takes
    the limitation's reason (same uuid, so the executor's acknowledgement still
    matches); other states are left as they are."""
    running_custom_executor(h, "a", "b")
    limitation = ("REASON_CONTAINER_LIMITATION_MEMORY", "Memory limit exceeded")
    failed = update("a", "TASK_FAILED", 1)
    (fwd,) = only(h.do(ExecutorUpdate(FW, "ex", failed, limitation)), ForwardStatus)
    assert fwd.status.reason == "REASON_CONTAINER_LIMITATION_MEMORY"
    assert fwd.status.source == "SOURCE_AGENT" and fwd.status.uuid == failed.uuid
    assert fwd.status.message == "Memory limit exceeded"
    (fwd,) = only(h.do(ExecutorUpdate(FW, "ex", update("b", "TASK_FINISHED", 2), limitation)),
                  ForwardStatus)
    assert fwd.status.reason is None and fwd.status.state == "TASK_FINISHED"


def test_executor_exit_fails_live_tasks_and_tells_the_master(h: Harness) -> None:
    launch = only(h.do(RunTask(framework_info(), custom_task("a"))), LaunchExecutor)[0]
    h.do(ExecutorSubscribed(FW, "ex"))
    h.do(RunTask(framework_info(), custom_task("b")))
    h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_RUNNING", 1)))
    h.do(ExecutorUpdate(FW, "ex", update("b", "TASK_FINISHED", 2)))
    effects = h.do(ExecutorExited(FW, "ex", launch.container_id, 256))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.task_id.value == "a" and fwd.status.state == "TASK_FAILED"
    assert fwd.status.reason == "REASON_EXECUTOR_TERMINATED"
    assert fwd.status.source == "SOURCE_AGENT"
    assert fwd.status.uuid not in (update("a", "x", 1).uuid, None)
    assert only(effects, ExitedExecutor) == [ExitedExecutor(FW, "ex", 256)]
    # A second exit report (stale) changes nothing.
    assert h.do(ExecutorExited(FW, "ex", launch.container_id, 256)) == []
    h.do(UpdateAcknowledged(FW, "b", "TASK_FINISHED"))
    assert FW in h.core.frameworks
    effects = h.do(UpdateAcknowledged(FW, "a", "TASK_FAILED"))
    assert FW not in h.core.frameworks and only(effects, FrameworksRemoved)


def test_shutdown_executor_uses_its_grace_period(h: Harness) -> None:
    launch = only(h.do(RunTask(framework_info(), custom_task("a"))), LaunchExecutor)[0]
    h.do(ExecutorSubscribed(FW, "ex"))
    effects = h.do(ShutdownExecutor(FW, "ex"))
    assert sent(effects) == ["SHUTDOWN"]
    assert only(effects, ShutdownContainer) == [
        ShutdownContainer(FW, "ex", launch.container_id, 2.0)]
    assert h.do(ShutdownExecutor(FW, "ex")) == []  # already terminating
    assert h.do(KillTask(FW, "a")) == []  # ignored while terminating
    effects = h.do(ExecutorExited(FW, "ex", launch.container_id, 9))
    assert [f.status.state for f in only(effects, ForwardStatus)] == ["TASK_FAILED"]


def test_shutdown_framework_drops_everything(h: Harness) -> None:
    a = only(h.do(RunTask(framework_info(), custom_task("a", "e1"))), LaunchExecutor)[0]
    b = only(h.do(RunTask(framework_info(), custom_task("b", "e2"))), LaunchExecutor)[0]
    h.do(ExecutorSubscribed(FW, "e1"))
    effects = h.do(ShutdownFramework(FW))
    assert sent(effects) == ["SHUTDOWN"]  # e1 is subscribed; e2 is still registering
    assert only(effects, DestroyContainer) == [DestroyContainer(FW, "e2", b.container_id)]
    # Exits of a terminating framework's executors produce no task updates.
    assert only(h.do(ExecutorExited(FW, "e1", a.container_id, 0)), ForwardStatus) == []
    effects = h.do(ExecutorExited(FW, "e2", b.container_id, 9))
    assert only(effects, FrameworksRemoved) and FW not in h.core.frameworks
    # A task for the removed framework starts it afresh.
    assert only(h.do(RunTask(framework_info(), custom_task("c", "e3"))), LaunchExecutor)


def test_task_group_runs_on_the_default_executor(h: Harness) -> None:
    executor = v1.ExecutorInfo(executor_id=v1.ExecutorID(value="dx"), type="DEFAULT")
    tasks = [command_task("g1", "sleep 1"), command_task("g2", "sleep 2")]
    effects = h.do(RunTaskGroup(framework_info(), executor, tasks))
    (launch,) = only(effects, LaunchExecutor)
    assert launch.executor_info.command is not None
    assert launch.executor_info.command.arguments[-1] == "/x/default.py"
    effects = h.do(ExecutorSubscribed(FW, "dx"))
    assert sent(effects) == ["SUBSCRIBED", "LAUNCH_GROUP"]
    group = event_of(effects[1]).launch_group
    assert group is not None
    assert [t.task_id.value for t in group.task_group.tasks] == ["g1", "g2"]


def test_killing_one_queued_group_member_kills_the_group(h: Harness) -> None:
    executor = v1.ExecutorInfo(executor_id=v1.ExecutorID(value="dx"), type="DEFAULT")
    h.do(RunTaskGroup(framework_info(), executor, [command_task("g1"), command_task("g2")]))
    effects = h.do(KillTask(FW, "g2"))
    assert sorted(f.status.task_id.value for f in only(effects, ForwardStatus)) == ["g1", "g2"]


def test_executor_call_errors(h: Harness) -> None:
    start_command_task(h)
    assert h.core.executor_call_error("nope", "t1", "SUBSCRIBE") == (
        400, "Framework cannot be found")
    assert h.core.executor_call_error(FW, "nope", "SUBSCRIBE") == (
        400, "Executor cannot be found")
    assert h.core.executor_call_error(FW, "t1", "UPDATE") == (403, "Executor is not subscribed")
    assert h.core.executor_call_error(FW, "t1", "SUBSCRIBE") is None
    h.do(ExecutorSubscribed(FW, "t1"))
    assert h.core.executor_call_error(FW, "t1", "UPDATE") is None


def test_messages_both_ways(h: Harness) -> None:
    h.do(RunTask(framework_info(), custom_task("a")))
    assert h.do(FrameworkMessage(FW, "ex", b"hi")) == []
    assert h.core.invalid_framework_messages == 1
    h.do(ExecutorSubscribed(FW, "ex"))
    assert sent(h.do(FrameworkMessage(FW, "ex", b"hi"))) == ["MESSAGE"]
    assert h.do(ExecutorMessage(FW, "ex", b"yo")) == [ExecutorMessageToMaster(FW, "ex", b"yo")]


def test_launch_failure_fails_the_task(h: Harness) -> None:
    launch = only(h.do(RunTask(framework_info(), custom_task("a"))), LaunchExecutor)[0]
    effects = h.do(ExecutorLaunchFailed(FW, "ex", launch.container_id, "No such file"))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.state == "TASK_FAILED"
    assert fwd.status.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "No such file" in (fwd.status.message or "")


def test_task_for_a_terminating_executor_is_dropped(h: Harness) -> None:
    h.do(RunTask(framework_info(), custom_task("a")))
    h.do(ExecutorSubscribed(FW, "ex"))
    h.do(ShutdownExecutor(FW, "ex"))
    effects = h.do(RunTask(framework_info(), custom_task("b")))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.state == "TASK_LOST" and not only(effects, LaunchExecutor)


def test_shutdown_all_and_tasks_listing(h: Harness) -> None:
    start_command_task(h, "t1")
    h.do(RunTask(framework_info(), custom_task("a")))
    h.do(ExecutorSubscribed(FW, "ex"))
    assert sorted(t.id for t in h.core.tasks()) == ["a", "t1"]
    effects = h.do(ShutdownAll())
    assert sent(effects) == ["SHUTDOWN"] and len(only(effects, DestroyContainer)) == 1


def test_command_executor_name_truncates_long_commands() -> None:
    task = command_task("t", "while true ; do echo hi; done")
    assert command_executor_name(task) == (
        "Command Executor (Task: t) (Command: sh -c 'while true ;...')")
    task = v1.TaskInfo(name="t", task_id=v1.TaskID(value="t"), agent_id=v1.AgentID(value="a"),
                       command=v1.CommandInfo(shell=False, value="/bin/ls", arguments=["ls", "-l"]))
    assert command_executor_name(task) == "Command Executor (Task: t) (Command: [/bin/ls, ls, -l])"


# --------------------------------------------------------------------------- re-subscription


def running_custom_executor(h: Harness, *task_ids: str) -> LaunchExecutor:
    """Executor 'ex' subscribed, with the given tasks launched (still STAGING)."""
    launch = only(h.do(RunTask(framework_info(), custom_task(task_ids[0]))), LaunchExecutor)[0]
    for task_id in task_ids[1:]:
        h.do(RunTask(framework_info(), custom_task(task_id)))
    h.do(ExecutorSubscribed(FW, "ex"))
    return launch


def test_resubscribe_takes_over_the_unacknowledged_updates(h: Harness) -> None:
    running_custom_executor(h, "a")
    status = update("a", "TASK_RUNNING", 1)
    effects = h.do(ExecutorSubscribed(FW, "ex", (custom_task("a"),), (status,)))
    assert sent(effects)[0] == "SUBSCRIBED"
    (fwd,) = only(effects, ForwardStatus)
    # Through the UPDATE path: stamped, and acknowledged to the executor once taken over.
    assert fwd.ack_executor == "ex" and fwd.status.uuid == status.uuid
    assert fwd.status.agent_id == v1.AgentID(value="agent-1")
    executor = h.core.executor(FW, "ex")
    assert executor is not None and executor.launched["a"].state == "TASK_RUNNING"


@pytest.mark.parametrize(("caps", "state"), [((), "TASK_LOST"),
                                             (("PARTITION_AWARE",), "TASK_DROPPED")])
def test_resubscribe_drops_staging_tasks_the_executor_does_not_know(
    h: Harness, caps: tuple[str, ...], state: str
) -> None:
    h.do(RunTask(framework_info(*caps), custom_task("known")))
    h.do(RunTask(framework_info(*caps), custom_task("lost")))
    h.do(RunTask(framework_info(*caps), custom_task("running")))
    h.do(ExecutorSubscribed(FW, "ex"))
    h.do(ExecutorUpdate(FW, "ex", update("running", "TASK_RUNNING", 1)))
    effects = h.do(ExecutorSubscribed(FW, "ex", (custom_task("known"),)))
    (fwd,) = only(effects, ForwardStatus)
    assert fwd.status.task_id.value == "lost" and fwd.status.state == state
    assert fwd.status.source == "SOURCE_AGENT" and fwd.status.reason == "REASON_AGENT_RESTARTED"
    executor = h.core.executor(FW, "ex")
    assert executor is not None and sorted(executor.launched) == ["known", "running"]
    assert list(executor.terminated) == ["lost"]


def test_launch_and_kill_wait_for_a_disconnected_executor(h: Harness) -> None:
    running_custom_executor(h, "a")
    h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_RUNNING", 1)))
    assert h.do(ExecutorDisconnected(FW, "ex")) == []
    # Nothing is written to a stream that is not there: both wait.
    effects = h.do(RunTask(framework_info(), custom_task("b")))
    # Only checkpointed (so a restarted agent finds it queued too), and the container
    # grows to hold it.
    assert [type(e) for e in effects] == [CheckpointTasks, UpdateContainer]
    assert [t.task_id.value for t in only(effects, CheckpointTasks)[0].tasks] == ["b"]
    assert [t.id for t in h.core.executor(FW, "ex").queued_tasks()] == ["b"]
    assert h.do(KillTask(FW, "a")) == []
    effects = h.do(ExecutorSubscribed(FW, "ex"))
    assert sent(effects) == ["SUBSCRIBED", "LAUNCH", "KILL"]
    assert event_of(effects[1]).launch.task.task_id.value == "b"  # type: ignore[union-attr]
    assert event_of(effects[2]).kill.task_id.value == "a"  # type: ignore[union-attr]
    # Connected again: straight to the executor.
    assert sent(h.do(RunTask(framework_info(), custom_task("c")))) == ["LAUNCH"]


def test_kill_of_a_task_queued_for_a_disconnected_executor_keeps_the_executor(
    h: Harness,
) -> None:
    running_custom_executor(h, "a")
    h.do(ExecutorUpdate(FW, "ex", update("a", "TASK_FINISHED", 1)))
    h.do(UpdateAcknowledged(FW, "a", "TASK_FINISHED"))
    h.do(ExecutorDisconnected(FW, "ex"))
    h.do(RunTask(framework_info(), custom_task("b")))
    effects = h.do(KillTask(FW, "b"))
    assert [f.status.state for f in only(effects, ForwardStatus)] == ["TASK_KILLED"]
    executor = h.core.executor(FW, "ex")
    assert executor is not None and executor.state == "RUNNING" and sent(effects) == []


# --------------------------------------------------------------------------- subscribing late


def test_subscribe_while_terminating_gets_shutdown_and_the_stream_closed(h: Harness) -> None:
    running_custom_executor(h, "a")
    h.do(ShutdownExecutor(FW, "ex"))
    effects = h.do(ExecutorSubscribed(FW, "ex"))
    assert sent(effects) == ["SHUTDOWN"]
    assert only(effects, CloseExecutorStream) == [CloseExecutorStream(FW, "ex")]
    # An executor that is gone by the time its subscription is handled: closed too.
    assert h.do(ExecutorSubscribed(FW, "nope")) == [CloseExecutorStream(FW, "nope")]


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize("bad", ["", ".", "..", "../../x", "a/b", "a\\b", "a\x00b", "a\nb",
                                 "a\x7fb", "x" * 256])
@pytest.mark.parametrize("where", ["task", "executor", "framework", "group"])
def test_an_id_that_is_not_one_path_component_fails_the_task(
    h: Harness, bad: str, where: str
) -> None:
    info = framework_info()
    if where == "framework":
        info = v1.FrameworkInfo(user="u", name="f", id=v1.FrameworkID(value=bad))
    if where == "group":
        executor = v1.ExecutorInfo(executor_id=v1.ExecutorID(value="dx"), type="DEFAULT")
        tasks = [command_task("g1"), command_task(bad)]
        effects = h.do(RunTaskGroup(info, executor, tasks))
    else:
        task = (custom_task("t", bad) if where == "executor"
                else command_task(bad) if where == "task" else command_task("t"))
        tasks = [task]
        effects = h.do(RunTask(info, task))
    fwds = only(effects, ForwardStatus)
    assert len(fwds) == len(effects) == len(tasks)
    for fwd, task in zip(fwds, tasks, strict=True):
        assert fwd.status.task_id == task.task_id and fwd.status.state == "TASK_ERROR"
        assert fwd.status.reason == "REASON_TASK_INVALID"
        assert fwd.status.source == "SOURCE_AGENT" and fwd.status.uuid is not None
        assert "ID is invalid" in (fwd.status.message or "")
    assert h.core.frameworks == {}  # nothing made, no sandbox path


# --------------------------------------------------------------------------- executor updates


def test_an_update_after_the_terminal_one_leaves_the_task_alone(h: Harness) -> None:
    start_command_task(h, "t1")
    h.do(ExecutorSubscribed(FW, "t1"))
    h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_FINISHED", 1)))
    effects = h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_RUNNING", 2)))
    # The status-update manager refuses it; the core does not rewrite the task.
    assert [f.status.state for f in only(effects, ForwardStatus)] == ["TASK_RUNNING"]
    executor = h.core.executor(FW, "t1")
    assert executor is not None and executor.terminated["t1"].state == "TASK_FINISHED"
    assert [s.state for s in executor.terminated["t1"].statuses] == ["TASK_FINISHED"]
    assert h.core.valid_status_updates == 1


def test_a_duplicate_update_is_recorded_once(h: Harness) -> None:
    start_command_task(h, "t1")
    h.do(ExecutorSubscribed(FW, "t1"))
    h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_RUNNING", 1)))
    effects = h.do(ExecutorUpdate(FW, "t1", update("t1", "TASK_RUNNING", 1)))
    assert only(effects, ForwardStatus)[0].ack_executor == "t1"  # acknowledged again
    executor = h.core.executor(FW, "t1")
    assert executor is not None and len(executor.launched["t1"].statuses) == 1
    assert h.core.valid_status_updates == 1


def test_calls_of_a_terminated_executor_are_dropped(h: Harness) -> None:
    launch = running_custom_executor(h, "a")
    h.do(ExecutorExited(FW, "ex", launch.container_id, 0))
    assert h.do(ExecutorUpdate(FW, "ex", update("other", "TASK_RUNNING", 1))) == []
    assert h.core.invalid_status_updates == 1
    assert h.do(ExecutorMessage(FW, "ex", b"late")) == []


# --------------------------------------------------------------------------- master events


def test_run_task_without_a_framework_id_is_ignored(h: Harness) -> None:
    info = v1.FrameworkInfo(user="u", name="f")
    assert h.do(RunTask(info, command_task("t"))) == []
    assert h.core.frameworks == {}


def test_a_failed_master_event_leaves_no_half_made_framework() -> None:
    core = Harness().core
    core.agent_info = v1.AgentInfo(hostname="h", port=5051)  # not registered: cannot launch
    with pytest.raises(AssertionError):
        core.handle(RunTask(framework_info(), command_task("t")), 1.0)
    assert core.frameworks == {}
