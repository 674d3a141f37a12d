"""A persistent volume is indivisible, as in Mesos: ``Resources`` never splits one (a
part of it is not contained in it) nor merges two copies of one, and the master's
DESTROY (ACCEPT and operator) and LAUNCH refuse a volume that is not named whole,
changing nothing. Shared volumes keep being counted in copies."""

from __future__ import annotations

from typing import Any

import pytest

from mesos.errors import ValidationError
from mesos.master import api_operator
from mesos.master.service import Master
from mesos.resources import Resources, ResourcesError, validate_volumes
from tests.unit.test_master_core import FakeStream, master, register, subscribe, update
from tests.unit.test_resources_volumes import DYN, _accept, _offers, _outstanding, _task, disk, res

V64 = disk(64, reservations=DYN, vid="v1")
V32 = disk(32, reservations=DYN, vid="v1")

# ---------------------------------------------------------------------- Resources


def test_a_part_of_a_volume_is_not_contained_and_cannot_be_subtracted() -> None:
    whole, part = res(V64), res(V32)
    assert whole.contains(whole) and not whole.contains(part)
    with pytest.raises(ResourcesError, match="never split"):
        _ = whole - part
    # Saturating subtraction leaves a volume it does not name whole alone (Mesos'
    # Resources::subtract skips what is not subtractable).
    assert whole.minus(part) == whole
    assert whole.minus(whole) == Resources.empty()
    # Plain disk still splits.
    plain = res(disk(64, reservations=DYN))
    assert plain - res(disk(32, reservations=DYN)) == res(disk(32, reservations=DYN))


def test_another_path_or_mode_is_another_volume() -> None:
    whole = res(V64)
    assert not whole.contains(res(disk(64, reservations=DYN, vid="v1", path="other")))
    assert not whole.contains(res(disk(64, reservations=DYN, vid="v1", mode="RO")))
    assert not whole.contains(res(disk(64, reservations=DYN, vid="v2")))


def test_two_copies_of_a_volume_are_never_merged() -> None:
    halves = res(V32, V32)
    assert halves != res(V64) and len(halves) == 2
    assert not res(V64).contains(halves)
    assert [r["scalar"]["value"] for r in halves.to_json()] == [32.0, 32.0]
    assert [v.resources for v in halves.volumes()] == [res(V32), res(V32)]
    assert halves.scalar("disk") == 64.0 and halves.quantities() == {"disk": 64.0}
    # Addition keeps them apart too, whatever the order it happens in.
    assert res(V32) + res(V32) == halves and hash(res(V32) + res(V32)) == hash(halves)
    twice = res(V64) + res(V64)
    assert not res(V64).contains(twice) and twice.contains(twice)
    assert twice - res(V64) == res(V64) and twice.minus(res(V32)) == twice
    mixed = res(V64, V32)
    assert mixed.contains(res(V32)) and mixed - res(V32) == res(V64)
    assert str(mixed).count("disk(db)") == 2
    # The copies stay apart through allocation and its removal, and CREATE would
    # refuse them as one persistence id given twice.
    assert halves.allocate("db").unallocated() == halves
    assert not res(V64).allocate("db").contains(halves.allocate("db"))
    with pytest.raises(ResourcesError, match="given twice"):
        validate_volumes(halves, "create.volumes")
    # The disk they sit on is plain disk, which does add up.
    assert halves.without_volumes() == res(disk(64, reservations=DYN))


def test_shared_volume_copies_are_still_counted() -> None:
    shared = res(disk(64, reservations=DYN, vid="s1", shared=True))
    two = shared + shared
    assert two.contains(shared) and not shared.contains(two)
    assert two - shared == shared and two.minus(two) == Resources.empty()
    assert not shared.contains(res(disk(32, reservations=DYN, vid="s1", shared=True)))
    assert len(two.to_json()) == 2


# ---------------------------------------------------------------------- the master


def _with_volume(m: Master, stream: FakeStream, agent_stream: FakeStream) -> tuple[Any, Any]:
    """An agent holding volume ``v1`` (64) and 64 more reserved disk, offered to ``db``."""
    agent = register(m, agent_stream, res="cpus:4;mem:1024;disk:1000")
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "db", "principal": "ops"})
    m.allocate()
    _accept(m, fw, [_offers(stream)[-1]["id"]],
            {"type": "RESERVE", "reserve": {"resources": [disk(128, reservations=DYN)]}},
            {"type": "CREATE", "create": {"volumes": [V64]}})
    m.allocate()
    return agent, fw


async def test_accept_destroy_of_a_part_of_a_volume_is_refused() -> None:
    m = master()
    stream, agent_stream = FakeStream(), FakeStream()
    agent, fw = _with_volume(m, stream, agent_stream)
    before, checkpoints = agent.total, len(agent_stream.of("CHECKPOINT_RESOURCES"))
    ids = [o["id"] for o in _outstanding(stream, fw)]
    for volumes, problem in (
        ([V32], "'v1' is disk.*:64, not disk.*:32, on the agent"),
        ([V32, V32], "'v1' is disk.*:64, not disk.*:32, on the agent"),
        ([V64, V64], "'v1' is named more than once"),
        ([disk(64, reservations=DYN, vid="v1", path="x")], "not disk"),
    ):
        with pytest.raises(ValidationError, match=problem):
            _accept(m, fw, ids, {"type": "DESTROY", "destroy": {"volumes": volumes}})
    # Nothing changed: the offers are still there, the volume whole.
    assert agent.total == before and all(i["value"] in fw.offers for i in ids)
    assert len(agent_stream.of("CHECKPOINT_RESOURCES")) == checkpoints
    # The whole volume is destroyed.
    _accept(m, fw, ids, {"type": "DESTROY", "destroy": {"volumes": [V64]}})
    assert agent.total.volumes() == []
    assert agent.total.reserved("db").scalar("disk") == 128.0
    m.allocator.validate()  # type: ignore[attr-defined]


async def test_operator_destroy_of_a_part_of_a_volume_is_refused() -> None:
    m = master()
    stream, agent_stream = FakeStream(), FakeStream()
    agent, _ = _with_volume(m, stream, agent_stream)
    before = agent.total
    for volumes in ([V32], [V32, V32], [V64, V64]):
        with pytest.raises(ValidationError, match="destroyed whole"):
            api_operator.plan_operation(m, "DESTROY_VOLUMES", agent.id, res(*volumes),
                                        "destroy_volumes.volumes")
    assert agent.total == before
    old, new = api_operator.plan_operation(m, "DESTROY_VOLUMES", agent.id, res(V64),
                                           "destroy_volumes.volumes")
    assert (old, new) == (res(V64), res(disk(64, reservations=DYN)))


async def test_launch_with_a_part_of_an_offered_volume_is_refused() -> None:
    m = master()
    stream, agent_stream = FakeStream(), FakeStream()
    agent, fw = _with_volume(m, stream, agent_stream)
    ids = [o["id"] for o in _outstanding(stream, fw)]
    for name, volumes, problem in (
        ("half", [V32], "'v1' is disk.*:64, not disk.*:32, in the remaining offered"),
        ("halves", [V32, V32], "'v1' is disk.*:64, not disk.*:32, in the remaining offered"),
        ("twice", [V64, V64], "'v1' is named more than once"),
    ):
        task = _task(name, agent.id, volumes[0])
        task["resources"].extend(volumes[1:])
        with pytest.raises(ValidationError, match=problem) as info:
            _accept(m, fw, ids, {"type": "LAUNCH", "launch": {"task_infos": [task]}})
        assert "task_infos[0].resources" in str(info.value)
    # Two tasks cannot both take the one (non-shared) volume either.
    with pytest.raises(ValidationError, match="'v1' of role 'db' is not found in the remaining"):
        _accept(m, fw, ids, {"type": "LAUNCH", "launch": {"task_infos": [
            _task("a", agent.id, V64), _task("b", agent.id, V64)]}})
    # A LAUNCH_GROUP member is held to the same rule.
    group = {"type": "LAUNCH_GROUP", "launch_group": {
        "executor": {"executor_id": {"value": "e"}, "type": "DEFAULT",
                     "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]},
        "task_group": {"tasks": [_task("g", agent.id, V32)]}}}
    with pytest.raises(ValidationError, match=r"tasks\[0\]\.resources.*not disk"):
        _accept(m, fw, ids, group)
    assert agent.all_tasks() == [] and all(i["value"] in fw.offers for i in ids)
    # The whole volume launches, and comes back whole when the task ends.
    _accept(m, fw, ids, {"type": "LAUNCH", "launch": {"task_infos": [
        _task("whole", agent.id, V64)]}})
    assert [t.id for t in agent.all_tasks()] == ["whole"]
    update(m, agent, fw, "whole", "TASK_FINISHED")
    m.allocate()
    back = [Resources.from_json(o["resources"]).volumes() for o in _outstanding(stream, fw)]
    assert [v.resources for vs in back for v in vs] == [res(V64)]
    m.allocator.validate()  # type: ignore[attr-defined]
