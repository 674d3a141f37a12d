"""Maintenance against real processes: a schedule makes a machine DRAINING (inverse
offers to the frameworks running there, answers in GET_MAINTENANCE_STATUS), the
machine goes DOWN (its agent is shut down and refused, its task lost) and comes
back UP; schedule and DOWN machines survive a master restart; malformed input is
refused with 400 and changes nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import ack_until, operator
from tests.integration.test_operator_api import TASK_RES

pytestmark = pytest.mark.slow

FW: dict[str, Any] = {"user": "root", "name": "maintenance-test", "failover_timeout": 3600}
A = {"hostname": "maint-a", "ip": "127.0.0.1"}
B = {"hostname": "maint-b", "ip": "127.0.0.1"}
HOUR_NS = 3600 * 1_000_000_000


def schedule(*windows: tuple[list[dict[str, str]], int, int | None]) -> dict[str, Any]:
    out = []
    for machines, start, duration in windows:
        unavailability: dict[str, Any] = {"start": {"nanoseconds": start}}
        if duration is not None:
            unavailability["duration"] = {"nanoseconds": duration}
        out.append({"machine_ids": machines, "unavailability": unavailability})
    return {"windows": out}


def update(body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": body}}


async def get_schedule(master: str) -> dict[str, Any]:
    code, body = await operator(master, {"type": "GET_MAINTENANCE_SCHEDULE"})
    assert code == 200, body
    result: dict[str, Any] = body["get_maintenance_schedule"]["schedule"]
    return result


async def get_status(master: str) -> dict[str, Any]:
    code, body = await operator(master, {"type": "GET_MAINTENANCE_STATUS"})
    assert code == 200, body
    result: dict[str, Any] = body["get_maintenance_status"]["status"]
    return result


async def legacy(master: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"http://{master}{path}",
            data=body if isinstance(body, str) else None,
            json=None if isinstance(body, str) else body) as r:
        text = await r.text()
        return r.status, (await r.json() if r.content_type == "application/json" else text)


async def test_malformed_schedules_and_transitions_are_refused(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        start = int(time.time() * 1e9) + HOUR_NS
        good = schedule(([A], start, HOUR_NS))
        code, text = await operator(c.master_url, update(good))
        assert code == 200, text
        before = await get_schedule(c.master_url)
        assert before == good
        bad: list[tuple[Any, str]] = [
            ("nope", "schedule"),
            ({"windows": {}}, "windows"),
            ({"windows": [{"unavailability": {"start": {"nanoseconds": 1}}}]}, "machine_ids"),
            (schedule(([], start, None)), "machine_ids"),
            (schedule(([{}], start, None)), "hostname"),
            (schedule(([{"hostname": ""}], start, None)), "hostname"),
            (schedule(([{"ip": "300.1.2.3"}], start, None)), "300.1.2.3"),
            (schedule(([{"hostname": 7}], start, None)), "hostname"),
            ({"windows": [{"machine_ids": [A]}]}, "unavailability.start"),
            ({"windows": [{"machine_ids": [A], "unavailability": {"start": 5}}]}, "start"),
            (schedule(([A], start, -1)), "negative"),
            (schedule(([A], start, None), ([B, A], start, None)), "more than once"),
            (schedule(([A, A], start, None)), "more than once"),
        ]
        for body, words in bad:
            code, text = await operator(c.master_url, update(body))
            assert code == 400, (body, text)
            assert words in text, (words, text)
        code, text = await operator(c.master_url, {"type": "UPDATE_MAINTENANCE_SCHEDULE"})
        assert code == 400 and "update_maintenance_schedule" in text
        code, text = await legacy(c.master_url, "POST", "/master/maintenance/schedule", "{not json")
        assert code == 400, text
        code, text = await legacy(c.master_url, "POST", "/master/maintenance/schedule",
                                  schedule(([{"ip": "x"}], start, None)))
        assert code == 400 and "'x'" in text
        assert await get_schedule(c.master_url) == before

        # START needs scheduled machines not yet DOWN; STOP needs DOWN machines.
        for body, words in [
            ({"type": "START_MAINTENANCE", "start_maintenance": {"machines": [B]}},
             "not part of a maintenance schedule"),
            ({"type": "START_MAINTENANCE", "start_maintenance": {"machines": []}}, "non-empty"),
            ({"type": "START_MAINTENANCE", "start_maintenance": {"machines": [A, A]}},
             "more than once"),
            # Both parts must match, as in Mesos: a hostname alone is another machine.
            ({"type": "START_MAINTENANCE", "start_maintenance": {
                "machines": [{"hostname": "maint-a"}]}}, "not part of a maintenance schedule"),
            ({"type": "START_MAINTENANCE"}, "start_maintenance"),
            ({"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": [A]}}, "not DOWN"),
            ({"type": "STOP_MAINTENANCE", "stop_maintenance": {"machines": [{"ip": "1.2"}]}},
             "'1.2'"),
        ]:
            code, text = await operator(c.master_url, body)
            assert code == 400 and words in text, (body, text)
        code, text = await legacy(c.master_url, "POST", "/master/machine/down", [B])
        assert code == 400 and "maint-b" in text
        status = await get_status(c.master_url)
        assert status == {"draining_machines": [{"id": A, "statuses": []}], "down_machines": []}

        code, text = await operator(c.master_url, {"type": "START_MAINTENANCE",
                                                   "start_maintenance": {"machines": [A]}})
        assert code == 200, text
        code, text = await operator(c.master_url, {"type": "START_MAINTENANCE",
                                                   "start_maintenance": {"machines": [A]}})
        assert code == 400 and "already DOWN" in text
        # A DOWN machine cannot leave the schedule before it is UP again.
        code, text = await operator(c.master_url, update({"windows": []}))
        assert code == 400 and "DOWN" in text
        assert await get_schedule(c.master_url) == before
        assert (await get_status(c.master_url))["down_machines"] == [A]


async def test_drain_down_and_up_a_machine(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        c.add_agent(["--hostname=maint-a"])
        c.add_agent(["--hostname=maint-b"])
        c.wait_agents(2)
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            # Run a task on maint-a.
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "no offer from maint-a"
                offers = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"]
                on_a = [o for o in offers if o["hostname"] == "maint-a"]
                if on_a:
                    break
            offer = on_a[0]
            task = {"name": "t1", "task_id": {"value": "t1"}, "agent_id": offer["agent_id"],
                    "command": {"value": "sleep 600"}, "resources": TASK_RES}
            code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                "offer_ids": [offer["id"]],
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}})
            assert code == 202, text
            await ack_until(s, "t1", "TASK_RUNNING")
            agent_a = offer["agent_id"]["value"]

            # The machine is scheduled: the framework is asked to leave it.
            start = int(time.time() * 1e9) + HOUR_NS
            code, text = await legacy(c.master_url, "POST", "/master/maintenance/schedule",
                                      schedule(([A], start, HOUR_NS)))
            assert code == 200, text
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "no inverse offer"
                event = await s.next_event("*", timeout=30)
                if event["type"] == "INVERSE_OFFERS":
                    break
            inverse = event["inverse_offers"]["inverse_offers"][0]
            assert inverse["agent_id"]["value"] == agent_a
            assert inverse["unavailability"]["start"] == {"nanoseconds": start}
            status = await get_status(c.master_url)
            assert status["draining_machines"][0]["id"] == A
            assert [x["status"] for x in status["draining_machines"][0]["statuses"]] == ["UNKNOWN"]
            code, text = await s.call({"type": "DECLINE_INVERSE_OFFERS", "framework_id": s.fw(),
                                       "decline_inverse_offers": {
                                           "inverse_offer_ids": [inverse["id"]],
                                           "filters": {"refuse_seconds": 3600}}})
            assert code == 202, text

            def declined() -> dict[str, Any] | None:
                status = c.get("/master/maintenance/status")
                machine = status["draining_machines"][0]
                statuses = machine["statuses"]
                return machine if statuses and statuses[0]["status"] == "DECLINE" else None

            machine = wait_for(declined, 20, "the DECLINE answer in the maintenance status")
            assert machine["statuses"][0]["framework_id"] == {"value": s.framework_id}

            # DOWN: the agent is shut down, its task lost, and it is refused afterwards.
            # Hostnames are not case-sensitive.
            code, text = await legacy(c.master_url, "POST", "/master/machine/down",
                                      [{"hostname": "MAINT-A", "ip": "127.0.0.1"}])
            assert code == 200, text
            lost = await ack_until(s, "t1", "TASK_LOST")
            assert lost["reason"] == "REASON_AGENT_REMOVED"
            wait_for(lambda: not c.agents[0].alive(), 30, "maint-a's agent to shut down")
            hosts = [a["hostname"] for a in c.get("/master/slaves")["slaves"]]
            assert hosts == ["maint-b"]
            status = await get_status(c.master_url)
            assert status == {"draining_machines": [], "down_machines": [A]}

            # The schedule and the DOWN machine are in the registry.
            framework_id = s.framework_id
            await s.close()
            c.restart_master()
            assert await get_schedule(c.master_url) == schedule(([A], start, HOUR_NS))
            assert (await get_status(c.master_url))["down_machines"] == [A]
            refused = c.restart_agent(0)
            wait_for(lambda: not refused.alive(), 30, "the agent on a DOWN machine to be refused")
            assert "DOWN for maintenance" in refused.log()
            assert "maint-a" not in [a["hostname"] for a in c.get("/master/slaves")["slaves"]]

            # UP: off the schedule, and its agent is welcome again.
            code, text = await operator(c.master_url, {"type": "STOP_MAINTENANCE",
                                                       "stop_maintenance": {"machines": [A]}})
            assert code == 200, text
            assert await get_schedule(c.master_url) == {"windows": []}
            assert await get_status(c.master_url) == {"draining_machines": [], "down_machines": []}
            c.restart_agent(0)
            wait_for(lambda: "maint-a" in [a["hostname"] for a in c.get("/master/slaves")["slaves"]],
                     30, "maint-a's agent to register again")
            s = RawScheduler(c.master_url)
            await s.subscribe({**FW, "id": {"value": framework_id}})
        finally:
            if s.framework_id:
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
            await s.close()

