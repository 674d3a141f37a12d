"""Persistent volumes and checkpointed resources: the ``Resources`` helpers, the
agent's volume directories and sandbox links (:mod:`mesos.agent.volumes`), and the
master's ACCEPT planning of CREATE/DESTROY (in-process, fake streams)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from mesos.agent import checkpoint, volumes
from mesos.errors import ValidationError
from mesos.master.service import Master
from mesos.resources import Resources, ResourcesError, apply_checkpointed, validate_volumes
from mesos.v1 import codec, internal
from tests.unit.test_master_core import FakeStream, call, master, register, subscribe, update

DYN = [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]


def disk(size: float, *, reservations: list[dict[str, Any]] | None = None,
         vid: str | None = None, path: str = "data", mode: str = "RW",
         shared: bool = False) -> dict[str, Any]:
    r: dict[str, Any] = {"name": "disk", "type": "SCALAR", "scalar": {"value": size}}
    if reservations is not None:
        r["reservations"] = reservations
    if vid is not None:
        r["disk"] = {"persistence": {"id": vid, "principal": "ops"},
                     "volume": {"mode": mode, "container_path": path}}
    if shared:
        r["shared"] = {}
    return r


def res(*items: dict[str, Any]) -> Resources:
    return Resources.from_json(list(items))


# ---------------------------------------------------------------------- Resources


def test_volume_helpers() -> None:
    vol = res(disk(100, reservations=DYN, vid="v1"))
    reserved = res(disk(100, reservations=DYN))
    assert vol.without_volumes() == reserved
    assert vol.static_form() == res(disk(100))
    assert vol.persistent_volumes() == vol and reserved.persistent_volumes() == Resources.empty()
    [v] = vol.volumes()
    assert (v.persistence_id, v.role, v.container_path, v.mode, v.shared) == (
        "v1", "db", "data", "RW", False)
    shared = res(disk(100, reservations=DYN, vid="s", shared=True))
    # Two copies of one shared volume strip to the one disk they sit on.
    assert (shared + shared).without_volumes() == reserved
    total = Resources.parse("cpus:2;disk:1000") - res(disk(100)) + vol
    assert total.checkpointed() == vol
    static_reservation = Resources.parse("disk(db):50")
    assert static_reservation.checkpointed() == Resources.empty()


def test_apply_checkpointed_lays_volumes_over_flag_resources() -> None:
    static = Resources.parse("cpus:2;mem:512;disk:1000")
    checkpointed = res(disk(100, reservations=DYN, vid="v1"),
                       {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                        "reservations": DYN})
    total = apply_checkpointed(static, checkpointed)
    assert total.scalar("disk") == 1000 and total.scalar("cpus") == 2
    assert total.unreserved() == Resources.parse("cpus:1;mem:512;disk:900")
    assert total.checkpointed() == checkpointed
    with pytest.raises(ResourcesError, match="incompatible"):
        apply_checkpointed(Resources.parse("cpus:2;disk:50"), checkpointed)


@pytest.mark.parametrize("volume, problem", [
    (disk(10, vid="v"), "unreserved"),
    (disk(10, reservations=DYN), "not a persistent volume"),
    (disk(10, reservations=DYN, vid="v", path=""), "container path must not be empty"),
    (disk(10, reservations=DYN, vid="v", path="/abs"), "relative"),
    (disk(10, reservations=DYN, vid="v", path="a/../../x"), r"'\.\.'"),
    (disk(10, reservations=DYN, vid="a/b"), "must not contain '/'"),
    (disk(10, reservations=DYN, vid=".."), r"'\.\.'"),
    (disk(10, reservations=DYN, vid="v", mode="RX"), "RW or RO"),
    ({**disk(10, reservations=DYN, vid="v"), "name": "mem"}, "'disk' scalar"),
])
def test_bad_volumes_are_named(volume: dict[str, Any], problem: str) -> None:
    with pytest.raises(ResourcesError, match=problem):
        validate_volumes(res(volume), "create.volumes")


def test_one_persistence_id_twice_is_refused() -> None:
    twice = res(disk(10, reservations=DYN, vid="v"), disk(20, reservations=DYN, vid="v",
                                                         path="other"))
    with pytest.raises(ResourcesError, match="given twice"):
        validate_volumes(twice, "create.volumes")


# ---------------------------------------------------------------------- the agent's side


def test_apply_creates_and_destroys_volume_directories(tmp_path: Path) -> None:
    work = str(tmp_path)
    static = Resources.parse("cpus:2;disk:1000")
    state = volumes.recover(work, static)
    assert state.total == static and state.checkpointed == Resources.empty()
    vol = res(disk(100, reservations=DYN, vid="v1"))
    state = volumes.apply(work, state, vol)
    path = volumes.volume_path(work, "db", "v1")
    assert path == os.path.join(work, "volumes", "roles", "db", "v1") and os.path.isdir(path)
    Path(path, "data.txt").write_text("kept")
    assert json.loads(Path(checkpoint.resources_path(work)).read_text()) == vol.to_json()
    # A restarted agent gets the same total back, and the data is still there.
    again = volumes.recover(work, static)
    assert again.total == state.total and again.checkpointed == vol
    assert Path(path, "data.txt").read_text() == "kept"
    # DESTROY (the volume is gone from the checkpointed resources) deletes its data.
    state = volumes.apply(work, again, vol.without_volumes())
    assert not os.path.exists(path)
    assert state.checkpointed == vol.without_volumes()


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path: Path) -> None:
    work = str(tmp_path)
    state = volumes.recover(work, Resources.parse("disk:100"))
    with pytest.raises(volumes.VolumeError, match="incompatible"):
        volumes.apply(work, state, res(disk(500, reservations=DYN, vid="big")))
    assert not os.path.exists(checkpoint.resources_path(work))
    assert not os.path.exists(os.path.join(work, "volumes"))
    # Flags that shrank under a checkpointed volume stop the agent, loudly.
    volumes.apply(work, volumes.recover(work, Resources.parse("disk:1000")),
                  res(disk(500, reservations=DYN, vid="v")))
    with pytest.raises(volumes.VolumeError, match="incompatible"):
        volumes.recover(work, Resources.parse("disk:100"))
    Path(checkpoint.resources_path(work)).write_text("{not json")
    with pytest.raises(volumes.VolumeError, match="Cannot recover"):
        volumes.recover(work, Resources.parse("disk:1000"))


def test_link_volumes_into_a_sandbox(tmp_path: Path) -> None:
    work, sandbox = str(tmp_path / "work"), tmp_path / "sandbox"
    sandbox.mkdir()
    vol = res(disk(10, reservations=DYN, vid="v1", path="mnt/data"))
    made = volumes.link_volumes(work, str(sandbox), vol + Resources.parse("cpus:1"))
    link = sandbox / "mnt" / "data"
    assert made == [str(link)] and link.is_symlink()
    (link / "f").write_text("x")
    assert Path(volumes.volume_path(work, "db", "v1"), "f").read_text() == "x"
    assert volumes.link_volumes(work, str(sandbox), vol) == []  # again: nothing to do
    (sandbox / "taken").mkdir()
    with pytest.raises(volumes.VolumeError, match="already exists"):
        volumes.link_volumes(work, str(sandbox),
                             res(disk(10, reservations=DYN, vid="v2", path="taken")))


# ---------------------------------------------------------------------- the master's side


def _accept(m: Master, fw: Any, offer_ids: list[Any], *operations: dict[str, Any]) -> None:
    body = call({"type": "ACCEPT", "framework_id": {"value": fw.id}, "accept": {
        "offer_ids": offer_ids, "filters": {"refuse_seconds": 0},
        "operations": list(operations)}})
    assert body.accept is not None
    m.accept(fw, body.accept)


def _offers(stream: FakeStream) -> list[dict[str, Any]]:
    return [o for e in stream.of("OFFERS") for o in e["offers"]["offers"]]


def _outstanding(stream: FakeStream, fw: Any) -> list[dict[str, Any]]:
    return [o for o in _offers(stream) if o["id"]["value"] in fw.offers]


def _task(task_id: str, agent_id: str, volume: dict[str, Any]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": {"value": agent_id},
            "command": {"value": "true"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}},
                          volume]}


async def test_framework_creates_uses_and_destroys_a_volume() -> None:
    m = master()
    agent_stream, stream = FakeStream(), FakeStream()
    agent = register(m, agent_stream, res="cpus:4;mem:1024;disk:1000")
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "db", "principal": "ops"})
    m.allocate()
    offer = _offers(stream)[-1]
    vol = disk(100, reservations=DYN, vid="v1")
    _accept(m, fw, [offer["id"]],
            {"type": "RESERVE", "reserve": {"resources": [disk(100, reservations=DYN)]}},
            {"type": "CREATE", "create": {"volumes": [vol]}},
            {"type": "LAUNCH", "launch": {"task_infos": [_task("t1", agent.id, vol)]}})
    assert agent.total.volumes()[0].persistence_id == "v1"
    [sent] = agent_stream.of("CHECKPOINT_RESOURCES")
    assert Resources.from_json(sent["checkpoint_resources"]["resources"]) == res(vol)
    m.allocate()
    # In use: neither DESTROY nor UNRESERVE of it can be planned (the volume is not
    # offered either, so it is refused before anything changes).
    offer_ids = [o["id"] for o in _outstanding(stream, fw)]
    with pytest.raises(ValidationError):
        _accept(m, fw, offer_ids, {"type": "DESTROY", "destroy": {"volumes": [vol]}})
    with pytest.raises(ValidationError, match="cannot be unreserved"):
        _accept(m, fw, offer_ids, {"type": "UNRESERVE", "unreserve": {"resources": [vol]}})
    assert agent.total.volumes() and len(agent_stream.of("CHECKPOINT_RESOURCES")) == 1
    # The task ends: the volume is offered back to its role, data and all.
    update(m, agent, fw, "t1", "TASK_FINISHED")
    m.allocate()
    back = [r for o in _outstanding(stream, fw) for r in o["resources"] if "disk" in r
            and "persistence" in r.get("disk", {})]
    assert [r["disk"]["persistence"]["id"] for r in back] == ["v1"]
    _accept(m, fw, [o["id"] for o in _outstanding(stream, fw)],
            {"type": "DESTROY", "destroy": {"volumes": back}},
            {"type": "UNRESERVE", "unreserve": {"resources": [disk(100, reservations=DYN)]}})
    assert agent.total == Resources.parse("cpus:4;mem:1024;disk:1000")
    assert agent_stream.of("CHECKPOINT_RESOURCES")[-1]["checkpoint_resources"]["resources"] == []
    m.allocator.validate()  # type: ignore[attr-defined]


async def test_create_refuses_a_persistence_id_in_use_and_bad_volumes() -> None:
    m = master()
    stream = FakeStream()
    agent = register(m, FakeStream(), res="cpus:4;mem:1024;disk:1000")
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "db", "principal": "ops"})
    m.allocate()
    offer = _offers(stream)[-1]
    _accept(m, fw, [offer["id"]],
            {"type": "RESERVE", "reserve": {"resources": [disk(300, reservations=DYN)]}},
            {"type": "CREATE", "create": {"volumes": [disk(100, reservations=DYN, vid="v1")]}})
    before = agent.total
    m.allocate()
    ids = [o["id"] for o in _outstanding(stream, fw)]
    for volume, problem in (
        (disk(100, reservations=DYN, vid="v1", path="x"), "already in use"),
        (disk(100, reservations=DYN, vid="v2", path="/abs"), "relative"),
        (disk(100, reservations=DYN, vid="v3", shared=True), "SHARED_RESOURCES"),
        (disk(100, reservations=[{"type": "DYNAMIC", "role": "db", "principal": "x"}],
              vid="v4"), "principal"),
    ):
        with pytest.raises(ValidationError, match=problem):
            _accept(m, fw, ids, {"type": "CREATE", "create": {"volumes": [volume]}})
    assert agent.total == before and all(i["value"] in fw.offers for i in ids)


async def test_shared_volume_is_used_by_two_tasks_at_once() -> None:
    m = master()
    stream, plain_stream = FakeStream(), FakeStream()
    agent = register(m, FakeStream(), res="cpus:4;mem:1024;disk:1000")
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "db", "principal": "ops",
                               "capabilities": [{"type": "SHARED_RESOURCES"}]})
    m.allocate()
    shared = disk(100, reservations=DYN, vid="s1", shared=True)
    _accept(m, fw, [_offers(stream)[-1]["id"]],
            {"type": "RESERVE", "reserve": {"resources": [disk(100, reservations=DYN)]}},
            {"type": "CREATE", "create": {"volumes": [shared]}},
            {"type": "LAUNCH", "launch": {"task_infos": [_task("a", agent.id, shared),
                                                         _task("b", agent.id, shared)]}})
    assert {t.id for t in agent.all_tasks()} == {"a", "b"}
    # Only one of them finishes: the volume is still in use and cannot be destroyed.
    update(m, agent, fw, "a", "TASK_FINISHED")
    m.allocate()
    with pytest.raises(ValidationError, match="'s1' is in use"):
        _accept(m, fw, [o["id"] for o in _outstanding(stream, fw)],
                {"type": "DESTROY", "destroy": {"volumes": [shared]}})
    # A framework without SHARED_RESOURCES is never offered the shared volume.
    subscribe(m, plain_stream, {"user": "u", "name": "plain", "role": "db"})
    update(m, agent, fw, "b", "TASK_FINISHED")
    m.allocate()
    for offer in _offers(plain_stream):
        assert not any("shared" in r for r in offer["resources"]), offer
    m.allocator.validate()  # type: ignore[attr-defined]


def _reregister(m: Master, stream: FakeStream, agent_id: str,
                checkpointed: list[dict[str, Any]]) -> Any:
    static = Resources.parse("cpus:4;mem:1024;disk:1000").to_json()
    body = {"agent_info": {"hostname": "h", "port": 5051, "id": {"value": agent_id},
                           "resources": static},
            "resources": static, "checkpointed_resources": checkpointed,
            "address_ip": "127.0.0.1"}
    sub = codec.decode(json.dumps(body).encode(), internal.AgentSubscribe)
    return m.register_agent(stream, sub)  # type: ignore[arg-type]


async def test_reregistration_reports_checkpointed_resources() -> None:
    vol = disk(100, reservations=DYN, vid="v1")
    # A master that does not know the agent (it failed over) takes the agent's word.
    m = master()
    agent = _reregister(m, FakeStream(), "a1", [vol])
    assert agent.total.volumes()[0].persistence_id == "v1"
    assert agent.total.unreserved() == Resources.parse("cpus:4;mem:1024;disk:900")
    # One that knows it holds on to its own view, and sends it again, when the agent
    # missed an operation (here: it reports nothing checkpointed).
    stream = FakeStream()
    again = _reregister(m, stream, "a1", [])
    assert again.total == agent.total
    [sent] = stream.of("CHECKPOINT_RESOURCES")
    assert Resources.from_json(sent["checkpoint_resources"]["resources"]) == res(vol)
    # Checkpointed resources the agent's flags cannot hold are refused.
    with pytest.raises(ValidationError, match="incompatible"):
        _reregister(master(), FakeStream(), "a2", [disk(5000, reservations=DYN, vid="x")])


def test_the_agent_reads_the_masters_checkpoint_event() -> None:
    from mesos.agent.master_link import decode_event
    from mesos.master.events import event

    vol = res(disk(100, reservations=DYN, vid="v1", shared=True))
    got = decode_event(event("CHECKPOINT_RESOURCES", {"resources": vol.to_json()}))
    assert Resources.from_json(codec.to_builtins(got.payload["resources"])) == vol
    # Everything destroyed and unreserved: an empty list, not a missing field.
    empty = decode_event(event("CHECKPOINT_RESOURCES", {"resources": []}))
    assert not empty.payload["resources"]
