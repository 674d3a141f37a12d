"""Registry operations for maintenance and agent draining (pure), and the parsing of
maintenance schedules that guards them."""

from __future__ import annotations

import msgspec
import pytest

from mesos.master.maintenance import parse_machines, parse_schedule, window_json
from mesos.master.registry import (
    AdmitAgent,
    DeactivateAgent,
    DrainRecord,
    MachineRecord,
    ReactivateAgent,
    Registry,
    StartMaintenance,
    StopMaintenance,
    UpdateSchedule,
    WindowRecord,
)

A = MachineRecord(hostname="a", ip="10.0.0.1")
B = MachineRecord(hostname="b")
C = MachineRecord(ip="10.0.0.3")


def test_schedule_start_and_stop() -> None:
    r = Registry()
    windows = [WindowRecord(machine_ids=[A, B], start=100.0, duration=60.0),
               WindowRecord(machine_ids=[C], start=200.0)]
    assert UpdateSchedule(windows=windows).apply(r)
    assert not UpdateSchedule(windows=windows).apply(r)  # the same again changes nothing
    assert AdmitAgent(id="S1", info={"hostname": "a"}).apply(r)
    assert StartMaintenance(machines=[A], agent_ids=["S1"]).apply(r)
    assert r.down_machines == [A] and "S1" not in r.agents
    assert not StartMaintenance(machines=[A]).apply(r)
    assert StopMaintenance(machines=[A, C]).apply(r)
    assert r.down_machines == []
    # A left its window, and C's window, now empty, is gone.
    assert r.schedule == [WindowRecord(machine_ids=[B], start=100.0, duration=60.0)]
    assert not StopMaintenance(machines=[A]).apply(r)


def test_deactivate_drain_and_reactivate() -> None:
    r = Registry()
    assert DeactivateAgent(id="S1").apply(r)
    assert not DeactivateAgent(id="S1").apply(r)
    drain = DrainRecord(max_grace_period=5.0, mark_gone=True)
    assert DeactivateAgent(id="S1", drain=drain).apply(r)
    assert r.drains["S1"].state == "DRAINING"
    assert DeactivateAgent(id="S1", drain=DrainRecord(state="DRAINED", max_grace_period=5.0,
                                                      mark_gone=True)).apply(r)
    assert r.drains["S1"].state == "DRAINED"
    assert ReactivateAgent(id="S1").apply(r)
    assert r.deactivated == [] and r.drains == {}
    assert not ReactivateAgent(id="S1").apply(r)


def test_maintenance_survives_encoding_and_old_registries_decode() -> None:
    r = Registry()
    UpdateSchedule(windows=[WindowRecord(machine_ids=[A], start=1.5)]).apply(r)
    StartMaintenance(machines=[A]).apply(r)
    DeactivateAgent(id="S9", drain=DrainRecord()).apply(r)
    back = msgspec.json.decode(msgspec.json.encode(r), type=Registry)
    assert back == r
    # A registry written before maintenance existed has none of these fields.
    old = msgspec.json.decode(b'{"agents": {}, "weights": {"eng": 2.0}}', type=Registry)
    assert old.schedule == [] and old.down_machines == [] and old.drains == {}


def test_parse_schedule_round_trips_and_names_problems() -> None:
    text = {"windows": [{"machine_ids": [{"hostname": "a", "ip": "10.0.0.1"}],
                         "unavailability": {"start": {"nanoseconds": "1500000000"},
                                            "duration": {"nanoseconds": 60_000_000_000}}}]}
    windows = parse_schedule(text, "schedule")
    assert windows == [WindowRecord(machine_ids=[A], start=1.5, duration=60.0)]
    assert window_json(windows[0])["unavailability"]["start"] == {"nanoseconds": 1_500_000_000}
    with pytest.raises(ValueError, match=r"schedule.windows\[0\].machine_ids\[1\]"):
        parse_schedule({"windows": [{"machine_ids": [{"hostname": "a"}, {"hostname": "a"}],
                                     "unavailability": {"start": {"nanoseconds": 0}}}]},
                       "schedule")
    with pytest.raises(ValueError, match="not a valid IPv4"):
        parse_machines([{"ip": "a.b.c.d"}], "machines")
    with pytest.raises(ValueError, match=r"more than once in 'machines' \('machines\[0\]'"):
        parse_machines([{"hostname": "b"}, {"hostname": "B"}], "machines")
    assert parse_machines([{"hostname": "B"}], "machines") == [B]  # hostnames ignore case
