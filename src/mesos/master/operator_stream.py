"""The master's operator event stream (v1 operator ``SUBSCRIBE``).

Operators (the web UI, the CLI, tools) subscribe once and then follow the cluster
without polling: the first record is ``SUBSCRIBED`` with the whole ``GET_STATE``,
then ``HEARTBEAT`` and, as they happen, ``TASK_ADDED``, ``TASK_UPDATED``,
``AGENT_ADDED``, ``AGENT_UPDATED``, ``AGENT_REMOVED``, ``FRAMEWORK_ADDED``,
``FRAMEWORK_UPDATED`` and ``FRAMEWORK_REMOVED``.

The state snapshot and the subscription are taken in one step on the master's event
loop, so no event is missed or counted twice between them. Events are encoded only
when someone listens (the payload is built lazily), so an idle stream costs the
master nothing. Past ``--max_operator_event_stream_subscribers`` the oldest
subscriber is dropped, as Mesos does.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesos.http.streaming import EventStream
from mesos.master import operator_views
from mesos.master.base import MasterBase
from mesos.master.events import event
from mesos.master.state import Agent, Framework, Task
from mesos.v1 import codec
from mesos.v1 import mesos as v1

if TYPE_CHECKING:
    from mesos.master.service import Master

log = logging.getLogger("mesos.master")


class OperatorStreams:
    """The open operator subscriptions, oldest first."""

    def __init__(self, limit: int) -> None:
        self.limit = max(int(limit), 1)
        self._streams: collections.OrderedDict[int, EventStream] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def add(self, stream: EventStream) -> None:
        while len(self._streams) >= self.limit:
            _, oldest = self._streams.popitem(last=False)
            log.info("Dropping the oldest operator subscriber (limit %d)", self.limit)
            oldest.close()
        self._streams[id(stream)] = stream

    def remove(self, stream: EventStream) -> None:
        self._streams.pop(id(stream), None)

    def publish(self, type_: str, build: Callable[[], Any] | None = None) -> None:
        """Send one event to every subscriber; ``build`` makes its payload, and is
        only called when somebody listens."""
        if not self._streams:
            return
        data = event(type_, build() if build is not None else None)
        for key, stream in list(self._streams.items()):
            if stream.closed:
                del self._streams[key]
            else:
                stream.send(data)

    def close_all(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()


def subscribed(master: Master, heartbeat_interval: float) -> dict[str, Any]:
    return {"get_state": operator_views.get_state(master),
            "heartbeat_interval_seconds": heartbeat_interval}


class OperatorEventsMixin(MasterBase):
    """Where the master's parts report what operators are streamed."""

    operator_streams: OperatorStreams

    def _master(self) -> Master:
        return self  # type: ignore[return-value]  # only ever mixed into Master

    def _publish_task_added(self, task: Task) -> None:
        self.operator_streams.publish("TASK_ADDED", lambda: {"task": operator_views.task_json(task)})

    def _publish_task_updated(self, task: Task, status: v1.TaskStatus) -> None:
        self.operator_streams.publish("TASK_UPDATED", lambda: {
            "framework_id": {"value": task.framework_id},
            "status": codec.to_builtins(status),
            "state": task.state,
        })

    def _publish_agent_added(self, agent: Agent) -> None:
        self.operator_streams.publish(
            "AGENT_ADDED", lambda: {"agent": operator_views.agent_json(self._master(), agent)})

    def _publish_agent_updated(self, agent: Agent) -> None:
        self.operator_streams.publish(
            "AGENT_UPDATED", lambda: {"agent": operator_views.agent_json(self._master(), agent)})

    def _publish_agent_removed(self, agent_id: str) -> None:
        self.operator_streams.publish("AGENT_REMOVED", lambda: {"agent_id": {"value": agent_id}})

    def _publish_framework(self, type_: str, framework: Framework) -> None:
        """FRAMEWORK_ADDED or FRAMEWORK_UPDATED."""
        self.operator_streams.publish(
            type_, lambda: {"framework": operator_views.framework_json(self._master(), framework)})

    def _publish_framework_removed(self, framework: Framework) -> None:
        self.operator_streams.publish(
            "FRAMEWORK_REMOVED", lambda: {"framework_info": codec.to_builtins(framework.info)})
