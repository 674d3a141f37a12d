"""Registry operations (pure) and the registrar that persists them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

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


def test_copy_does_not_share_records() -> None:
    r = Registry()
    AdmitAgent(id="S1", info=INFO).apply(r)
    c = r.copy()
    c.agents["S1"].info["hostname"] = "other"
    assert r.agents["S1"].info["hostname"] == "h1"


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
