"""Resizing persistent volumes on a real master and agent: GROW_VOLUME and
SHRINK_VOLUME from the operator API and in a framework's ACCEPT. The new size shows
in GET_AGENTS, /master/slaves and the next offer; the data a task wrote survives (the
volume keeps its persistence id, so its directory); bad input changes nothing; a
restarted master learns the resized volume from the agent's checkpoint."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from mesos.resources import Resources
from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import operator
from tests.integration.test_volumes import accept, ack

pytestmark = pytest.mark.slow

DYN = [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]
FW: dict[str, Any] = {"user": "root", "name": "resize", "role": "db", "principal": "ops"}


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "reservations": DYN}


def volume(size: float, vid: str, *, shared: bool = False) -> dict[str, Any]:
    r = {**scalar("disk", size), "disk": {"persistence": {"id": vid, "principal": "ops"},
                                          "volume": {"mode": "RW", "container_path": "data"}}}
    if shared:
        r["shared"] = {}
    return r


def grow(agent_id: str, vol: dict[str, Any], addition: float) -> dict[str, Any]:
    return {"type": "GROW_VOLUME", "grow_volume": {
        "agent_id": {"value": agent_id}, "volume": vol, "addition": scalar("disk", addition)}}


def shrink(agent_id: str, vol: dict[str, Any], subtract: Any) -> dict[str, Any]:
    return {"type": "SHRINK_VOLUME", "shrink_volume": {
        "agent_id": {"value": agent_id}, "volume": vol, "subtract": {"value": subtract}}}


def sizes(resources: list[dict[str, Any]]) -> dict[str, float]:
    """``{persistence id: size}`` of the volumes in v1 Resource JSON."""
    return {v.persistence_id: v.resources.scalar("disk")
            for v in Resources.from_json(resources).volumes()}


async def agent_total(master: str) -> Resources:
    code, body = await operator(master, {"type": "GET_AGENTS"})
    assert code == 200, body
    [agent] = body["get_agents"]["agents"]
    return Resources.from_json(agent["total_resources"])


def state_volumes(c: Cluster) -> dict[str, float]:
    """The volumes of the one agent in /master/slaves (its ``reserved_resources_full``;
    /master/state only sums reserved disk per role, which a resize does not change)."""
    [slave] = c.get("/master/slaves")["slaves"]
    return {pid: size for items in slave["reserved_resources_full"].values()
            for pid, size in sizes(items).items()}


async def offered_volume(s: RawScheduler, vid: str, size: float) -> dict[str, Any]:
    """The next offer holding volume ``vid`` of ``size`` MB; any other offer (one made
    before the resize, say) is declined."""
    for _ in range(100):
        event = await s.next_event("*", timeout=90)
        if event["type"] == "UPDATE":
            await ack(s, event["update"]["status"])
        if event["type"] != "OFFERS":
            continue
        offers = event["offers"]["offers"]
        found = [o for o in offers if sizes(o["resources"]).get(vid) == size]
        await decline(s, {"offers": {"offers": [o for o in offers if o not in found[:1]]}})
        if found:
            return dict(found[0])
    raise AssertionError(f"volume {vid} of {size} was never offered")


def task(task_id: str, agent_id: dict[str, str], command: str,
         vol: dict[str, Any]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
            "command": {"value": command},
            "resources": [scalar("cpus", 0.25), scalar("mem", 32), vol]}


TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED"}


async def decline(s: RawScheduler, event: dict[str, Any]) -> None:
    """Offers that arrive while waiting for something else are declined (refusing
    nothing), so they come back instead of staying outstanding unseen."""
    for offer in event["offers"]["offers"]:
        await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
            "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})


async def state_of(s: RawScheduler, task_id: str, wanted: set[str]) -> str:
    """Acknowledge updates until ``task_id`` reaches a state in ``wanted`` or a
    terminal one; that state."""
    for _ in range(200):
        event = await s.next_event("*", timeout=90)
        if event["type"] == "OFFERS":
            await decline(s, event)
        if event["type"] != "UPDATE":
            continue
        status = event["update"]["status"]
        await ack(s, status)
        if status["task_id"]["value"] == task_id and (
                status["state"] in wanted or status["state"] in TERMINAL):
            return str(status["state"])
    raise AssertionError(f"task {task_id} never got to {wanted}")


async def run_task(s: RawScheduler, vol: dict[str, Any], name: str, command: str,
                   until: str = "TASK_FINISHED",
                   extra: dict[str, Any] | None = None) -> tuple[str, str]:
    """Launch ``command`` on ``vol`` (which must be offered at its size, after the
    operation ``extra`` if given, in the same ACCEPT); its id and the state it got
    to (``until`` or a terminal one). A task that never ran because its offer was
    rescinded before the ACCEPT arrived (TASK_LOST/DROPPED) is tried again."""
    vid = vol["disk"]["persistence"]["id"]
    size = vol["scalar"]["value"]
    if extra is not None and extra["type"] == "GROW_VOLUME":
        size -= extra["grow_volume"]["addition"]["scalar"]["value"]
    for attempt in range(5):
        offer = await offered_volume(s, vid, size)
        task_id = f"{name}-{attempt}"
        launch = {"type": "LAUNCH", "launch": {"task_infos": [
            task(task_id, offer["agent_id"], command, vol)]}}
        await accept(s, offer, *([extra] if extra else []), launch)
        state = await state_of(s, task_id, {until})
        if state not in ("TASK_LOST", "TASK_DROPPED"):
            return task_id, state
    raise AssertionError(f"{name}: no valid offer in 5 attempts")


READ = 'test "$(cat data/msg)" = kept'


async def test_operator_grows_and_shrinks_a_volume(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        agent_id = c.get("/master/slaves")["slaves"][0]["id"]
        master = c.master_url
        for body in (
            {"type": "RESERVE_RESOURCES", "reserve_resources": {
                "agent_id": {"value": agent_id},
                "resources": [scalar("cpus", 2), scalar("mem", 256), scalar("disk", 512)]}},
            {"type": "CREATE_VOLUMES", "create_volumes": {
                "agent_id": {"value": agent_id},
                "volumes": [volume(64, "v1"), volume(32, "s1", shared=True)]}},
        ):
            code, text = await operator(master, body)
            assert code == 202, text
        v64 = volume(64, "v1")
        s = RawScheduler(master)
        try:
            await s.subscribe(FW)
            assert (await run_task(s, v64, "writer", "echo kept > data/msg"))[1] == "TASK_FINISHED"
            on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "v1"
            assert (on_disk / "msg").read_text() == "kept\n"

            # Bad input: refused, saying why, and nothing changes.
            before, before_state = await agent_total(master), state_volumes(c)
            assert before_state == {"v1": 64.0, "s1": 32.0}
            refused: list[tuple[dict[str, Any], int, str]] = [
                (grow("no-such-agent", v64, 10), 400, "No agent found"),
                (shrink("no-such-agent", v64, 10), 400, "No agent found"),
                (grow(agent_id, v64, 1000), 409, "Insufficient resources"),
                (shrink(agent_id, v64, 64), 400, "smaller than the size"),
                (shrink(agent_id, v64, 100), 400, "smaller than the size"),
                (shrink(agent_id, v64, 0), 400, "greater than zero"),
                (shrink(agent_id, volume(32, "s1", shared=True), 8), 400, "shared"),
                (grow(agent_id, volume(32, "s1", shared=True), 8), 400, "shared"),
                (grow(agent_id, volume(48, "v1"), 10), 409, "'v1' is disk"),
                (grow(agent_id, volume(64, "nope"), 10), 409, "not found"),
                (shrink(agent_id, v64, "ten"), 400, "subtract.value"),
                ({"type": "GROW_VOLUME"}, 400, "grow_volume"),
                ({"type": "SHRINK_VOLUME", "shrink_volume": []}, 400, "shrink_volume"),
                ({"type": "GROW_VOLUME", "grow_volume": {
                    "agent_id": {"value": agent_id}, "volume": v64}}, 400,
                 "grow_volume.addition"),
                ({**grow(agent_id, v64, 10), "grow_volume": {
                    "agent_id": {"value": agent_id}, "volume": v64,
                    "addition": {"name": "disk", "type": "SCALAR", "scalar": {"value": 10}}}},
                 400, "Incompatible"),
            ]
            for body, status, says in refused:
                code, text = await operator(master, body)
                assert (code, says in str(text)) == (status, True), (body, code, text)
                assert await agent_total(master) == before
            assert state_volumes(c) == before_state

            # A task that holds the volume: it cannot be resized meanwhile (409).
            holder, state = await run_task(s, v64, "holder", "sleep 600", "TASK_RUNNING")
            assert state == "TASK_RUNNING"
            for body in (grow(agent_id, v64, 10), shrink(agent_id, v64, 10)):
                code, text = await operator(master, body)
                assert code == 409 and "Insufficient resources" in text, (code, text)
            assert await agent_total(master) == before
            await s.call({"type": "KILL", "framework_id": s.fw(),
                          "kill": {"task_id": {"value": holder}}})
            assert await state_of(s, holder, set()) == "TASK_KILLED"

            # Grow: the total, /master/slaves and the next offer show the new size, and
            # a later task reads what the first one wrote.
            code, text = await operator(master, grow(agent_id, v64, 100))
            assert code == 202, text
            total = await agent_total(master)
            assert sizes(total.to_json()) == {"v1": 164.0, "s1": 32.0}
            assert total.reserved("db").scalar("disk") == 512.0
            assert total == before - Resources.from_json([scalar("disk", 100)]) \
                - Resources.from_json([v64]) + Resources.from_json([volume(164, "v1")])
            assert state_volumes(c) == {"v1": 164.0, "s1": 32.0}
            v164 = volume(164, "v1")
            assert (await run_task(s, v164, "reader", READ))[1] == "TASK_FINISHED"
            # The check can fail: a reader expecting something else does.
            wrong = 'test "$(cat data/msg)" = lost'
            assert (await run_task(s, v164, "wrong", wrong))[1] == "TASK_FAILED"

            # Shrink: the volume is smaller, the rest is plain reserved disk again.
            code, text = await operator(master, shrink(agent_id, v164, 124))
            assert code == 202, text
            total = await agent_total(master)
            assert sizes(total.to_json()) == {"v1": 40.0, "s1": 32.0}
            assert total.reserved("db").scalar("disk") == 512.0
            assert state_volumes(c) == {"v1": 40.0, "s1": 32.0}
            _, state = await run_task(s, volume(40, "v1"), "after-shrink", READ)
            assert state == "TASK_FINISHED"
            assert (on_disk / "msg").read_text() == "kept\n"
        finally:
            await s.close()

        # The agent checkpointed the new size; a new master learns it from the agent.
        checkpointed = json.loads(
            (tmp_path / "agent0" / "meta" / "resources" / "resources.info").read_text())
        assert sizes(checkpointed) == {"v1": 40.0, "s1": 32.0}
        c.restart_master()

        async def volumes_now() -> dict[str, float]:
            code, body = await operator(master, {"type": "GET_AGENTS"})
            agents = body["get_agents"]["agents"] if code == 200 else []
            return {pid: size for a in agents for pid, size in
                    sizes(a["total_resources"]).items()}

        for _ in range(600):  # bounded: about a minute
            if await volumes_now():
                break
            await asyncio.sleep(0.1)
        assert await volumes_now() == {"v1": 40.0, "s1": 32.0}, c.logs()[-3000:]
        assert (await agent_total(master)).reserved("db").scalar("disk") == 512.0


async def test_framework_grows_and_shrinks_in_accept(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            agent_id = offer["agent_id"]
            v64 = volume(64, "v1")
            await accept(s, offer, {"type": "RESERVE", "reserve": {"resources": [
                scalar("cpus", 1), scalar("mem", 128), scalar("disk", 256)]}},
                         {"type": "CREATE", "create": {"volumes": [v64]}},
                         {"type": "LAUNCH", "launch": {"task_infos": [
                             task("writer", agent_id, "echo kept > data/msg", v64)]}})
            assert await state_of(s, "writer", set()) == "TASK_FINISHED"

            # GROW_VOLUME takes offered reserved disk; a task in the same ACCEPT uses
            # the grown volume and reads what the writer left.
            v128 = volume(128, "v1")
            _, state = await run_task(s, v128, "grown-reader", READ, extra={
                "type": "GROW_VOLUME", "grow_volume": {"volume": v64,
                                                       "addition": scalar("disk", 64)}})
            assert state == "TASK_FINISHED"
            assert sizes((await agent_total(c.master_url)).to_json()) == {"v1": 128.0}
            assert state_volumes(c) == {"v1": 128.0}

            # An ACCEPT that asks for too much is refused as a whole (400): nothing changes.
            offer = await offered_volume(s, "v1", 128)
            before = await agent_total(c.master_url)
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
                "operations": [{"type": "GROW_VOLUME", "grow_volume": {
                    "volume": v128, "addition": scalar("disk", 4096)}}]}})
            assert code == 400 and "not in the remaining offered" in text, (code, text)
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
                "operations": [{"type": "SHRINK_VOLUME", "shrink_volume": {
                    "volume": v128, "subtract": {"value": 128}}}]}})
            assert code == 400 and "smaller than the size" in text, (code, text)
            assert await agent_total(c.master_url) == before

            # SHRINK_VOLUME on the same, still outstanding offer.
            await accept(s, offer, {"type": "SHRINK_VOLUME", "shrink_volume": {
                "volume": v128, "subtract": {"value": 96}}})
            total = await agent_total(c.master_url)
            assert sizes(total.to_json()) == {"v1": 32.0}
            assert total.reserved("db").scalar("disk") == 256.0
            assert state_volumes(c) == {"v1": 32.0}
            _, state = await run_task(s, volume(32, "v1"), "small-reader", READ)
            assert state == "TASK_FINISHED"
        finally:
            await s.close()
