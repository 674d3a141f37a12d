"""The master with a SQLite registry, in-process: acknowledgements wait for the
write, and a second master on the same work dir recovers what the first wrote."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mesos.errors import ValidationError
from mesos.master.registry import MarkAgentGone, UpdateWeights
from mesos.master.service import Master
from tests.unit.test_master_core import FakeStream, master, register, reported, subscribe


async def settle(m: Master) -> None:
    await m.registrar.drain()
    await asyncio.sleep(0)


async def test_subscribed_waits_for_the_registry_and_a_new_master_recovers(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    await m.registrar.apply(UpdateWeights(weights={"eng": 3.0}))
    agent_stream, fw_stream = FakeStream(), FakeStream()
    agent = register(m, agent_stream)
    fw = subscribe(m, fw_stream, {"user": "u", "name": "n", "failover_timeout": 60})
    # Nothing is acknowledged before the write lands.
    assert agent_stream.of("SUBSCRIBED") == [] and fw_stream.of("SUBSCRIBED") == []
    await settle(m)
    assert len(agent_stream.of("SUBSCRIBED")) == 1 and len(fw_stream.of("SUBSCRIBED")) == 1
    await m.stop()

    again = master(work)
    assert again.weights == {"eng": 3.0}
    recovered = again.frameworks[fw.id]
    assert recovered.recovered and not recovered.active
    assert set(again.recovered_agents) == {agent.id}
    # The agent comes back with its task; the framework re-subscribes with its id.
    back = FakeStream()
    register(again, back, agent.id, tasks=[reported("t1", fw.id, agent.id, "TASK_RUNNING")])
    await settle(again)
    assert back.of("SUBSCRIBED") and not again.recovered_agents
    stream = FakeStream()
    subscribe(again, stream, {"user": "u", "name": "n", "id": {"value": fw.id}})
    await settle(again)
    assert stream.of("SUBSCRIBED")[0]["subscribed"]["framework_id"] == {"value": fw.id}
    assert again.frameworks[fw.id].tasks["t1"].state == "TASK_RUNNING"
    await again.stop()


async def test_missing_agents_become_unreachable_and_gone_ones_are_refused(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work)
    first, second = register(m, FakeStream()), register(m, FakeStream())
    await settle(m)
    await m.registrar.apply(MarkAgentGone(id=second.id, time=1.0))
    await m.stop()

    again = master(work, "--agent_reregister_timeout=10ms")
    fw_stream = FakeStream()
    subscribe(again, fw_stream)
    again.start()
    await asyncio.sleep(0.05)
    await settle(again)
    assert set(again.unreachable_agents) == {first.id}
    assert fw_stream.of("FAILURE") == [{"type": "FAILURE", "failure": {"agent_id": {"value": first.id}}}]
    with pytest.raises(ValidationError, match="gone"):
        register(again, FakeStream(), second.id)
    await again.stop()
    third = master(work)
    assert set(third.unreachable_agents) == {first.id}
    await third.stop()


async def test_gone_and_pruned_agents_are_durable(tmp_path: Path) -> None:
    work = f"--work_dir={tmp_path}"
    m = master(work, "--registry_max_agent_count=1")
    fw_stream = FakeStream()
    subscribe(m, fw_stream)
    old, new, doomed = register(m, FakeStream()), register(m, FakeStream()), register(m, FakeStream())
    await settle(m)
    m.mark_unreachable(old, "test")
    await settle(m)
    m.mark_unreachable(new, "test")
    await settle(m)
    await settle(m)  # the prune submitted once the second mark was durable
    assert set(m.unreachable_agents) == {new.id}
    # Two concurrent MARK_AGENT_GONE calls: one write, one report.
    await asyncio.gather(m.mark_gone(doomed.id), m.mark_gone(doomed.id))
    assert len([e for e in fw_stream.of("FAILURE")
                if e["failure"]["agent_id"]["value"] == doomed.id]) == 1
    await m.stop()
    again = master(work)
    assert set(again.unreachable_agents) == {new.id}
    assert set(again.registrar.registry.gone) == {doomed.id} and not again.recovered_agents
    await again.stop()
