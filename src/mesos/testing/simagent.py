"""Simulated agents: many agents in one process, speaking the real agent channel.

Benchmarks of the master (how fast a restarted master takes 100 agents back) need
agents by the hundred; a real ``mesos-agent`` costs a Python process each. A
:class:`SimAgent` is the master-facing half of an agent and nothing else: it uses the
agent's own :class:`~mesos.agent.master_link.MasterLink` (same SUBSCRIBE stream, same
calls, same reconnect backoff), reports its id, frameworks and tasks on every
SUBSCRIBE, answers PINGs, and "runs" a task by answering RUN_TASK with TASK_RUNNING.
There are no executors, sandboxes or checkpoints: tasks live in memory for the life of
the process, which is what a master restart needs (the agents outlive the master).

As a command, for runs where the agents must not share a process with the measuring
side::

    python -m mesos.testing.simagent --master 127.0.0.1:5050 --agents 100 \\
        --events /tmp/events.jsonl

prints nothing but writes one JSON line per link event (``attempt``, ``subscribed``,
``disconnected``) with the agent's index, id and ``time.time()`` to ``--events``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from mesos import __version__
from mesos.agent.master_link import MasterEvent, MasterLink, call
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1 import mesos as v1
from mesos.v1.internal import AgentCall, AgentSubscribe, StatusUpdate

log = logging.getLogger(__name__)

__all__ = ["SimAgent", "SimAgentPool", "main"]

DEFAULT_RESOURCES = "cpus:8;mem:16384;disk:16384"
TERMINAL = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR",
                      "TASK_LOST", "TASK_DROPPED", "TASK_GONE"})

# (agent index, event name, agent id or None, time.time())
Note = Callable[[int, str, str | None, float], None]


class SimAgent:
    """One simulated agent: a master link plus the tasks the master gave it."""

    def __init__(
        self,
        master: str,
        index: int,
        *,
        resources: Resources,
        backoff_factor: float = 1.0,
        note: Note | None = None,
    ) -> None:
        self.index = index
        self.agent_id: str | None = None
        self.info = v1.AgentInfo(
            hostname=f"sim-agent-{index}",
            # Never dialled: the master only uses it to name the agent's pid.
            port=40000 + index,
            resources=codec.decode_obj(resources.to_json(), list[v1.Resource]),
        )
        self.frameworks: dict[str, v1.FrameworkInfo] = {}
        self.tasks: dict[tuple[str, str], v1.Task] = {}
        self.subscriptions = 0
        self.registered = asyncio.Event()
        self._note = note
        self.link = MasterLink(
            master,
            subscribe_call=self._subscribe_call,
            on_event=self._on_event,
            on_disconnected=self._on_disconnected,
            backoff_factor=backoff_factor,
        )
        self._runner: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self.link.run())

    async def stop(self) -> None:
        self.link.stop()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None

    def _tell(self, what: str) -> None:
        if self._note is not None:
            self._note(self.index, what, self.agent_id, time.time())

    # ------------------------------------------------------------------ the master

    def _subscribe_call(self) -> AgentCall:
        """Built afresh for every attempt, as the real agent does: after the first
        registration it names the agent id and carries every task still held."""
        self._tell("attempt")
        info = self.info
        if self.agent_id is not None:
            info = v1.AgentInfo(hostname=info.hostname, port=info.port,
                                resources=info.resources, id=v1.AgentID(value=self.agent_id))
        subscribe = AgentSubscribe(
            agent_info=info,
            resources=info.resources,
            frameworks=list(self.frameworks.values()),
            tasks=list(self.tasks.values()),
            version=__version__,
            address_ip="127.0.0.1",
        )
        return call("SUBSCRIBE", self.agent_id, subscribe=subscribe)

    def _on_disconnected(self) -> None:
        self.registered.clear()
        self._tell("disconnected")

    def _on_event(self, event: MasterEvent) -> None:
        p = event.payload
        if event.type == "SUBSCRIBED":
            given = p["agent_id"].value
            if self.agent_id is not None and given != self.agent_id:
                # A real agent would shut its executors down; ours just forgets.
                log.warning("Agent %d got a new id %s (was %s)", self.index, given,
                            self.agent_id)
                self.tasks.clear()
            self.agent_id = given
            self.subscriptions += 1
            self.registered.set()
            self._tell("subscribed")
        elif event.type == "RUN_TASK":
            self._run(p["framework_info"], p["task"])
        elif event.type == "KILL_TASK":
            self._finish(p["framework_id"].value, p["task_id"].value, "TASK_KILLED")
        elif event.type == "SHUTDOWN_FRAMEWORK":
            fw_id = p["framework_id"].value
            for key in [k for k in self.tasks if k[0] == fw_id]:
                self._finish(fw_id, key[1], "TASK_KILLED")
            self.frameworks.pop(fw_id, None)
        elif event.type == "ACKNOWLEDGE":
            key = (p["framework_id"].value, p["task_id"].value)
            task = self.tasks.get(key)
            if task is not None and task.state in TERMINAL:
                del self.tasks[key]
        elif event.type == "PING":
            self._send("PONG")
        elif event.type == "SHUTDOWN":
            log.warning("Agent %d told to shut down: %s", self.index, p.get("message"))
            self.link.stop()
        elif event.type == "ERROR":
            log.error("Agent %d: the master reported %s", self.index, p.get("message"))

    def _send(self, type_: str, **fields: Any) -> None:
        self.link.post(call(type_, self.agent_id, **fields))

    # ------------------------------------------------------------------ tasks

    def _run(self, framework: v1.FrameworkInfo, info: v1.TaskInfo) -> None:
        assert framework.id is not None
        fw_id = framework.id.value
        self.frameworks[fw_id] = framework
        task = v1.Task(
            name=info.name, task_id=info.task_id, framework_id=framework.id,
            agent_id=v1.AgentID(value=self.agent_id or ""), state="TASK_STAGING",
            resources=info.resources,
        )
        self.tasks[(fw_id, info.task_id.value)] = task
        self._update(fw_id, task, "TASK_RUNNING")

    def _finish(self, fw_id: str, task_id: str, state: str) -> None:
        task = self.tasks.get((fw_id, task_id))
        if task is not None and task.state not in TERMINAL:
            self._update(fw_id, task, state)

    def _update(self, fw_id: str, task: v1.Task, state: str) -> None:
        status = v1.TaskStatus(
            task_id=task.task_id, state=state,  # type: ignore[arg-type]
            source="SOURCE_EXECUTOR", agent_id=task.agent_id, timestamp=time.time(),
            uuid=uuid.uuid4().bytes,
        )
        task.state = status.state
        task.statuses = [status]
        self._send("STATUS_UPDATE", status_update=StatusUpdate(
            framework_id=v1.FrameworkID(value=fw_id), status=status))


class SimAgentPool:
    """``count`` simulated agents on one event loop."""

    def __init__(
        self,
        master: str,
        count: int,
        *,
        resources: str = DEFAULT_RESOURCES,
        backoff_factor: float = 1.0,
        note: Note | None = None,
    ) -> None:
        parsed = Resources.parse(resources)
        self.agents = [
            SimAgent(master, i, resources=parsed, backoff_factor=backoff_factor, note=note)
            for i in range(count)
        ]

    def start(self) -> None:
        for agent in self.agents:
            agent.start()

    async def stop(self) -> None:
        await asyncio.gather(*(agent.stop() for agent in self.agents))

    def registered(self) -> int:
        return sum(1 for a in self.agents if a.registered.is_set())

    async def wait_registered(self, timeout: float) -> None:
        """Until every agent holds a subscription; TimeoutError after ``timeout``."""
        await asyncio.wait_for(
            asyncio.gather(*(a.registered.wait() for a in self.agents)), timeout)


def _writer(out: IO[str]) -> Note:
    def note(index: int, what: str, agent_id: str | None, when: float) -> None:
        out.write(json.dumps({"agent": index, "event": what, "agent_id": agent_id,
                              "time": when}) + "\n")
        out.flush()
    return note


async def _serve(args: argparse.Namespace) -> None:
    with open(args.events, "a", encoding="utf-8") as out:
        pool = SimAgentPool(args.master, args.agents, resources=args.resources,
                            backoff_factor=args.backoff, note=_writer(out))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        pool.start()
        await stop.wait()
        await pool.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--master", required=True, help="host:port of the master")
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--resources", default=DEFAULT_RESOURCES)
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="registration backoff factor in seconds (the agent's "
                             "--registration_backoff_factor; Mesos' default is 1s)")
    parser.add_argument("--events", required=True, help="file for the JSON-lines events")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
