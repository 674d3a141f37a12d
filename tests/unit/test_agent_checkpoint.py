"""Agent checkpoints (write, read back) and rebuilding the core from them."""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from mesos.agent import checkpoint, recovery
from mesos.agent.core import AgentCore, CoreConfig
from mesos.agent.events import (
    DestroyContainer,
    ExecutorExited,
    ExecutorSubscribed,
    ForwardStatus,
    ReregistrationTimeout,
    SendToExecutor,
)
from mesos.v1 import mesos as v1

AGENT, FW, EX, CID = "agent-1", "fw-1", "ex-1", "c1"


def fw_info() -> v1.FrameworkInfo:
    return v1.FrameworkInfo(user="u", name="f", id=v1.FrameworkID(value=FW), checkpoint=True)


def ex_info(executor_id: str = EX) -> v1.ExecutorInfo:
    return v1.ExecutorInfo(executor_id=v1.ExecutorID(value=executor_id),
                           framework_id=v1.FrameworkID(value=FW),
                           command=v1.CommandInfo(value="run"))


def task_info(task_id: str) -> v1.TaskInfo:
    return v1.TaskInfo(name=task_id, task_id=v1.TaskID(value=task_id),
                       agent_id=v1.AgentID(value=AGENT))


def status(task_id: str, state: str) -> v1.TaskStatus:
    return v1.TaskStatus(task_id=v1.TaskID(value=task_id), state=state,  # type: ignore[arg-type]
                         uuid=uuid.uuid4().bytes, source="SOURCE_EXECUTOR")


def write_executor(cp: checkpoint.Checkpointer, executor_id: str = EX,
                   container_id: str = CID, pid: int | None = None) -> None:
    cp.agent(AGENT)
    cp.framework(AGENT, fw_info())
    cp.executor(AGENT, FW, ex_info(executor_id), container_id, command_executor=False,
                role="*", directory=f"/sandbox/{container_id}")
    if pid is not None:
        cp.pid(AGENT, FW, executor_id, container_id, pid)


# ---------------------------------------------------------------------- checkpoint.py


def test_no_checkpoints_is_nothing_to_recover(tmp_path: Path) -> None:
    assert checkpoint.read_state(str(tmp_path)) is None


def test_layout_and_round_trip(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp, pid=os.getpid())
    cp.task(AGENT, FW, EX, CID, task_info("t1"))
    running, finished = status("t1", "TASK_RUNNING"), status("t1", "TASK_FINISHED")
    cp.update(AGENT, FW, EX, CID, running)
    cp.ack(AGENT, FW, EX, CID, "t1", running.uuid or b"")
    cp.update(AGENT, FW, EX, CID, finished)

    meta = tmp_path / "meta" / "slaves"
    assert (meta / "latest").read_text() == AGENT
    run = meta / AGENT / "frameworks" / FW / "executors" / EX / "runs" / CID
    assert (meta / AGENT / "frameworks" / FW / "framework.info").exists()
    assert (run.parents[1] / "executor.info").exists()
    assert (run / "pids" / "forked.pid").read_text().split()[0] == str(os.getpid())
    assert len((run / "tasks" / "t1" / "task.updates").read_text().splitlines()) == 3
    assert not list(tmp_path.rglob(".*.tmp"))  # no temporary file left behind

    state = checkpoint.read_state(str(tmp_path))
    assert state is not None and state.agent_id == AGENT
    (framework,) = state.frameworks
    assert framework.info == fw_info()
    (executor,) = framework.executors
    assert (executor.info, executor.container_id, executor.role) == (ex_info(), CID, "*")
    assert executor.pid == os.getpid() and checkpoint.same_process(os.getpid(),
                                                                   executor.start_time)
    (task,) = executor.tasks
    assert task.info == task_info("t1")
    assert task.updates == [running, finished]
    assert task.unacknowledged() == [finished]


def test_a_torn_last_update_is_dropped(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp)
    cp.task(AGENT, FW, EX, CID, task_info("t1"))
    running = status("t1", "TASK_RUNNING")
    cp.update(AGENT, FW, EX, CID, running)
    path = next(tmp_path.rglob("task.updates"))
    with open(path, "ab") as f:
        f.write(b'{"update":{"task_id":')  # the crash came mid-append
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None
    assert state.frameworks[0].executors[0].tasks[0].updates == [running]


def test_a_corrupt_checkpoint_fails_strict_and_is_skipped_otherwise(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp)
    framework = next(tmp_path.rglob("framework.info"))
    framework.write_text("{not json")
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.read_state(str(tmp_path))
    state = checkpoint.read_state(str(tmp_path), strict=False)
    assert state is not None and state.frameworks == [] and len(state.errors) == 1


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = str(tmp_path / "a" / "b.info")
    checkpoint.atomic_write(path, b"first, longer content")
    checkpoint.atomic_write(path, b"second")
    assert Path(path).read_bytes() == b"second"
    assert os.listdir(tmp_path / "a") == ["b.info"]


def test_same_process_checks_the_start_time() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = checkpoint.process_start_time(child.pid)
        assert start is not None
        assert checkpoint.same_process(child.pid, start)
        assert not checkpoint.same_process(child.pid, start + 1)  # a recycled pid
    finally:
        child.kill()
        child.wait()
    assert not checkpoint.same_process(child.pid, start)
    assert checkpoint.process_start_time(child.pid) is None


def test_removing_a_framework_removes_its_checkpoints(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp)
    cp.remove_framework(AGENT, FW)
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None and state.frameworks == []


def test_removing_a_run_keeps_the_other_runs(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp, container_id="c1")
    write_executor(cp, container_id="c2")
    cp.remove_run(AGENT, FW, EX, "c2")
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None
    assert [e.container_id for e in state.frameworks[0].executors] == ["c1"]
    cp.remove_run(AGENT, FW, EX, "c1")
    assert not (tmp_path / "meta" / "slaves" / AGENT / "frameworks" / FW / "executors"
                / EX).exists()
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None and state.frameworks[0].executors == []


# ---------------------------------------------------------------------- recovery.py


def new_core() -> AgentCore:
    counter = itertools.count(1)
    return AgentCore(
        CoreConfig(work_dir="/work", command_executor_argv=("/py",),
                   default_executor_argv=("/py",)),
        v1.AgentInfo(hostname="h", port=5051),
        new_container_id=lambda: f"new{next(counter)}",
        new_uuid=lambda: next(counter).to_bytes(16, "big"),
    )


def recovered(tmp_path: Path) -> checkpoint.RecoveredState:
    """Executor ex-1 (c1) with t1 running, t2 finished unacknowledged, t3 done; ex-2 (c2)
    with t4 running."""
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp, pid=12345)
    write_executor(cp, "ex-2", "c2", pid=12346)
    for executor_id, cid, task_id, states, acked in [
        (EX, CID, "t1", ["TASK_RUNNING"], 1),
        (EX, CID, "t2", ["TASK_RUNNING", "TASK_FINISHED"], 1),
        (EX, CID, "t3", ["TASK_RUNNING", "TASK_FINISHED"], 2),
        ("ex-2", "c2", "t4", ["TASK_STARTING", "TASK_RUNNING"], 0),
    ]:
        cp.task(AGENT, FW, executor_id, cid, task_info(task_id))
        for i, state in enumerate(states):
            update = status(task_id, state)
            cp.update(AGENT, FW, executor_id, cid, update)
            if i < acked:
                cp.ack(AGENT, FW, executor_id, cid, task_id, update.uuid or b"")
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None
    return state


def test_restore_rebuilds_frameworks_executors_and_tasks(tmp_path: Path) -> None:
    core = new_core()
    restored = recovery.restore(core, recovered(tmp_path), alive={CID})
    core.validate()
    assert core.agent_id == AGENT
    executor = core.executor(FW, EX)
    assert executor is not None
    assert (executor.state, executor.connected, executor.pid) == ("RUNNING", False, 12345)
    assert set(executor.launched) == {"t1"} and set(executor.terminated) == {"t2"}
    assert [t.id for t in executor.completed] == ["t3"]
    assert executor.launched["t1"].state == "TASK_RUNNING"
    assert restored.live == [(FW, EX, CID, 12345)]
    assert restored.dead == [(FW, "ex-2", "c2")]
    pending = [(s.task_id.value, s.state) for _, s in restored.unacknowledged]
    assert pending == [("t2", "TASK_FINISHED"), ("t4", "TASK_STARTING"),
                       ("t4", "TASK_RUNNING")]


def test_a_recovered_executor_that_is_gone_fails_its_live_tasks(tmp_path: Path) -> None:
    core = new_core()
    recovery.restore(core, recovered(tmp_path), alive={CID})
    effects = core.handle(ExecutorExited(FW, "ex-2", "c2", None), 1.0)
    failed = [e.status for e in effects if isinstance(e, ForwardStatus)]
    assert [(s.task_id.value, s.state) for s in failed] == [("t4", "TASK_FAILED")]
    core.validate()


def test_a_recovered_executor_resubscribes(tmp_path: Path) -> None:
    core = new_core()
    recovery.restore(core, recovered(tmp_path), alive={CID, "c2"})
    effects = core.handle(ExecutorSubscribed(FW, EX, (task_info("t1"),), ()), 1.0)
    assert [e.event.type for e in effects if isinstance(e, SendToExecutor)] == ["SUBSCRIBED"]
    executor = core.executor(FW, EX)
    assert executor is not None and executor.connected
    # Subscribed in time: the re-registration timeout does nothing to it.
    assert core.handle(ReregistrationTimeout(FW, EX, CID), 2.0) == []


def test_an_executor_that_does_not_resubscribe_is_destroyed(tmp_path: Path) -> None:
    core = new_core()
    recovery.restore(core, recovered(tmp_path), alive={CID, "c2"})
    effects = core.handle(ReregistrationTimeout(FW, "ex-2", "c2"), 1.0)
    assert effects == [DestroyContainer(FW, "ex-2", "c2")]
    effects = core.handle(ExecutorExited(FW, "ex-2", "c2", None), 2.0)
    failed = [e.status for e in effects if isinstance(e, ForwardStatus)]
    assert [(s.state, s.reason) for s in failed] == [
        ("TASK_FAILED", "REASON_EXECUTOR_REREGISTRATION_TIMEOUT")]
    core.validate()


def test_an_executor_with_nothing_left_and_no_process_is_not_restored(tmp_path: Path) -> None:
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp, pid=12345)
    cp.task(AGENT, FW, EX, CID, task_info("t1"))
    done = status("t1", "TASK_FINISHED")
    cp.update(AGENT, FW, EX, CID, done)
    cp.ack(AGENT, FW, EX, CID, "t1", done.uuid or b"")
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None
    core = new_core()
    restored = recovery.restore(core, state, alive=set())
    assert core.frameworks == {} and restored.dead == [] and restored.live == []
