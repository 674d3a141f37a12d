"""Dynamic reservations and persistent volumes through the operator API, against a
real master and agent: RESERVE_RESOURCES, UNRESERVE_RESOURCES, CREATE_VOLUMES,
DESTROY_VOLUMES and their legacy endpoints, and bad input (unknown agent, more than
the agent has, a volume in use...) that is refused and leaves the agent as it was."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.resources import Resources
from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import ack_until, operator

pytestmark = pytest.mark.slow

DYN = [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]


def scalar(name: str, value: float, *, reserved: bool = True) -> dict[str, Any]:
    r: dict[str, Any] = {"name": name, "type": "SCALAR", "scalar": {"value": value}}
    if reserved:
        r["reservations"] = DYN
    return r


def volume(size: float, vid: str, path: str = "data") -> dict[str, Any]:
    return {**scalar("disk", size), "disk": {"persistence": {"id": vid, "principal": "ops"},
                                             "volume": {"mode": "RW", "container_path": path}}}


async def agent_total(master: str) -> Resources:
    code, body = await operator(master, {"type": "GET_AGENTS"})
    assert code == 200, body
    [agent] = body["get_agents"]["agents"]
    return Resources.from_json(agent["total_resources"])


async def form(master: str, path: str, **fields: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(
            f"http://{master}{path}", data=fields) as r:
        return r.status, await r.text()


def call(kind: str, agent_id: str, field: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": kind, kind.lower(): {"agent_id": {"value": agent_id}, field: items}}


async def test_reserve_and_unreserve_with_bad_input(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        agent_id = c.get("/master/slaves")["slaves"][0]["id"]
        master = c.master_url
        before = await agent_total(master)
        want = [scalar("cpus", 1), scalar("mem", 256)]
        # Bad input first; each answer says why and nothing changes.
        for body, status, says in (
            (call("RESERVE_RESOURCES", "no-such-agent", "resources", want), 400,
             "No agent found"),
            (call("RESERVE_RESOURCES", agent_id, "resources", [scalar("cpus", 64)]), 409,
             "Insufficient resources"),
            (call("RESERVE_RESOURCES", agent_id, "resources",
                  [scalar("cpus", 1, reserved=False)]), 400, "DYNAMIC"),
            (call("RESERVE_RESOURCES", agent_id, "resources", []), 400, "non-empty"),
            ({"type": "RESERVE_RESOURCES"}, 400, "reserve_resources"),
            (call("UNRESERVE_RESOURCES", agent_id, "resources", want), 409,
             "Insufficient resources"),
        ):
            code, text = await operator(master, body)
            assert (code, says in str(text)) == (status, True), (body, code, text)
            assert await agent_total(master) == before
        # Reserve: the agent's total now holds a reservation for 'db'.
        code, text = await operator(master, call("RESERVE_RESOURCES", agent_id, "resources", want))
        assert code == 202, text
        total = await agent_total(master)
        assert total.reservations()["db"] == Resources.from_json(want)
        slave = c.get("/master/slaves")["slaves"][0]
        assert slave["reserved_resources"]["db"]["cpus"] == 1.0
        assert slave["unreserved_resources"]["cpus"] == 3.0
        # A framework of role 'db' is offered the reservation.
        s = RawScheduler(master)
        try:
            await s.subscribe({"user": "root", "name": "db", "role": "db"})
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            offered = Resources.from_json(offer["resources"])
            assert offered.reservations()["db"] == Resources.from_json(want)
            await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})
        finally:
            await s.close()
        # Unreserve gives it back to everyone.
        code, text = await operator(master, call("UNRESERVE_RESOURCES", agent_id, "resources",
                                                 want))
        assert code == 202, text
        assert await agent_total(master) == before
        # The legacy endpoints do the same with a form.
        code, text = await form(master, "/master/reserve", slaveId=agent_id,
                                resources=json.dumps(want))
        assert code == 202, text
        assert (await agent_total(master)).reservations()["db"] == Resources.from_json(want)
        code, text = await form(master, "/master/reserve", slaveId=agent_id, resources="[{")
        assert code == 400 and "resources" in text
        code, text = await form(master, "/master/unreserve", slaveId="nope",
                                resources=json.dumps(want))
        assert code == 400 and "No agent found" in text
        code, text = await form(master, "/master/unreserve", slaveId=agent_id,
                                resources=json.dumps(want))
        assert code == 202, text
        assert await agent_total(master) == before


async def test_volumes_created_used_and_destroyed(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        agent_id = c.get("/master/slaves")["slaves"][0]["id"]
        master = c.master_url
        reserved = [scalar("cpus", 1), scalar("mem", 128), scalar("disk", 512)]
        code, text = await operator(master, call("RESERVE_RESOURCES", agent_id, "resources",
                                                 reserved))
        assert code == 202, text
        before = await agent_total(master)
        for body, status, says in (
            (call("CREATE_VOLUMES", agent_id, "volumes",
                  [{**volume(64, "v1"), "reservations": []}]), 400, "unreserved"),
            (call("CREATE_VOLUMES", agent_id, "volumes", [volume(64, "v1", "/abs")]), 400,
             "relative"),
            (call("CREATE_VOLUMES", agent_id, "volumes", [volume(4096, "v1")]), 409,
             "Insufficient resources"),
            (call("CREATE_VOLUMES", "no-such-agent", "volumes", [volume(64, "v1")]), 400,
             "No agent found"),
            (call("DESTROY_VOLUMES", agent_id, "volumes", [volume(64, "v1")]), 400,
             "not found"),
        ):
            code, text = await operator(master, body)
            assert (code, says in str(text)) == (status, True), (body, code, text)
            assert await agent_total(master) == before
        code, text = await operator(master, call("CREATE_VOLUMES", agent_id, "volumes",
                                                 [volume(64, "v1")]))
        assert code == 202, text
        total = await agent_total(master)
        assert [v.persistence_id for v in total.volumes()] == ["v1"]
        code, text = await operator(master, call("CREATE_VOLUMES", agent_id, "volumes",
                                                 [volume(64, "v1", "other")]))
        assert code == 400 and "already in use" in text
        # Disk with a volume on it cannot be unreserved.
        code, text = await operator(master, call("UNRESERVE_RESOURCES", agent_id, "resources",
                                                 [volume(64, "v1")]))
        assert code == 400 and "destroy it first" in text
        # A task of role 'db' uses the volume: it cannot be destroyed meanwhile.
        s = RawScheduler(master)
        try:
            await s.subscribe({"user": "root", "name": "db", "role": "db",
                               "principal": "ops"})
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            offered = Resources.from_json(offer["resources"])
            assert [v.persistence_id for v in offered.volumes()] == ["v1"]
            task = {"name": "user", "task_id": {"value": "user"}, "agent_id": offer["agent_id"],
                    "command": {"value": "sleep 600"},
                    "resources": [scalar("cpus", 0.5), scalar("mem", 64), volume(64, "v1")]}
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            assert code == 202, text
            await ack_until(s, "user", "TASK_RUNNING", timeout=60)
            code, text = await operator(master, call("DESTROY_VOLUMES", agent_id, "volumes",
                                                     [volume(64, "v1")]))
            assert code == 400 and "'v1' is in use" in text, text
            assert [v.persistence_id for v in (await agent_total(master)).volumes()] == ["v1"]
            await s.call({"type": "KILL", "framework_id": s.fw(),
                          "kill": {"task_id": {"value": "user"}}})
            await ack_until(s, "user", "TASK_KILLED", timeout=60)
        finally:
            await s.close()
        # Legacy destroy once it is free, then create and destroy through the v1 API.
        code, text = await form(master, "/master/destroy-volumes", slaveId=agent_id,
                                volumes=json.dumps([volume(64, "v1")]))
        assert code == 202, text
        assert await agent_total(master) == before
        code, text = await form(master, "/master/create-volumes", slaveId=agent_id,
                                volumes=json.dumps([volume(32, "v2")]))
        assert code == 202, text
        code, text = await operator(master, call("DESTROY_VOLUMES", agent_id, "volumes",
                                                 [volume(32, "v2")]))
        assert code == 202, text
        assert await agent_total(master) == before
