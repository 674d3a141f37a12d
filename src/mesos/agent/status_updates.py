"""The status-update manager: reliable, ordered delivery of task updates to the master.

Pure and synchronous: time is passed in, nothing is sent from here. Every method
returns the :class:`Forward` effects (updates to POST to the master now); the agent
service executes them and asks :meth:`StatusUpdateManager.next_timeout` when to call
:meth:`StatusUpdateManager.timeouts` again.

Per task there is one stream, an ordered queue of updates. Only the head of a stream
is ever in flight: it is forwarded, and forwarded again after 10 s, 20 s, 40 s, ...
(capped at 10 min) until the scheduler's acknowledgement for exactly that update
(its ``uuid``) comes back through the master. Then the head is dropped and the next
update becomes the head and is forwarded at once. Acknowledgements for anything but
the head are stale (or duplicates) and ignored.

While the agent is disconnected from the master the manager is *paused*: updates
are queued but nothing is forwarded; :meth:`resume` forwards every head again.

A stream ends once the task's terminal update has been acknowledged; an update that
arrives for a task after its terminal update is refused (``AFTER_TERMINAL``).
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field

from mesos.v1.mesos import TERMINAL_STATES, TaskStatus

__all__ = [
    "DEFAULT_INITIAL_INTERVAL",
    "DEFAULT_MAX_INTERVAL",
    "Ack",
    "AckOutcome",
    "Forward",
    "Received",
    "StatusUpdateManager",
]

DEFAULT_INITIAL_INTERVAL = 10.0
DEFAULT_MAX_INTERVAL = 600.0


@dataclass(frozen=True, slots=True)
class Forward:
    """Effect: send ``status`` (of ``framework_id``) to the master as STATUS_UPDATE."""

    framework_id: str
    status: TaskStatus
    retry: bool = False  # True when this is a resend of an unacknowledged update


class Received(enum.Enum):
    """What :meth:`StatusUpdateManager.update` made of an update."""

    NEW = "new"
    DUPLICATE = "duplicate"  # same uuid already queued or acknowledged
    AFTER_TERMINAL = "after_terminal"  # the stream already holds a terminal update


class AckOutcome(enum.Enum):
    ACKED = "acked"
    STALE = "stale"  # not the update in flight (an older or unknown uuid)
    DUPLICATE = "duplicate"  # that update was acknowledged before
    UNKNOWN_STREAM = "unknown_stream"


@dataclass(frozen=True, slots=True)
class Ack:
    """Result of :meth:`StatusUpdateManager.acknowledge`."""

    outcome: AckOutcome
    status: TaskStatus | None = None  # the update that was acknowledged
    stream_closed: bool = False  # its terminal update is acknowledged: the task is done
    forwards: list[Forward] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Stream:
    framework_id: str
    task_id: str
    pending: collections.deque[TaskStatus] = field(default_factory=collections.deque)
    acknowledged: set[bytes] = field(default_factory=set)
    terminated: bool = False  # a terminal update has been received
    interval: float = 0.0  # current resend interval of the head
    deadline: float | None = None  # when the head is resent; None: not in flight

    def uuids(self) -> set[bytes]:
        return {s.uuid for s in self.pending if s.uuid is not None}


class StatusUpdateManager:
    """Ordered, acknowledged delivery of status updates, one stream per task."""

    def __init__(
        self,
        initial_interval: float = DEFAULT_INITIAL_INTERVAL,
        max_interval: float = DEFAULT_MAX_INTERVAL,
    ) -> None:
        if initial_interval <= 0 or max_interval < initial_interval:
            raise ValueError("need 0 < initial_interval <= max_interval")
        self.initial_interval = initial_interval
        self.max_interval = max_interval
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._paused = True  # nothing can be sent before the first subscription

    # ------------------------------------------------------------------ queries

    @property
    def paused(self) -> bool:
        return self._paused

    def pending(self, framework_id: str, task_id: str) -> list[TaskStatus]:
        """Updates of the task not yet acknowledged, head first."""
        stream = self._streams.get((framework_id, task_id))
        return list(stream.pending) if stream is not None else []

    def head(self, framework_id: str, task_id: str) -> TaskStatus | None:
        stream = self._streams.get((framework_id, task_id))
        if stream is None or not stream.pending:
            return None
        return stream.pending[0]

    def has_stream(self, framework_id: str, task_id: str) -> bool:
        return (framework_id, task_id) in self._streams

    def next_timeout(self) -> float | None:
        """Earliest time at which :meth:`timeouts` has something to resend."""
        if self._paused:
            return None
        deadlines = [s.deadline for s in self._streams.values() if s.deadline is not None]
        return min(deadlines) if deadlines else None

    def __len__(self) -> int:
        return sum(len(s.pending) for s in self._streams.values())

    # ------------------------------------------------------------------ mutators

    def update(
        self, framework_id: str, status: TaskStatus, now: float
    ) -> tuple[Received, list[Forward]]:
        """Queue ``status`` (its ``uuid`` must be set); forward it if it is the head."""
        if status.uuid is None:
            raise ValueError("a status update needs a uuid")
        key = (framework_id, status.task_id.value)
        stream = self._streams.get(key)
        if stream is None:
            stream = _Stream(framework_id, status.task_id.value)
            self._streams[key] = stream
        if status.uuid in stream.acknowledged or status.uuid in stream.uuids():
            return Received.DUPLICATE, []
        if stream.terminated:
            return Received.AFTER_TERMINAL, []
        stream.pending.append(status)
        if status.state in TERMINAL_STATES:
            stream.terminated = True
        if len(stream.pending) == 1:
            return Received.NEW, self._send_head(stream, now, retry=False)
        return Received.NEW, []

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes, now: float) -> Ack:
        """The scheduler acknowledged the update ``uuid`` of the task."""
        key = (framework_id, task_id)
        stream = self._streams.get(key)
        if stream is None:
            return Ack(AckOutcome.UNKNOWN_STREAM)
        if uuid in stream.acknowledged:
            return Ack(AckOutcome.DUPLICATE)
        if not stream.pending or stream.pending[0].uuid != uuid:
            return Ack(AckOutcome.STALE)
        acked = stream.pending.popleft()
        stream.acknowledged.add(uuid)
        stream.deadline = None
        if not stream.pending and stream.terminated:
            del self._streams[key]
            return Ack(AckOutcome.ACKED, acked, stream_closed=True)
        forwards = self._send_head(stream, now, retry=False) if stream.pending else []
        return Ack(AckOutcome.ACKED, acked, forwards=forwards)

    def timeouts(self, now: float) -> list[Forward]:
        """Resend every head whose deadline has passed, doubling its interval."""
        if self._paused:
            return []
        forwards: list[Forward] = []
        for stream in self._streams.values():
            if stream.deadline is None or stream.deadline > now or not stream.pending:
                continue
            stream.interval = min(stream.interval * 2, self.max_interval)
            stream.deadline = now + stream.interval
            forwards.append(Forward(stream.framework_id, stream.pending[0], retry=True))
        return forwards

    def pause(self) -> None:
        """The master is gone: keep queueing, send nothing."""
        self._paused = True
        for stream in self._streams.values():
            stream.deadline = None

    def resume(self, now: float) -> list[Forward]:
        """(Re)connected to a master: forward every head again, from the first interval."""
        self._paused = False
        forwards: list[Forward] = []
        for stream in self._streams.values():
            if stream.pending:
                forwards.extend(self._send_head(stream, now, retry=True))
        return forwards

    def remove_framework(self, framework_id: str) -> int:
        """Drop every stream of a framework (it was removed); returns how many."""
        keys = [k for k in self._streams if k[0] == framework_id]
        for key in keys:
            del self._streams[key]
        return len(keys)

    def _send_head(self, stream: _Stream, now: float, *, retry: bool) -> list[Forward]:
        stream.interval = self.initial_interval
        if self._paused:
            stream.deadline = None
            return []
        stream.deadline = now + stream.interval
        return [Forward(stream.framework_id, stream.pending[0], retry=retry)]

    # ------------------------------------------------------------------ checks

    def validate(self) -> None:
        """Assert the invariants (for tests)."""
        for (fw, task), stream in self._streams.items():
            assert (stream.framework_id, stream.task_id) == (fw, task)
            for status in stream.pending:
                assert status.task_id.value == task
                assert status.uuid is not None and status.uuid not in stream.acknowledged
            terminal = [s for s in stream.pending if s.state in TERMINAL_STATES]
            assert len(terminal) <= 1
            if terminal:
                assert stream.pending[-1] is terminal[0]
            if self._paused or not stream.pending:
                assert stream.deadline is None
            else:
                assert stream.deadline is not None
