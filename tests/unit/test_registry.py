"""Registry operations (pure) and the registrar that persists them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from mesos.master import registry
from mesos.master.registrar import KEY, Registrar, open_storage
from mesos.master.registry import (
    AddFramework,
    AdmitAgent,
    MarkAgentGone,
    MarkAgentReachable,
    MarkAgentUnreachable,
    PruneUnreachable,
    QuotaRecord,
    Registry,
    RemoveAgent,
    RemoveFramework,
    UpdateQuota,
    UpdateWeights,
)
from mesos.state import MemoryStorage, SqliteStorage, VersionConflict

INFO = {"hostname": "h1", "port": 5051, "id": {"value": "S1"}}


def test_agent_lifecycle_operations() -> None:
    r = Registry()
    assert AdmitAgent(id="S1", info=INFO).apply(r)
    assert not AdmitAgent(id="S1", info=INFO).apply(r)  # the same again changes nothing
    assert MarkAgentUnreachable(id="S1", time=10.0).apply(r)
    assert "S1" not in r.agents and r.unreachable["S1"].time == 10.0
    assert not MarkAgentUnreachable(id="S1", time=11.0).apply(r)
    assert MarkAgentReachable(id="S1").apply(r)
    assert r.agents["S1"].info == INFO and not r.unreachable
    assert MarkAgentUnreachable(id="S1", time=12.0).apply(r)
    # Re-admission of an unreachable agent makes it reachable again.
    assert AdmitAgent(id="S1", info=INFO).apply(r)
    assert not r.unreachable
    assert MarkAgentGone(id="S1", time=13.0).apply(r)
    assert r.gone == {"S1": 13.0} and not r.agents
    assert not AdmitAgent(id="S1", info=INFO).apply(r)  # gone is forever
    assert AdmitAgent(id="S2", info=INFO).apply(r)
    assert RemoveAgent(id="S2").apply(r)
    assert not RemoveAgent(id="S2").apply(r)


def test_framework_weight_and_quota_operations() -> None:
    r = Registry()
    assert AddFramework(id="F1", info={"user": "u", "name": "n"}).apply(r)
    assert not AddFramework(id="F1", info={"user": "u", "name": "n"}).apply(r)
    assert AddFramework(id="F1", info={"user": "u", "name": "renamed"}).apply(r)
    assert RemoveFramework(id="F1").apply(r)
    assert not RemoveFramework(id="F1").apply(r)
    assert UpdateWeights(weights={"eng": 2.0}).apply(r)
    assert not UpdateWeights(weights={"eng": 2.0}).apply(r)
    quota = QuotaRecord(role="eng", guarantees={"cpus": 1.0}, limits={"cpus": 2.0})
    assert UpdateQuota(configs=[quota]).apply(r)
    assert not UpdateQuota(configs=[quota]).apply(r)
    assert UpdateQuota(configs=[QuotaRecord(role="eng")]).apply(r)  # empty config removes it
    assert r.quotas == {} and r.weights == {"eng": 2.0}


def test_operations_are_deterministic() -> None:
    ops = [AdmitAgent(id="S1", info=INFO), AddFramework(id="F1", info={"user": "u", "name": "n"}),
           MarkAgentUnreachable(id="S1", time=5.0), UpdateWeights(weights={"a": 3.0})]
    results = []
    for _ in range(2):
        r = Registry()
        for op in ops:
            op.apply(r)
        results.append(msgspec.json.encode(r))
    assert results[0] == results[1]


def test_deep_copy_does_not_share_records() -> None:
    r = Registry()
    AdmitAgent(id="S1", info=INFO).apply(r)
    c = r.deep_copy()
    c.agents["S1"].info["hostname"] = "other"
    assert r.agents["S1"].info["hostname"] == "h1"
    shallow = r.copy()
    shallow.agents.pop("S1")
    assert "S1" in r.agents  # containers are the copy's own


async def test_registrar_persists_and_recovers(tmp_path: Path) -> None:
    storage = open_storage("sqlite", str(tmp_path))
    registrar = Registrar(storage)
    registrar.recover()
    assert await registrar.apply(AdmitAgent(id="S1", info=INFO), UpdateWeights(weights={"e": 2}))
    assert not await registrar.apply(UpdateWeights(weights={"e": 2}))
    done: list[bool] = []
    registrar.submit([AddFramework(id="F1", info={"user": "u", "name": "n"})],
                     then=lambda: done.append(True))
    await registrar.drain()
    await asyncio.sleep(0)
    assert done == [True]
    registrar.close()
    again = Registrar(SqliteStorage(str(tmp_path / "registry.sqlite")))
    recovered = again.recover()
    assert set(recovered.agents) == {"S1"} and set(recovered.frameworks) == {"F1"}
    assert recovered.weights == {"e": 2.0} and again.version == 2
    again.close()


async def test_registrar_refuses_to_overwrite_a_concurrent_writer() -> None:
    storage = MemoryStorage()
    registrar = Registrar(storage)
    registrar.recover()
    storage.put(KEY, msgspec.json.encode(Registry()), 0)  # someone else wrote first
    with pytest.raises(VersionConflict):
        await registrar.apply(UpdateWeights(weights={"e": 2.0}))
    assert registrar.registry.weights == {}  # nothing applied that was not durable


def test_registry_kind_names() -> None:
    assert isinstance(open_storage("in_memory", None), MemoryStorage)
    with pytest.raises(ValueError, match="needs --work_dir"):
        open_storage("replicated_log", None)
    with pytest.raises(ValueError, match="Invalid --registry"):
        open_storage("zookeeper", None)


def test_prune_unreachable_by_age_then_count_oldest_first() -> None:
    r = Registry()
    for i, when in enumerate([10.0, 50.0, 30.0, 40.0]):
        AdmitAgent(id=f"S{i}", info=INFO).apply(r)
        MarkAgentUnreachable(id=f"S{i}", time=when).apply(r)
    MarkAgentGone(id="G", time=0.0).apply(r)
    # Nothing is old enough and the count is not reached: nothing changes.
    assert not PruneUnreachable(max_age=100.0, max_count=10, now=60.0).apply(r)
    # More than 25s old at t=60: S0 (50s) and S2 (30s).
    assert PruneUnreachable(max_age=25.0, max_count=10, now=60.0).apply(r)
    assert set(r.unreachable) == {"S1", "S3"}
    # Then the oldest beyond the count.
    assert PruneUnreachable(max_age=100.0, max_count=1, now=60.0).apply(r)
    assert set(r.unreachable) == {"S1"}
    assert PruneUnreachable(max_age=100.0, max_count=0, now=60.0).apply(r)
    assert not r.unreachable and r.gone == {"G": 0.0}  # gone agents are kept
    assert not PruneUnreachable(max_age=0.0, max_count=0, now=60.0).apply(r)


def test_prune_unreachable_is_deterministic() -> None:
    base = Registry()
    for i in range(5):
        MarkAgentUnreachable(id=f"S{i}", time=float(i)).apply(base)  # not admitted: no-op
        AdmitAgent(id=f"S{i}", info=INFO).apply(base)
        MarkAgentUnreachable(id=f"S{i}", time=float(i % 3)).apply(base)
    op = PruneUnreachable(max_age=10.0, max_count=2, now=5.0)
    a, b = base.copy(), base.copy()
    op.apply(a)
    op.apply(b)
    assert a == b and set(a.unreachable) == {"S2", "S4"}  # ties are broken by id


# ------------------------------------------------- copies share records: none is changed

def _populated() -> registry.Registry:
    from mesos.master.registry import (
        DrainRecord,
        MachineRecord,
        QuotaRecord,
        UnreachableRecord,
        WindowRecord,
    )

    r = registry.Registry()
    for i in range(3):
        registry.AdmitAgent(id=f"S{i}", info={"hostname": f"h{i}", "port": 5051}).apply(r)
        registry.AddFramework(id=f"F{i}", info={"name": f"f{i}", "user": "u"}).apply(r)
    r.unreachable["U0"] = UnreachableRecord(id="U0", info={"hostname": "u"}, time=5.0)
    r.gone["G0"] = 1.0
    r.weights["a"] = 2.0
    r.quotas["a"] = QuotaRecord(role="a", guarantees={"cpus": 1.0}, limits={"cpus": 2.0})
    machine = MachineRecord(hostname="h0", ip="10.0.0.1")
    r.schedule.append(WindowRecord(machine_ids=[machine], start=10.0, duration=60.0))
    r.deactivated.append("S2")
    r.drains["S2"] = DrainRecord(max_grace_period=5.0)
    return r


def _every_operation() -> list[registry.Operation]:
    from mesos.master.registry import DrainRecord, MachineRecord, QuotaRecord, WindowRecord

    machine = MachineRecord(hostname="h0", ip="10.0.0.1")
    return [
        registry.AdmitAgent(id="S0", info={"hostname": "new", "port": 5052}),
        registry.AdmitAgent(id="U0", info={"hostname": "u", "port": 5051}),
        registry.MarkAgentUnreachable(id="S1", time=9.0),
        registry.MarkAgentReachable(id="U0"),
        registry.MarkAgentGone(id="S1", time=9.0),
        registry.PruneUnreachable(max_age=1.0, max_count=0, now=100.0),
        registry.RemoveAgent(id="S0"),
        registry.AddFramework(id="F0", info={"name": "renamed", "user": "u"}),
        registry.RemoveFramework(id="F1"),
        registry.UpdateWeights(weights={"a": 3.0, "b": 1.0}),
        registry.UpdateQuota(configs=[QuotaRecord(role="a", guarantees={"cpus": 3.0})]),
        registry.UpdateSchedule(windows=[WindowRecord(machine_ids=[machine], start=20.0)]),
        registry.StartMaintenance(machines=[machine], agent_ids=["S0"]),
        registry.StopMaintenance(machines=[machine]),
        registry.DeactivateAgent(id="S1", drain=DrainRecord(mark_gone=True)),
        registry.ReactivateAgent(id="S2"),
    ]


def test_every_operation_leaves_the_registry_it_was_copied_from_unchanged() -> None:
    """Registry.copy shares records between the copies (a deep copy per write made
    admitting agents quadratic), which is only safe while no operation changes a record
    in place. Every operation type is applied to a copy of a populated registry."""
    operations = _every_operation()
    covered = {type(op) for op in operations}
    declared = set(registry.Operation.__subclasses__())
    assert declared <= covered, f"add these to _every_operation: {declared - covered}"
    original = _populated()
    before = msgspec.json.encode(original)
    for op in operations:
        candidate = original.copy()
        op.apply(candidate)
        assert msgspec.json.encode(original) == before, f"{type(op).__name__} changed the original"


def test_copy_names_every_field() -> None:
    """A field added to Registry but not to copy() would be lost on every write."""
    r = _populated()
    assert msgspec.json.encode(r.copy()) == msgspec.json.encode(r)
    assert all(getattr(r.copy(), f) is not getattr(r, f) for f in Registry.__struct_fields__)
