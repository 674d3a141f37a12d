"""The master's bookkeeping, driven in-process with fake streams (no sockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from typing import Any

import pytest

from mesos.errors import ValidationError
from mesos.flags import parse_flags
from mesos.master import operator_views, views
from mesos.master.flags import FLAGS
from mesos.master.service import Master
from mesos.resources import Resources
from mesos.v1 import codec, internal
from mesos.v1 import mesos as v1
from mesos.v1 import scheduler as sched


class FakeStream:
    """Stands in for an EventStream: records events, can be closed."""

    def __init__(self) -> None:
        self.stream_id = str(uuid.uuid4())
        self.events: list[dict[str, Any]] = []
        self._closed = False
        self.request = None

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes) -> None:
        if not self._closed:
            self.events.append(json.loads(data))

    def close(self) -> None:
        self._closed = True

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


def master(*argv: str) -> Master:
    m = Master(parse_flags("mesos-master", FLAGS, list(argv), {}))
    m.loop = asyncio.get_running_loop()
    return m


def register(m: Master, stream: FakeStream, agent_id: str | None = None, *,
             tasks: list[dict[str, Any]] | None = None, executors: list[dict[str, Any]] | None = None,
             frameworks: list[dict[str, Any]] | None = None, res: str = "cpus:4;mem:1024") -> Any:
    info: dict[str, Any] = {"hostname": "h", "port": 5051}
    if agent_id:
        info["id"] = {"value": agent_id}
    body = {"agent_info": info, "resources": Resources.parse(res).to_json(), "tasks": tasks or [],
            "executors": executors or [], "frameworks": frameworks or [], "address_ip": "127.0.0.1"}
    return m.register_agent(stream, codec.decode(json.dumps(body).encode(), internal.AgentSubscribe))  # type: ignore[arg-type]


def call(body: dict[str, Any]) -> sched.Call:
    return codec.decode(json.dumps(body).encode(), sched.Call)


def subscribe(m: Master, stream: FakeStream, info: dict[str, Any] | None = None) -> Any:
    fw = dict(info or {"user": "u", "name": "n"})
    body: dict[str, Any] = {"type": "SUBSCRIBE", "subscribe": {"framework_info": fw}}
    if "id" in fw:
        body["framework_id"] = fw["id"]
    return m.subscribe(stream, call(body))  # type: ignore[arg-type]


def task(task_id: str, agent_id: str, cpus: float = 1, mem: float = 128) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]}


def reported(task_id: str, framework_id: str, agent_id: str, state: str, cpus: float = 1) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "framework_id": {"value": framework_id},
            "agent_id": {"value": agent_id}, "state": state, "resources": task(task_id, agent_id, cpus)["resources"]}


def launch(m: Master, fw: Any, stream: FakeStream, *tasks: dict[str, Any]) -> None:
    m.allocate()
    offer = stream.of("OFFERS")[-1]["offers"]["offers"][0]
    body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
        "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": list(tasks)}}]}})
    assert body.accept is not None
    m.accept(fw, body.accept)


def update(m: Master, agent: Any, fw: Any, task_id: str, state: str, uid: bytes | None = None) -> bytes:
    uid = uid or os.urandom(16)
    m.status_update(agent, fw.id, v1.TaskStatus(task_id=v1.TaskID(value=task_id), state=state, uuid=uid))  # type: ignore[arg-type]
    return uid


async def test_retried_final_update_after_reregistration_recovers_nothing_twice() -> None:
    m = master()
    agent_stream, fw_stream = FakeStream(), FakeStream()
    agent = register(m, agent_stream)
    fw = subscribe(m, fw_stream)
    launch(m, fw, fw_stream, task("t1", agent.id), task("t2", agent.id))
    uid = update(m, agent, fw, "t1", "TASK_FINISHED")
    # The agent's link drops; the scheduler's acknowledgement cannot reach it.
    agent_stream.close()
    m.agent_stream_closed(agent.id, agent_stream)  # type: ignore[arg-type]
    ack = call({"type": "ACKNOWLEDGE", "framework_id": {"value": fw.id}, "acknowledge": {
        "agent_id": {"value": agent.id}, "task_id": {"value": "t1"}, "uuid": base64.b64encode(uid).decode()}})
    assert ack.acknowledge is not None
    m.acknowledge(fw, ack.acknowledge)
    # It comes back still reporting t1 finished (unacknowledged) and t2 running, then resends t1.
    again = register(m, FakeStream(), agent.id, tasks=[
        reported("t1", fw.id, agent.id, "TASK_FINISHED"), reported("t2", fw.id, agent.id, "TASK_RUNNING")])
    assert not any(t.id == "t1" for t in fw.tasks.values())
    update(m, again, fw, "t1", "TASK_FINISHED", uid)
    assert m.allocator.used(agent.id, fw.id).scalar("cpus") == 1.0  # t2 still counted
    m.allocator.validate()


async def test_a_restarted_master_recovers_frameworks_from_agents() -> None:
    m = master()
    agent = register(m, FakeStream(), "AG1", tasks=[reported("x", "FW-OLD", "AG1", "TASK_RUNNING", cpus=3)],
                     frameworks=[{"user": "u", "name": "old", "id": {"value": "FW-OLD"}}])
    assert m.allocator.available(agent.id).scalar("cpus") == 1.0
    recovered = m.frameworks["FW-OLD"]
    assert recovered.recovered and not recovered.active and recovered.info.name == "old"
    stream = FakeStream()
    fw = subscribe(m, stream, {"user": "u", "name": "old", "id": {"value": "FW-OLD"}})
    assert fw is recovered and not fw.recovered
    assert stream.of("SUBSCRIBED")[0]["subscribed"]["framework_id"] == {"value": "FW-OLD"}
    assert list(fw.tasks) == ["x"] and fw.tasks["x"].state == "TASK_RUNNING"


async def test_refused_agent_subscription_changes_nothing() -> None:
    m = master()
    first = FakeStream()
    agent = register(m, first)
    bad = {"executor_id": {"value": "e"}, "framework_id": {"value": "F"},
           "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]}
    with pytest.raises(ValidationError, match="executors"):
        register(m, FakeStream(), agent.id, executors=[bad])
    assert m.agents[agent.id] is agent and not first.closed
    assert agent.id in m.allocator.agent_ids()


async def test_metrics_keep_live_gauges_and_terminal_counters_apart() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream)
    launch(m, fw, stream, task("t", agent.id))
    update(m, agent, fw, "t", "TASK_RUNNING")
    assert views.metrics(m)["master/tasks_running"] == 1.0
    update(m, agent, fw, "t", "TASK_FINISHED")
    snapshot = views.metrics(m)
    assert snapshot["master/tasks_running"] == 0.0
    assert snapshot["master/tasks_finished"] == 1.0


async def test_executors_the_agent_no_longer_reports_are_forgotten() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream)
    t = task("t", agent.id)
    del t["command"]
    t["executor"] = {"executor_id": {"value": "ex"}, "command": {"value": "x"}}
    launch(m, fw, stream, t)
    assert "ex" in fw.executors[agent.id]
    register(m, FakeStream(), agent.id)
    assert agent.id not in fw.executors


async def test_kill_for_a_disconnected_agent_is_sent_when_it_returns() -> None:
    m = master()
    stream, agent_stream = FakeStream(), FakeStream()
    agent = register(m, agent_stream)
    fw = subscribe(m, stream)
    launch(m, fw, stream, task("t", agent.id))
    agent_stream.close()
    m.agent_stream_closed(agent.id, agent_stream)  # type: ignore[arg-type]
    kill = call({"type": "KILL", "framework_id": {"value": fw.id}, "kill": {"task_id": {"value": "t"}}})
    assert kill.kill is not None
    m.kill(fw, kill.kill)
    back = FakeStream()
    register(m, back, agent.id, tasks=[reported("t", fw.id, agent.id, "TASK_RUNNING")])
    assert [e["kill_task"]["task_id"] for e in back.of("KILL_TASK")] == [{"value": "t"}]


async def test_kill_of_an_unknown_task_answers_like_reconciliation() -> None:
    m = master()
    stream = FakeStream()
    fw = subscribe(m, stream, {"user": "u", "name": "n", "capabilities": [{"type": "PARTITION_AWARE"}]})
    kill = call({"type": "KILL", "framework_id": {"value": fw.id}, "kill": {"task_id": {"value": "ghost"}}})
    assert kill.kill is not None
    m.kill(fw, kill.kill)
    status = stream.of("UPDATE")[0]["update"]["status"]
    assert status["state"] == "TASK_UNKNOWN" and status["reason"] == "REASON_RECONCILIATION"


async def test_reconciling_a_task_on_a_recovered_agent_says_nothing_until_it_returns() -> None:
    """An agent recovered from the registry that has not re-registered may bring the task
    back: Mesos drops such reconciliations instead of calling the task lost."""
    m = master()
    m.recovered_agents["S-back"] = v1.AgentInfo(hostname="h", port=5051, id=v1.AgentID(value="S-back"))
    stream = FakeStream()
    fw = subscribe(m, stream)  # not partition-aware: would hear TASK_LOST otherwise
    body = call({"type": "RECONCILE", "framework_id": {"value": fw.id}, "reconcile": {"tasks": [
        {"task_id": {"value": "t"}, "agent_id": {"value": "S-back"}},
        {"task_id": {"value": "u"}, "agent_id": {"value": "S-elsewhere"}}]}})
    assert body.reconcile is not None
    m.reconcile(fw, body.reconcile)
    kill = call({"type": "KILL", "framework_id": {"value": fw.id}, "kill": {
        "task_id": {"value": "t"}, "agent_id": {"value": "S-back"}}})
    assert kill.kill is not None
    m.kill(fw, kill.kill)
    updates = [e["update"]["status"] for e in stream.of("UPDATE")]
    assert [(u["task_id"]["value"], u["state"]) for u in updates] == [("u", "TASK_LOST")]


async def test_update_framework_rescinds_offers_of_roles_left() -> None:
    m = master()
    stream = FakeStream()
    register(m, FakeStream())
    info = {"user": "u", "name": "n", "roles": ["a"], "capabilities": [{"type": "MULTI_ROLE"}]}
    fw = subscribe(m, stream, info)
    m.allocate()
    offer_id = stream.of("OFFERS")[0]["offers"]["offers"][0]["id"]
    body = call({"type": "UPDATE_FRAMEWORK", "framework_id": {"value": fw.id}, "update_framework": {
        "framework_info": {**info, "id": {"value": fw.id}, "roles": ["b"]}}})
    assert body.update_framework is not None
    m.update_framework(fw, body.update_framework)
    assert [e["rescind"]["offer_id"] for e in stream.of("RESCIND")] == [offer_id]
    assert fw.offers == {}


async def test_terminal_update_without_uuid_completes_the_task() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream)
    launch(m, fw, stream, task("t", agent.id))
    m.status_update(agent, fw.id, v1.TaskStatus(task_id=v1.TaskID(value="t"), state="TASK_FAILED"))
    assert "t" not in fw.tasks and [t.id for t in fw.completed_tasks] == ["t"]
    assert m.allocator.used(agent.id, fw.id).scalar("cpus") == 0.0


async def test_multi_role_launch_names_the_offer_role() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream, {"user": "u", "name": "n", "roles": ["eng", "ops"],
                               "capabilities": [{"type": "MULTI_ROLE"}]})
    m.allocate()
    offer = stream.of("OFFERS")[0]["offers"]["offers"][0]
    role = offer["allocation_info"]["role"]

    def attempt(task_id: str, as_role: str) -> None:
        t = task(task_id, agent.id)
        for r in t["resources"]:
            r["allocation_info"] = {"role": as_role}
        body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "LAUNCH", "launch": {"task_infos": [t]}}]}})
        assert body.accept is not None
        m.accept(fw, body.accept)

    other = "ops" if role == "eng" else "eng"
    with pytest.raises(ValidationError, match="allocated to role"):
        attempt("wrong-role", other)
    attempt("right-role", role)
    assert list(fw.tasks) == ["right-role"]
    assert fw.tasks["right-role"].role == role


async def test_reserve_then_launch_on_the_reservation_then_unreserve() -> None:
    m = master()
    stream, other_stream = FakeStream(), FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "eng", "principal": "p"})
    m.allocate()
    offer = stream.of("OFFERS")[-1]["offers"]["offers"][0]
    reserved = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 2},
                 "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "p"}]}]
    t = task("on-reservation", agent.id, cpus=1)
    t["resources"][0]["reservations"] = reserved[0]["reservations"]
    body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}, "operations": [
            {"type": "RESERVE", "reserve": {"resources": reserved}},
            {"type": "LAUNCH", "launch": {"task_infos": [t]}}]}})
    assert body.accept is not None
    m.accept(fw, body.accept)
    assert agent.total.reservations()["eng"].scalar("cpus") == 2.0
    # A framework of another role never sees eng's reservation.
    other = subscribe(m, other_stream, {"user": "u", "name": "ops", "role": "ops"})
    m.allocate()
    for o in other_stream.of("OFFERS")[-1]["offers"]["offers"] if other_stream.of("OFFERS") else []:
        assert all(r.get("role", "*") != "eng" for r in o["resources"])
    assert other.id in m.frameworks
    # Once the task is done, eng is offered its reservation back (pre-refinement form).
    update(m, agent, fw, "on-reservation", "TASK_FINISHED")
    m.allocate()
    eng_offers = [o for e in stream.of("OFFERS") for o in e["offers"]["offers"]]
    back = [r for o in eng_offers[1:] for r in o["resources"] if r.get("role") == "eng"]
    assert back and back[-1]["reservation"]["principal"] == "p"
    # UNRESERVE (over every outstanding offer, which hold the 2 cpus between them)
    # gives the reservation back to everyone.
    outstanding = [o for o in eng_offers if o["id"]["value"] in fw.offers]
    pre = [r for o in outstanding for r in o["resources"] if r.get("role") == "eng"]
    assert sum(r["scalar"]["value"] for r in pre) == 2.0
    body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
        "offer_ids": [o["id"] for o in outstanding],
        "operations": [{"type": "UNRESERVE", "unreserve": {"resources": pre}}]}})
    assert body.accept is not None
    m.accept(fw, body.accept)
    assert agent.total.reservations() == {}
    m.allocator.validate()  # type: ignore[attr-defined]


async def test_reserve_checks_role_principal_and_offer() -> None:
    m = master()
    stream = FakeStream()
    register(m, FakeStream())
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "eng", "principal": "p"})
    m.allocate()
    offer = stream.of("OFFERS")[-1]["offers"]["offers"][0]

    def reserve(resources: list[dict[str, Any]]) -> None:
        body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
            "offer_ids": [offer["id"]], "operations": [{"type": "RESERVE", "reserve": {"resources": resources}}]}})
        assert body.accept is not None
        m.accept(fw, body.accept)

    cpus = {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}
    with pytest.raises(ValidationError, match="'ops' is not the role"):
        reserve([{**cpus, "reservations": [{"type": "DYNAMIC", "role": "ops"}]}])
    with pytest.raises(ValidationError, match="principal"):
        reserve([{**cpus, "reservations": [{"type": "DYNAMIC", "role": "eng", "principal": "q"}]}])
    with pytest.raises(ValidationError, match="DYNAMIC"):
        reserve([cpus])
    with pytest.raises(ValidationError, match="not in the remaining offered"):
        reserve([{**cpus, "scalar": {"value": 100}, "reservations": [{"type": "DYNAMIC", "role": "eng"}]}])
    # Nothing changed: the offer is still there and nothing is reserved.
    assert offer["id"]["value"] in fw.offers
    assert all(not a.total.reservations() for a in m.agents.values())


async def test_agents_under_maintenance_produce_inverse_offers() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream)
    launch(m, fw, stream, task("t", agent.id))
    # The maintenance schedule (an operator call of a later issue) reaches the allocator.
    m.allocator.update_unavailability(agent.id, m._now() + 3600, 600)
    m.allocate()
    inverse = stream.of("INVERSE_OFFERS")[0]["inverse_offers"]["inverse_offers"]
    assert [(i["agent_id"]["value"], i["framework_id"]["value"]) for i in inverse] == [(agent.id, fw.id)]
    assert inverse[0]["unavailability"]["duration"] == {"nanoseconds": 600 * 10**9}
    # Declining it is remembered; no second inverse offer while the refusal lasts.
    body = call({"type": "DECLINE_INVERSE_OFFERS", "framework_id": {"value": fw.id},
                 "decline_inverse_offers": {"inverse_offer_ids": [inverse[0]["id"]],
                                            "filters": {"refuse_seconds": 3600}}})
    assert body.decline_inverse_offers is not None
    m.answer_inverse_offers(fw, [inverse[0]["id"]["value"]], False, 3600)
    m.allocate()
    assert len(stream.of("INVERSE_OFFERS")) == 1
    assert m.inverse_offers == {}


AWARE = {"user": "u", "name": "aware", "capabilities": [{"type": "PARTITION_AWARE"}]}


def reconcile(m: Master, fw: Any, stream: FakeStream, task_id: str, agent_id: str) -> dict[str, Any]:
    body = call({"type": "RECONCILE", "framework_id": {"value": fw.id}, "reconcile": {
        "tasks": [{"task_id": {"value": task_id}, "agent_id": {"value": agent_id}}]}})
    assert body.reconcile is not None
    m.reconcile(fw, body.reconcile)
    status: dict[str, Any] = stream.of("UPDATE")[-1]["update"]["status"]
    return status


async def test_mark_gone_reports_tasks_gone_and_shuts_the_agent_down() -> None:
    m = master()
    agent_stream, aware_stream, plain_stream = FakeStream(), FakeStream(), FakeStream()
    agent = register(m, agent_stream)
    aware = subscribe(m, aware_stream, AWARE)
    plain = subscribe(m, plain_stream)
    launch(m, aware, aware_stream, task("a", agent.id, cpus=1))
    launch(m, plain, plain_stream, task("p", agent.id, cpus=1))
    assert m.knows_agent(agent.id) and not m.knows_agent("nobody")
    await m.mark_gone(agent.id)
    assert agent.id in m.registrar.registry.gone and agent.id not in m.registrar.registry.agents
    assert agent.id not in m.agents and agent.id not in m.allocator.agent_ids()
    for stream, task_id, state in ((aware_stream, "a", "TASK_GONE_BY_OPERATOR"),
                                   (plain_stream, "p", "TASK_LOST")):
        status = stream.of("UPDATE")[-1]["update"]["status"]
        assert (status["task_id"]["value"], status["state"]) == (task_id, state)
        assert status["reason"] == "REASON_AGENT_REMOVED_BY_OPERATOR"
        assert status["source"] == "SOURCE_MASTER"
        assert stream.of("FAILURE")[-1]["failure"] == {"agent_id": {"value": agent.id}}
    assert not aware.tasks and [t.id for t in aware.completed_tasks] == ["a"]
    assert agent_stream.of("SHUTDOWN") and agent_stream.closed
    assert views.metrics(m)["master/tasks_gone_by_operator"] == 1.0
    # It may not come back, and reconciliation says where its tasks went.
    again = FakeStream()
    with pytest.raises(ValidationError, match="gone"):
        register(m, again, agent.id)
    assert again.of("SHUTDOWN") and agent.id not in m.agents
    assert reconcile(m, aware, aware_stream, "a", agent.id)["state"] == "TASK_GONE_BY_OPERATOR"
    assert reconcile(m, plain, plain_stream, "p", agent.id)["state"] == "TASK_LOST"
    # Marking it again changes nothing.
    before = len(aware_stream.events)
    await m.mark_gone(agent.id)
    assert len(aware_stream.events) == before
    m.allocator.validate()


async def test_mark_gone_of_an_unreachable_agent_reports_its_unreachable_tasks() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream())
    fw = subscribe(m, stream, AWARE)
    launch(m, fw, stream, task("a", agent.id))
    m.mark_unreachable(agent, "test")
    assert "a" in fw.unreachable_tasks and agent.id in m.unreachable_agents
    await m.mark_gone(agent.id)
    assert not fw.unreachable_tasks and agent.id not in m.unreachable_agents
    assert agent.id not in m.registrar.registry.unreachable
    status = stream.of("UPDATE")[-1]["update"]["status"]
    assert (status["state"], status["reason"]) == ("TASK_GONE_BY_OPERATOR",
                                                   "REASON_AGENT_REMOVED_BY_OPERATOR")


async def test_marking_unreachable_prunes_beyond_the_count() -> None:
    m = master("--registry_max_agent_count=1")
    stream = FakeStream()
    fw = subscribe(m, stream, AWARE)
    first, second = register(m, FakeStream()), register(m, FakeStream())
    launch(m, fw, stream, task("a", first.id))
    m.mark_unreachable(first, "test")
    assert set(m.unreachable_agents) == {first.id} and "a" in fw.unreachable_tasks
    m.mark_unreachable(second, "test")
    # The oldest beyond --registry_max_agent_count is forgotten, with its tasks.
    assert set(m.unreachable_agents) == {second.id}
    assert set(m.registrar.registry.unreachable) == {second.id}
    assert not fw.unreachable_tasks
    assert reconcile(m, fw, stream, "a", first.id)["state"] == "TASK_UNKNOWN"
    # A pruned agent that comes back is admitted again with its id.
    back = FakeStream()
    register(m, back, first.id)
    assert back.of("SUBSCRIBED")[0]["subscribed"]["agent_id"] == {"value": first.id}


async def test_registry_gc_prunes_by_age_periodically() -> None:
    m = master("--registry_max_agent_age=50ms", "--registry_gc_interval=20ms")
    agent = register(m, FakeStream())
    m.mark_unreachable(agent, "test")
    assert agent.id in m.unreachable_agents  # not old enough yet
    m.start()
    try:
        for _ in range(50):
            if agent.id not in m.unreachable_agents:
                break
            await asyncio.sleep(0.02)
        assert agent.id not in m.unreachable_agents and not m.registrar.registry.unreachable
    finally:
        await m.stop()


async def test_operator_state_calls_use_v1_shapes() -> None:
    m = master()
    agent = register(m, FakeStream())
    stream = FakeStream()
    fw = subscribe(m, stream)
    launch(m, fw, stream, task("t1", agent.id))
    uid = update(m, agent, fw, "t1", "TASK_RUNNING")
    state = json.loads(json.dumps(operator_views.get_state(m)))
    assert set(state) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
    [listed] = state["get_tasks"]["tasks"]
    assert listed["task_id"] == {"value": "t1"} and listed["agent_id"] == {"value": agent.id}
    assert listed["state"] == "TASK_RUNNING"
    assert listed["status_update_uuid"] == base64.b64encode(uid).decode()
    [framework] = state["get_frameworks"]["frameworks"]
    assert framework["framework_info"]["id"] == {"value": fw.id} and framework["connected"]
    assert set(framework["registered_time"]) == {"nanoseconds"}
    [shown] = state["get_agents"]["agents"]
    assert shown["agent_info"]["id"] == {"value": agent.id} and shown["pid"] == agent.pid
    allocated = Resources.from_json(shown["allocated_resources"])
    assert allocated.scalar("cpus") == 1.0
    assert state["get_agents"]["recovered_agents"] == []
