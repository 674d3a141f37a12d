"""Agent checkpoints (write, read back) and rebuilding the core from them."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from mesos.agent import checkpoint, launcher, recovery
from mesos.agent.core import AgentCore, CoreConfig
from mesos.agent.events import (
    DestroyContainer,
    ExecutorExited,
    ExecutorSubscribed,
    ForwardStatus,
    Registered,
    ReregistrationTimeout,
    RunTask,
    SendToExecutor,
)
from mesos.agent.flags import FLAGS
from mesos.agent.service import Agent
from mesos.flags import parse_flags
from mesos.resources import Resources
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


def queued_state(tmp_path: Path, *, default_executor: bool = False) -> checkpoint.RecoveredState:
    """ex-1 (c1, pid 12345) took on q1 and q2 but had sent no update of either."""
    cp = checkpoint.Checkpointer(str(tmp_path))
    write_executor(cp, pid=12345)
    if default_executor:
        cp.executor(AGENT, FW, msgspec.structs.replace(ex_info(), type="DEFAULT"), CID,
                    command_executor=False, role="*", directory=f"/sandbox/{CID}")
    for task_id in ("q1", "q2"):
        cp.task(AGENT, FW, EX, CID, task_info(task_id))
    state = checkpoint.read_state(str(tmp_path))
    assert state is not None
    return state


def test_a_task_with_no_update_is_queued_again_and_sent_on_subscribing(tmp_path: Path) -> None:
    core = new_core()
    restored = recovery.restore(core, queued_state(tmp_path), alive={CID})
    core.validate()
    executor = core.executor(FW, EX)
    assert executor is not None and [t.id for t in executor.queued_tasks()] == ["q1", "q2"]
    assert executor.launched == {} and restored.unacknowledged == []
    # The executor got q1 just before the agent died (it names it): only q2 is sent.
    effects = core.handle(ExecutorSubscribed(FW, EX, (task_info("q1"),), ()), 1.0)
    events = [e.event for e in effects if isinstance(e, SendToExecutor)]
    assert [e.type for e in events] == ["SUBSCRIBED", "LAUNCH"]
    assert events[1].launch is not None and events[1].launch.task.task_id.value == "q2"
    assert not [e for e in effects if isinstance(e, ForwardStatus)]  # nothing lost
    assert sorted(executor.launched) == ["q1", "q2"] and executor.queued == []
    core.validate()


def test_queued_tasks_of_a_default_executor_go_back_as_one_group(tmp_path: Path) -> None:
    core = new_core()
    recovery.restore(core, queued_state(tmp_path, default_executor=True), alive={CID})
    effects = core.handle(ExecutorSubscribed(FW, EX, (), ()), 1.0)
    events = [e.event for e in effects if isinstance(e, SendToExecutor)]
    assert [e.type for e in events] == ["SUBSCRIBED", "LAUNCH_GROUP"]
    group = events[1].launch_group
    assert group is not None and [t.task_id.value for t in group.task_group.tasks] == [
        "q1", "q2"]


def test_queued_tasks_of_an_executor_that_is_gone_fail(tmp_path: Path) -> None:
    core = new_core()
    restored = recovery.restore(core, queued_state(tmp_path), alive=set())
    assert restored.dead == [(FW, EX, CID)]
    effects = core.handle(ExecutorExited(FW, EX, CID, None), 1.0)
    failed = [e.status for e in effects if isinstance(e, ForwardStatus)]
    assert [(s.task_id.value, s.state, s.reason) for s in failed] == [
        ("q1", "TASK_FAILED", "REASON_EXECUTOR_TERMINATED"),
        ("q2", "TASK_FAILED", "REASON_EXECUTOR_TERMINATED")]
    core.validate()


# ---------------------------------------------------------------------- the write queue


async def test_the_write_queue_keeps_order_and_holds_actions_back(tmp_path: Path) -> None:
    queue = checkpoint.WriteQueue()
    log: list[str] = []
    gate = threading.Event()

    def job(name: str, wait: bool = False) -> None:
        if wait:  # the first write is slow: everything after it must wait
            assert gate.wait(10)
        log.append(name)

    try:
        queue.then(lambda: log.append("a0"))  # nothing queued: runs at once
        assert log == ["a0"]
        queue.write(lambda: job("w1", wait=True), "w1")
        queue.then(lambda: log.append("a1"))

        def a2() -> None:
            log.append("a2")
            queue.write(lambda: job("w2"), "w2")  # asked for by a2: before a3
            queue.then(lambda: log.append("a2-after-w2"))

        queue.then(a2)
        queue.then(lambda: log.append("a3"))
        assert log == ["a0"] and not queue.idle
        gate.set()
        assert await queue.drain(10)
        assert log == ["a0", "w1", "a1", "a2", "w2", "a2-after-w2", "a3"]
        assert queue.idle
    finally:
        gate.set()
        queue.close()


async def test_a_failed_write_is_logged_and_counts_as_done(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = checkpoint.WriteQueue()
    done: list[str] = []

    def broken() -> None:
        raise OSError("disk full")

    try:
        queue.write(broken, "the broken thing")
        queue.then(lambda: done.append("after"))
        assert await queue.drain(10)
        assert done == ["after"]
        assert "Failed to checkpoint the broken thing: disk full" in caplog.text
    finally:
        queue.close()


class RecordingStream:
    """Stands in for an executor's event stream: keeps what the agent sends."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        self.events.append(json.loads(data))

    def close(self) -> None:
        pass

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


async def test_an_update_is_acknowledged_and_forwarded_only_once_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's ACK to the executor and the STATUS_UPDATE to the master wait for
    the update's checkpoint write, which runs off the event loop."""
    flags = parse_flags("mesos-agent", FLAGS, [
        "--master=127.0.0.1:1", f"--work_dir={tmp_path / 'work'}", "--launcher=posix"], {})
    agent = Agent(flags, resources=Resources.parse("cpus:1;mem:128"), attributes=[],
                  hostname="h", python=sys.executable)
    agent.dispatch(Registered(AGENT))
    agent.checkpointer.agent(AGENT)  # what subscribing to a master writes
    executor = v1.ExecutorInfo(executor_id=v1.ExecutorID(value=EX),
                               command=v1.CommandInfo(value="sleep 30"))
    info = msgspec.structs.replace(task_info("t1"), executor=executor)
    entered, gate = threading.Event(), threading.Event()
    try:
        agent.dispatch(RunTask(fw_info(), info))
        deadline = time.monotonic() + 15
        while not agent.processes and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert agent.processes, "the executor was not started"
        stream = RecordingStream()
        assert agent.executor_subscribed(FW, EX, stream)  # type: ignore[arg-type]
        assert await agent.checkpoints.drain(10)
        assert stream.types() == ["SUBSCRIBED", "LAUNCH"]
        agent.updates.resume(0.0)  # as if subscribed to a master
        posted: list[Any] = []
        monkeypatch.setattr(agent.link, "post", posted.append)
        write = agent.checkpointer.update

        def slow_update(*args: Any) -> None:
            entered.set()
            assert gate.wait(15)
            write(*args)

        monkeypatch.setattr(agent.checkpointer, "update", slow_update)
        running = status("t1", "TASK_RUNNING")
        agent.executor_update(FW, EX, running)
        assert await asyncio.to_thread(entered.wait, 15)
        # The write is under way (on the worker thread; the loop runs): nothing yet.
        assert stream.types() == ["SUBSCRIBED", "LAUNCH"] and posted == []
        gate.set()
        assert await agent.checkpoints.drain(15)
        assert stream.types() == ["SUBSCRIBED", "LAUNCH", "ACKNOWLEDGED"]
        assert [c.type for c in posted] == ["STATUS_UPDATE"]
        state = checkpoint.read_state(str(tmp_path / "work"))
        assert state is not None
        (task,) = state.frameworks[0].executors[0].tasks
        assert [u.uuid for u in task.updates] == [running.uuid]
    finally:
        gate.set()
        for process in list(agent.processes.values()):
            launcher.kill_session(process.pid)
        if agent._watchers:
            await asyncio.wait(set(agent._watchers), timeout=10)
        for handles in agent._timers.values():
            for handle in handles:
                handle.cancel()
        await agent.checkpoints.drain(10)
        agent.checkpoints.close()
