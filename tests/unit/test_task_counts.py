"""The task counts the master keeps as it goes (:class:`mesos.master.state.TaskMap`)
stay equal to a full walk of its tasks, whatever happens to them, and
``/metrics/snapshot`` built from them says what the walk it replaced said."""

from __future__ import annotations

import base64
import os
import random
from typing import Any

import pytest

from mesos.errors import ValidationError
from mesos.master import views
from mesos.master.accept import resources_of
from mesos.master.service import Master
from mesos.master.state import TASK_STATES, USED_SCALARS, AgentTasks, Task, TaskMap
from mesos.resources import Resources
from mesos.v1 import mesos as v1
from tests.unit.test_master_core import (
    AWARE,
    FakeStream,
    call,
    master,
    register,
    reported,
    subscribe,
    task,
)

STATES = ("TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_FINISHED", "TASK_FAILED",
          "TASK_KILLED", "TASK_LOST")


def walked_counts(m: Master) -> dict[str, int]:
    """What views.metrics counted before: every task of every registered framework."""
    counts = dict.fromkeys(TASK_STATES, 0)
    for framework in m.frameworks.values():
        for t in framework.tasks.values():
            counts[t.state] += 1
    return counts


def walked_used(m: Master) -> Resources:
    used = Resources.empty()
    for agent in m.agents.values():
        if not agent.connected:
            continue
        for t in agent.all_tasks():
            if not t.terminal:
                used = used + t.resources
        for infos in agent.executors.values():
            for info in infos.values():
                used = used + resources_of(info.resources, "executor")
    return used


def every_map(m: Master) -> list[TaskMap]:
    maps = [f.tasks for f in [*m.frameworks.values(), *m.completed_frameworks]]
    maps += [by_id for a in m.agents.values() for by_id in a.tasks.values()]
    return maps


def check(m: Master) -> None:
    """Every map's counts equal its contents; every task knows the maps it is in;
    the metrics equal the full walk."""
    for by_id in every_map(m):
        assert isinstance(by_id, TaskMap)
        states: dict[str, int] = {}
        live = Resources.empty()
        for t in by_id.values():
            states[t.state] = states.get(t.state, 0) + 1
            if not t.terminal:
                live = live + t.resources
            assert any(mm is by_id for mm in t.maps)
        assert by_id.states == states
        assert by_id.live_resources() == live
        assert by_id.used == [round(live.scalar(n) * 1000) for n in USED_SCALARS]
        for t in by_id.values():
            for mm in t.maps:
                assert mm.get(t.id) is t
    for agent in m.agents.values():
        assert agent.tasks.used == [sum(by_id.used[i] for by_id in agent.tasks.values())
                                    for i in range(len(USED_SCALARS))]
        assert all(by_id.parent is agent.tasks for by_id in agent.tasks.values())
        walked = Resources.empty()
        for t in agent.all_tasks():
            if not t.terminal:
                walked = walked + t.resources
        assert agent.tasks.live_resources() == walked
    assert views.live_task_counts(m) == walked_counts(m)
    used = walked_used(m)
    assert views.used_by_connected_agents(m) == {n: used.scalar(n) for n in USED_SCALARS}
    snapshot = views.metrics(m)
    counts = walked_counts(m)
    for state in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
                  "TASK_UNREACHABLE"):
        assert snapshot[f"master/tasks_{state[5:].lower()}"] == float(counts[state])
    for name in USED_SCALARS:
        assert snapshot[f"master/{name}_used"] == used.scalar(name)


class Driver:
    """Random, valid things happening to a master: launches, status updates,
    acknowledgements, kills, agents disconnecting, going unreachable and
    re-registering, frameworks coming and going."""

    def __init__(self, m: Master, rng: random.Random) -> None:
        self.m = m
        self.rng = rng
        self.streams: dict[str, FakeStream] = {}  # framework id -> its stream
        self.agent_streams: dict[str, FakeStream] = {}
        self.next_task = 0

    def subscribe(self) -> None:
        stream = FakeStream()
        info = dict(AWARE) if self.rng.random() < 0.5 else {"user": "u", "name": "plain"}
        fw = subscribe(self.m, stream, info)
        self.streams[fw.id] = stream

    def register(self) -> None:
        stream = FakeStream()
        agent = register(self.m, stream, res="cpus:16;mem:16384")
        self.agent_streams[agent.id] = stream

    def launch(self) -> None:
        if not self.streams:
            return
        fw_id = self.rng.choice(sorted(self.streams))
        fw = self.m.frameworks.get(fw_id)
        if fw is None:
            return
        self.m.allocate()
        if not fw.offers:
            return
        offer = self.rng.choice(list(fw.offers.values()))
        infos = []
        for _ in range(self.rng.randint(1, 3)):
            self.next_task += 1
            # Now and then more than the offer holds: refused, changing nothing.
            infos.append(task(f"t{self.next_task}", offer.agent_id,
                              cpus=self.rng.choice((0.1, 0.2, 0.5)),
                              mem=self.rng.choice((16, 32))))
        body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
            "offer_ids": [{"value": offer.id}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": infos}}]}})
        assert body.accept is not None
        try:
            self.m.accept(fw, body.accept)
        except ValidationError:
            pass  # more than the offer holds: refused, and nothing may have changed

    def some_task(self) -> Task | None:
        tasks = [t for f in self.m.frameworks.values() for t in f.tasks.values()]
        return self.rng.choice(tasks) if tasks else None

    def status(self) -> None:
        t = self.some_task()
        agent = self.m.agents.get(t.agent_id) if t else None
        if t is None or agent is None:
            return
        uid = os.urandom(16) if self.rng.random() < 0.8 else None
        self.m.status_update(agent, t.framework_id, v1.TaskStatus(
            task_id=t.info.task_id, state=self.rng.choice(STATES), uuid=uid))  # type: ignore[arg-type]

    def acknowledge(self) -> None:
        t = self.some_task()
        fw = self.m.frameworks.get(t.framework_id) if t else None
        if t is None or fw is None or t.unacked_uuid is None:
            return
        body = call({"type": "ACKNOWLEDGE", "framework_id": {"value": fw.id}, "acknowledge": {
            "agent_id": {"value": t.agent_id}, "task_id": {"value": t.id},
            "uuid": base64.b64encode(t.unacked_uuid).decode()}})
        assert body.acknowledge is not None
        self.m.acknowledge(fw, body.acknowledge)

    def kill(self) -> None:
        t = self.some_task()
        fw = self.m.frameworks.get(t.framework_id) if t else None
        if t is None or fw is None:
            return
        body = call({"type": "KILL", "framework_id": {"value": fw.id},
                     "kill": {"task_id": {"value": t.id}}})
        assert body.kill is not None
        self.m.kill(fw, body.kill)

    def disconnect(self) -> None:
        connected = [a for a in self.m.agents.values() if a.connected]
        if connected:
            agent = self.rng.choice(connected)
            stream = self.agent_streams[agent.id]
            stream.close()
            self.m.agent_stream_closed(agent.id, stream)  # type: ignore[arg-type]

    def unreachable(self) -> None:
        if self.m.agents:
            self.m.mark_unreachable(self.rng.choice(list(self.m.agents.values())), "test")

    def reregister(self) -> None:
        """An agent (known, disconnected or unreachable) comes back reporting what it
        runs as far as the master knows (some of it, now and then, finished)."""
        ids = sorted(set(self.m.agents) | set(self.m.unreachable_agents))
        if not ids:
            return
        agent_id = self.rng.choice(ids)
        items: list[dict[str, Any]] = []
        frameworks = []
        for fw in self.m.frameworks.values():
            mine = [t for t in [*fw.tasks.values(), *fw.unreachable_tasks.values()]
                    if t.agent_id == agent_id and not t.terminal]
            for t in mine:
                state = "TASK_FINISHED" if self.rng.random() < 0.1 else "TASK_RUNNING"
                items.append(reported(t.id, fw.id, agent_id, state,
                                      cpus=t.resources.scalar("cpus")))
            if mine:
                frameworks.append({"user": "u", "name": fw.info.name, "id": {"value": fw.id},
                                   "capabilities": [{"type": c} for c in fw.capabilities]})
        stream = FakeStream()
        try:
            register(self.m, stream, agent_id, tasks=items, frameworks=frameworks,
                     res="cpus:16;mem:16384")
        except ValidationError:
            return  # e.g. it was pruned from the registry meanwhile
        self.agent_streams[agent_id] = stream

    def remove_framework(self) -> None:
        if self.m.frameworks:
            fw = self.rng.choice(list(self.m.frameworks.values()))
            self.m.remove_framework(fw, "test")

    def step(self) -> str:
        if len(self.m.frameworks) < 2:
            self.subscribe()
        if sum(1 for a in self.m.agents.values() if a.connected) < 2:
            self.register()
        action = self.rng.choices(
            ["launch", "status", "acknowledge", "kill", "disconnect", "unreachable",
             "reregister", "remove_framework", "subscribe", "register"],
            weights=[40, 40, 15, 5, 2, 2, 6, 1, 2, 2])[0]
        getattr(self, action)()
        return action


@pytest.mark.parametrize("seed", range(6))
async def test_counts_equal_a_full_walk_after_random_changes(seed: int) -> None:
    m = master()
    driver = Driver(m, random.Random(seed))
    for _ in range(3):
        driver.register()
    for _ in range(2):
        driver.subscribe()
    done: dict[str, int] = {}
    peak: dict[str, int] = {}
    for _ in range(400):
        action = driver.step()
        done[action] = done.get(action, 0) + 1
        check(m)
        for state, n in walked_counts(m).items():
            peak[state] = max(peak.get(state, 0), n)
    # The run was not trivially empty: tasks were there, in several states at once.
    assert sum(1 for n in peak.values() if n) >= 5 and max(peak.values()) >= 3, peak
    assert all(done.get(a, 0) > 0 for a in ("launch", "status", "acknowledge", "reregister",
                                            "unreachable", "remove_framework")), done


def make_task(task_id: str, state: str = "TASK_RUNNING", cpus: float = 1.0) -> Task:
    return Task(info=v1.TaskInfo(name=task_id, task_id=v1.TaskID(value=task_id),
                                 agent_id=v1.AgentID(value="a")),
                framework_id="f", agent_id="a", executor_id="", role="*",
                resources=Resources.parse(f"cpus:{cpus}"), state=state)  # type: ignore[arg-type]


def milli(cpus: float) -> list[int]:
    return [round(cpus * 1000), 0, 0, 0]


def test_every_way_in_and_out_of_a_task_map_is_counted() -> None:
    m = TaskMap(watch=True)
    a, b, c = make_task("a"), make_task("b", cpus=2), make_task("c", "TASK_FINISHED")
    m["a"] = a
    m.setdefault("b", b)
    m.update({"c": c})
    assert m.states == {"TASK_RUNNING": 2, "TASK_FINISHED": 1}
    assert m.used == milli(3)
    assert list(m.changed or {}) == [a, b, c]
    a.state = "TASK_KILLED"
    b.resources = Resources.parse("cpus:0.5")
    assert m.states == {"TASK_RUNNING": 1, "TASK_FINISHED": 1, "TASK_KILLED": 1}
    assert m.used == milli(0.5)
    assert m.live_resources() == Resources.parse("cpus:0.5")
    m["b"] = make_task("b2")  # replaces b: b leaves
    assert not b.maps and m.used == milli(1)
    b.state = "TASK_FAILED"  # no longer counted here
    assert "TASK_FAILED" not in m.states
    assert m.pop("a") is a and m.pop("nope", None) is None
    del m["c"]
    m.popitem()
    assert not m and m.states == {} and m.used == milli(0)
    m |= {"x": make_task("x")}
    m.clear()
    assert m.states == {} and m.used == milli(0)
    with pytest.raises(KeyError):
        m.pop("x")


def test_an_agents_maps_add_up_and_plain_dicts_become_task_maps() -> None:
    tasks = AgentTasks()
    t = make_task("t")
    tasks.setdefault("f", {})["t"] = t
    assert isinstance(tasks["f"], TaskMap) and tasks["f"].states == {"TASK_RUNNING": 1}
    tasks["g"] = {"u": make_task("u", cpus=2), "v": make_task("v", "TASK_LOST")}
    assert isinstance(tasks["g"], TaskMap) and tasks.used == milli(3)
    assert tasks.live_resources() == Resources.parse("cpus:3")
    t.state = "TASK_FAILED"
    assert tasks.used == milli(2)
    assert tasks.live_resources() == Resources.parse("cpus:2")
    g = tasks.pop("g")
    assert g.parent is None and tasks.used == milli(0)
    g["w"] = make_task("w")  # no longer this agent's
    assert tasks.used == milli(0)
    tasks["f"]["t2"] = make_task("t2", cpus=0.25)
    assert tasks.used == milli(0.25)
    assert tasks.live_resources() == Resources.parse("cpus:0.25")
    tasks.clear()
    assert tasks.used == milli(0)


async def test_an_agent_reregistering_again_and_again_leaves_no_trail() -> None:
    """Each re-registration makes a new Agent whose maps take the tasks over; the old
    agent's maps stop counting them, so a task is told to two maps, not to one more
    per re-registration."""
    m = master()
    fw_info = {"user": "u", "name": "f", "id": {"value": "F"}, "failover_timeout": 3600.0}
    agent = register(m, FakeStream(), frameworks=[fw_info],
                     tasks=[reported("x", "F", "", "TASK_RUNNING", cpus=2)])
    for _ in range(30):
        agent = register(m, FakeStream(), agent.id, frameworks=[fw_info],
                         tasks=[reported("x", "F", agent.id, "TASK_RUNNING", cpus=2)])
    x = m.frameworks["F"].tasks["x"]
    assert len(x.maps) == 2
    assert x.maps[0] is m.frameworks["F"].tasks and x.maps[1] is agent.tasks["F"]
    check(m)
    assert views.used_by_connected_agents(m)["cpus"] == 2.0
    x.state = "TASK_FINISHED"
    check(m)
    assert views.used_by_connected_agents(m)["cpus"] == 0.0
