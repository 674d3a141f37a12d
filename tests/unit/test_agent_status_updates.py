"""The status-update manager: ordering, resend timing, acknowledgements (no event loop)."""

from __future__ import annotations

import itertools

import pytest

from mesos.agent.status_updates import AckOutcome, Received, StatusUpdateManager
from mesos.v1 import mesos as v1

_counter = itertools.count(1)


def status(task: str, state: str = "TASK_RUNNING") -> v1.TaskStatus:
    return v1.TaskStatus(
        task_id=v1.TaskID(value=task),
        state=state,  # type: ignore[arg-type]
        uuid=next(_counter).to_bytes(16, "big"),
        source="SOURCE_EXECUTOR",
    )


def connected(initial: float = 10.0, cap: float = 600.0) -> StatusUpdateManager:
    sum_ = StatusUpdateManager(initial_interval=initial, max_interval=cap)
    assert sum_.resume(0.0) == []
    return sum_


def test_first_update_is_forwarded_at_once_and_later_ones_wait() -> None:
    m = connected()
    a, b = status("t1", "TASK_STARTING"), status("t1", "TASK_RUNNING")
    received, forwards = m.update("fw", a, now=1.0)
    assert received is Received.NEW
    assert [f.status for f in forwards] == [a]
    received, forwards = m.update("fw", b, now=2.0)
    assert received is Received.NEW and forwards == []
    assert m.pending("fw", "t1") == [a, b]
    m.validate()


def test_ack_of_head_sends_the_next_in_order() -> None:
    m = connected()
    a, b, c = status("t1", "TASK_STARTING"), status("t1"), status("t1", "TASK_FINISHED")
    for s in (a, b, c):
        m.update("fw", s, now=0.0)
    ack = m.acknowledge("fw", "t1", a.uuid or b"", now=1.0)
    assert ack.outcome is AckOutcome.ACKED and ack.status is a
    assert [f.status for f in ack.forwards] == [b]
    ack = m.acknowledge("fw", "t1", b.uuid or b"", now=2.0)
    assert [f.status for f in ack.forwards] == [c]
    ack = m.acknowledge("fw", "t1", c.uuid or b"", now=3.0)
    assert ack.outcome is AckOutcome.ACKED and ack.stream_closed
    assert not m.has_stream("fw", "t1")
    m.validate()


def test_streams_of_different_tasks_are_independent() -> None:
    m = connected()
    a, b = status("t1"), status("t2")
    assert [f.status for f in m.update("fw", a, 0.0)[1]] == [a]
    assert [f.status for f in m.update("fw", b, 0.0)[1]] == [b]


def test_resend_doubles_up_to_the_cap() -> None:
    m = connected(initial=10.0, cap=40.0)
    a = status("t1")
    m.update("fw", a, now=100.0)
    assert m.next_timeout() == 110.0
    assert m.timeouts(109.9) == []
    times = []
    now = 110.0
    for _ in range(5):
        forwards = m.timeouts(now)
        assert [f.status for f in forwards] == [a] and forwards[0].retry
        times.append(now)
        nxt = m.next_timeout()
        assert nxt is not None
        now = nxt
    # 10 s after the first send, then 20, 40, 40, 40 (capped).
    assert [round(t2 - t1, 6) for t1, t2 in itertools.pairwise([100.0, *times, now])] == [
        10.0, 20.0, 40.0, 40.0, 40.0, 40.0,
    ]
    m.validate()


def test_ack_resets_the_interval_for_the_next_update() -> None:
    m = connected(initial=10.0)
    a, b = status("t1"), status("t1", "TASK_FINISHED")
    m.update("fw", a, now=0.0)
    m.update("fw", b, now=0.0)
    m.timeouts(10.0)
    m.timeouts(30.0)
    m.acknowledge("fw", "t1", a.uuid or b"", now=31.0)
    assert m.next_timeout() == 41.0


def test_stale_and_duplicate_acks_are_ignored() -> None:
    m = connected()
    a, b = status("t1", "TASK_STARTING"), status("t1")
    m.update("fw", a, 0.0)
    m.update("fw", b, 0.0)
    # An ack for an update that is not the head is stale.
    assert m.acknowledge("fw", "t1", b.uuid or b"", 1.0).outcome is AckOutcome.STALE
    assert m.acknowledge("fw", "t1", bytes(16), 1.0).outcome is AckOutcome.STALE
    assert m.acknowledge("fw", "t1", a.uuid or b"", 1.0).outcome is AckOutcome.ACKED
    assert m.acknowledge("fw", "t1", a.uuid or b"", 2.0).outcome is AckOutcome.DUPLICATE
    assert m.acknowledge("fw", "other", a.uuid or b"", 2.0).outcome is AckOutcome.UNKNOWN_STREAM
    assert m.acknowledge("fw2", "t1", a.uuid or b"", 2.0).outcome is AckOutcome.UNKNOWN_STREAM
    assert m.pending("fw", "t1") == [b]
    m.validate()


def test_duplicate_update_and_update_after_terminal() -> None:
    m = connected()
    a, done = status("t1"), status("t1", "TASK_FINISHED")
    m.update("fw", a, 0.0)
    assert m.update("fw", a, 0.0) == (Received.DUPLICATE, [])
    m.update("fw", done, 0.0)
    late = status("t1", "TASK_RUNNING")
    assert m.update("fw", late, 0.0) == (Received.AFTER_TERMINAL, [])
    m.acknowledge("fw", "t1", a.uuid or b"", 1.0)
    # A duplicate of an acknowledged update is still a duplicate.
    assert m.update("fw", a, 1.0) == (Received.DUPLICATE, [])
    assert m.pending("fw", "t1") == [done]


def test_paused_keeps_updates_and_resume_sends_heads() -> None:
    m = StatusUpdateManager(initial_interval=5.0)
    assert m.paused
    a, b, c = status("t1"), status("t1", "TASK_FINISHED"), status("t2")
    assert m.update("fw", a, 0.0)[1] == []
    assert m.update("fw", b, 0.0)[1] == []
    assert m.update("fw", c, 0.0)[1] == []
    assert m.next_timeout() is None and m.timeouts(1000.0) == []
    m.validate()
    forwards = m.resume(50.0)
    assert sorted(f.status.task_id.value for f in forwards) == ["t1", "t2"]
    assert {f.status.uuid for f in forwards} == {a.uuid, c.uuid}
    assert m.next_timeout() == 55.0
    # Lose the master again: nothing is resent while paused.
    m.pause()
    assert m.timeouts(100.0) == [] and m.next_timeout() is None
    m.validate()
    # An ack can still arrive in between (it changes nothing that is sent).
    ack = m.acknowledge("fw", "t1", a.uuid or b"", 60.0)
    assert ack.outcome is AckOutcome.ACKED and ack.forwards == []
    assert [f.status for f in m.resume(70.0) if f.status.task_id.value == "t1"] == [b]


def test_remove_framework_drops_its_streams() -> None:
    m = connected()
    m.update("fw", status("t1"), 0.0)
    m.update("fw", status("t2"), 0.0)
    m.update("other", status("t3"), 0.0)
    assert m.remove_framework("fw") == 2
    assert len(m) == 1
    assert m.next_timeout() == 10.0


def test_update_needs_a_uuid() -> None:
    m = connected()
    with pytest.raises(ValueError):
        m.update("fw", v1.TaskStatus(task_id=v1.TaskID(value="t"), state="TASK_RUNNING"), 0.0)
