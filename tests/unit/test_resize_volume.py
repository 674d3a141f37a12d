"""GROW_VOLUME and SHRINK_VOLUME: the ``Resources`` conversions and their refusals,
the agent keeping a resized volume's directory, and the master's ACCEPT planning
(in-process, fake streams)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mesos.agent import volumes
from mesos.errors import ValidationError
from mesos.master.accept import whole_volume_problem
from mesos.resources import Resources, ResourcesError, grow_volume, shrink_volume
from tests.unit.test_master_core import FakeStream, master, register, subscribe
from tests.unit.test_resources_volumes import DYN, _accept, _offers, _outstanding, disk, res

OTHER = [{"type": "DYNAMIC", "role": "web", "principal": "ops"}]


def test_grow_turns_volume_and_addition_into_a_larger_volume() -> None:
    vol = res(disk(100, reservations=DYN, vid="v1"))
    old, new = grow_volume(vol, res(disk(50, reservations=DYN)), "g")
    assert old == vol + res(disk(50, reservations=DYN))
    assert new == res(disk(150, reservations=DYN, vid="v1"))
    # The conversion keeps the quantities: nothing is made or lost.
    assert old.quantities() == new.quantities() == {"disk": 150.0}


def test_shrink_gives_back_plain_disk_of_the_same_reservation() -> None:
    vol = res(disk(100, reservations=DYN, vid="v1"))
    old, new = shrink_volume(vol, 30, "s")
    assert old == vol
    assert new == res(disk(70, reservations=DYN, vid="v1"), disk(30, reservations=DYN))
    assert new.volumes()[0].persistence_id == "v1"


def test_path_disk_keeps_its_source() -> None:
    source = {"type": "PATH", "path": {"root": "/mnt/a"}}
    vol = disk(100, reservations=DYN, vid="v1")
    vol["disk"]["source"] = source
    addition = {**disk(10, reservations=DYN), "disk": {"source": source}}
    _, new = grow_volume(res(vol), res(addition), "g")
    assert new.scalar("disk") == 110.0 and new.volumes()[0].persistence_id == "v1"
    _, shrunk = shrink_volume(res(vol), 40, "s")
    assert shrunk == res({**vol, "scalar": {"value": 60}}, {**disk(40, reservations=DYN),
                                                            "disk": {"source": source}})
    # Disk from the default (root) disk does not grow a volume on another disk.
    with pytest.raises(ResourcesError, match="Incompatible"):
        grow_volume(res(vol), res(disk(10, reservations=DYN)), "g")


MOUNT = {"type": "MOUNT", "mount": {"root": "/mnt/m"}}


@pytest.mark.parametrize(("volume", "addition", "problem"), [
    (disk(100, reservations=DYN, vid="v1", shared=True), disk(10, reservations=DYN),
     "shared persistent volume"),
    (disk(100, reservations=DYN), disk(10, reservations=DYN), "not a persistent volume"),
    (disk(100, reservations=DYN, vid="v1"), disk(10), "Incompatible"),
    (disk(100, reservations=DYN, vid="v1"), disk(10, reservations=OTHER), "Incompatible"),
    (disk(100, reservations=DYN, vid="v1"), disk(10, reservations=DYN, vid="v2"),
     "Incompatible"),
    (disk(100, reservations=DYN, vid="v1"), disk(0, reservations=DYN), "greater than zero"),
    ({**disk(100, reservations=DYN, vid="v1"),
      "disk": {"persistence": {"id": "v1"}, "volume": {"mode": "RW", "container_path": "d"},
               "source": MOUNT}},
     {**disk(10, reservations=DYN), "disk": {"source": MOUNT}}, "MOUNT disk"),
])
def test_grow_refusals(volume: dict[str, Any], addition: dict[str, Any], problem: str) -> None:
    with pytest.raises(ResourcesError, match=problem):
        grow_volume(res(volume), res(addition), "grow")


@pytest.mark.parametrize(("volume", "subtract", "problem"), [
    (disk(100, reservations=DYN, vid="v1"), 0, "greater than zero"),
    (disk(100, reservations=DYN, vid="v1"), -5, "greater than zero"),
    (disk(100, reservations=DYN, vid="v1"), 0.0001, "greater than zero"),  # rounds to 0
    (disk(100, reservations=DYN, vid="v1"), 100, "smaller than the size"),
    (disk(100, reservations=DYN, vid="v1"), 250, "smaller than the size"),
    (disk(100, reservations=DYN, vid="v1"), float("nan"), "not a number"),
    (disk(100, reservations=DYN, vid="v1", shared=True), 10, "shared persistent volume"),
    ({**disk(100, reservations=DYN, vid="v1"),
      "disk": {"persistence": {"id": "v1"}, "volume": {"mode": "RW", "container_path": "d"},
               "source": MOUNT}}, 10, "MOUNT disk"),
])
def test_shrink_refusals(volume: dict[str, Any], subtract: float, problem: str) -> None:
    with pytest.raises(ResourcesError, match=problem):
        shrink_volume(res(volume), subtract, "shrink")


def test_two_volumes_at_once_are_refused() -> None:
    both = res(disk(100, reservations=DYN, vid="v1"), disk(100, reservations=DYN, vid="v2"))
    with pytest.raises(ResourcesError, match="exactly one"):
        shrink_volume(both, 10, "shrink")


def test_the_whole_volume_must_be_named() -> None:
    held = res(disk(100, reservations=DYN, vid="v1"), disk(50, reservations=DYN))
    assert whole_volume_problem(res(disk(100, reservations=DYN, vid="v1")), held) is None
    part = whole_volume_problem(res(disk(60, reservations=DYN, vid="v1")), held)
    assert part is not None and "not disk" in part
    missing = whole_volume_problem(res(disk(10, reservations=DYN, vid="v9")), held)
    assert missing is not None and "not found" in missing


def test_the_agent_keeps_a_resized_volumes_directory(tmp_path: Path) -> None:
    work = str(tmp_path)
    static = Resources.parse("cpus:2;disk:1000")
    vol = res(disk(100, reservations=DYN, vid="v1"))
    state = volumes.apply(work, volumes.recover(work, static), vol)
    path = volumes.volume_path(work, "db", "v1")
    Path(path, "data.txt").write_text("kept")
    _, grown = grow_volume(vol, res(disk(200, reservations=DYN)), "g")
    state = volumes.apply(work, state, grown)
    _, shrunk = shrink_volume(grown, 250, "s")
    state = volumes.apply(work, state, shrunk)
    assert Path(path, "data.txt").read_text() == "kept"
    assert state.checkpointed == shrunk and os.path.isdir(path)
    # A restarted agent lays the resized volume over its flag resources again.
    assert volumes.recover(work, static).total == static - res(disk(300)) + shrunk


async def test_framework_grows_and_shrinks_an_offered_volume() -> None:
    m = master()
    agent_stream, stream = FakeStream(), FakeStream()
    agent = register(m, agent_stream, res="cpus:4;mem:1024;disk:1000")
    fw = subscribe(m, stream, {"user": "u", "name": "n", "role": "db", "principal": "ops"})
    m.allocate()
    offer = _offers(stream)[-1]
    vol = disk(100, reservations=DYN, vid="v1")
    # Reserve, create and grow in one ACCEPT: the grow sees what the CREATE made.
    _accept(m, fw, [offer["id"]],
            {"type": "RESERVE", "reserve": {"resources": [disk(400, reservations=DYN)]}},
            {"type": "CREATE", "create": {"volumes": [vol]}},
            {"type": "GROW_VOLUME", "grow_volume": {
                "volume": vol, "addition": disk(250, reservations=DYN)}})
    grown = disk(350, reservations=DYN, vid="v1")
    assert agent.total.volumes()[0].resources == res(grown)
    sent = agent_stream.of("CHECKPOINT_RESOURCES")[-1]["checkpoint_resources"]["resources"]
    assert Resources.from_json(sent) == res(grown, disk(50, reservations=DYN))
    m.allocate()
    ids = [o["id"] for o in _outstanding(stream, fw)]
    before = agent.total
    for op, problem in (
        # The old size: not the volume that is offered.
        ({"type": "SHRINK_VOLUME", "shrink_volume": {"volume": vol, "subtract": {"value": 10}}},
         "not disk"),
        ({"type": "SHRINK_VOLUME", "shrink_volume": {"volume": grown,
                                                     "subtract": {"value": 350}}},
         "smaller than the size"),
        # More than is offered.
        ({"type": "GROW_VOLUME", "grow_volume": {"volume": grown,
                                                 "addition": disk(60, reservations=DYN)}},
         "not in the remaining offered"),
        ({"type": "GROW_VOLUME"}, "grow_volume' to be present"),
    ):
        with pytest.raises(ValidationError, match=problem):
            _accept(m, fw, ids, op)
    assert agent.total == before and all(i["value"] in fw.offers for i in ids)
    _accept(m, fw, ids, {"type": "SHRINK_VOLUME", "shrink_volume": {
        "volume": grown, "subtract": {"value": 300}}})
    assert agent.total.volumes()[0].resources == res(disk(50, reservations=DYN, vid="v1"))
    assert agent.total.reserved("db").scalar("disk") == 400.0
    m.allocator.validate()  # type: ignore[attr-defined]
