"""The DRF paper's worked example, through a real master with two real schedulers.

9 CPUs and 18 GB; framework A's tasks need <1 CPU, 4 GB>, B's <3 CPUs, 1 GB>. Each
framework accepts one task per offer and declines the rest; dominant resource
fairness ends with A running 3 tasks and B 2 (both at a dominant share of 2/3).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow

NO_FILTER = {"refuse_seconds": 0}


def scalar(offer: dict[str, Any], name: str) -> float:
    return sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == name)


async def run_framework(s: RawScheduler, name: str, cpus: float, mem: float,
                        launched: list[str]) -> None:
    """Accept one task per offer while it fits; decline otherwise. With no filter the
    leftovers come straight back, so a framework stops after 20 declines in a row."""
    declines = 0
    while declines < 20:
        try:
            event = await s.next_event("OFFERS", timeout=2, skip=("HEARTBEAT", "UPDATE"))
        except TimeoutError:
            return
        for offer in event["offers"]["offers"]:
            if scalar(offer, "cpus") >= cpus and scalar(offer, "mem") >= mem:
                task_id = f"{name}-{len(launched)}"
                launched.append(task_id)
                task = {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
                        "command": {"value": "sleep 300"},
                        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                                      {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]}
                body = {"offer_ids": [offer["id"]], "filters": NO_FILTER,
                        "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task]}}]}
                code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": body})
                assert code == 202, text
                declines = 0
            else:
                declines += 1
                code, _ = await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
                    "offer_ids": [offer["id"]], "filters": NO_FILTER}})
                assert code == 202


async def test_drf_paper_example_through_a_real_master(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1, agent_resources="cpus:9;mem:18432;disk:1024") as c:
        a, b = RawScheduler(c.master_url), RawScheduler(c.master_url)
        try:
            await a.subscribe({"user": "root", "name": "A"})
            await b.subscribe({"user": "root", "name": "B"})
            a_tasks: list[str] = []
            b_tasks: list[str] = []
            await asyncio.wait_for(asyncio.gather(
                run_framework(a, "A", 1, 4096, a_tasks),
                run_framework(b, "B", 3, 1024, b_tasks),
            ), timeout=60)
            assert (len(a_tasks), len(b_tasks)) == (3, 2)
            frameworks = {f["name"]: f for f in c.state()["frameworks"]}
            assert frameworks["A"]["used_resources"]["cpus"] == 3.0
            assert frameworks["A"]["used_resources"]["mem"] == 12288.0
            assert frameworks["B"]["used_resources"]["cpus"] == 6.0
            assert frameworks["B"]["used_resources"]["mem"] == 2048.0
        finally:
            for s in (a, b):
                await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
                await s.close()
