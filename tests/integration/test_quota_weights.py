"""Weights and quota through a real master: the operator calls and what offers then hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler

pytestmark = pytest.mark.slow


async def operator(master: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"http://{master}/api/v1", json=body) as r:
        text = await r.text()
        return r.status, (await r.json() if r.content_type == "application/json" and text else text)


def cpus(offer: dict[str, Any]) -> float:
    return sum(r["scalar"]["value"] for r in offer["resources"] if r["name"] == "cpus")


async def test_weights_are_set_and_read_back(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        code, _ = await operator(c.master_url, {"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "eng", "weight": 2.5}]}})
        assert code == 200
        code, body = await operator(c.master_url, {"type": "GET_WEIGHTS"})
        assert body["get_weights"]["weight_infos"] == [{"role": "eng", "weight": 2.5}]
        code, text = await operator(c.master_url, {"type": "UPDATE_WEIGHTS", "update_weights": {
            "weight_infos": [{"role": "ops", "weight": 1}, {"role": "eng", "weight": -1}]}})
        assert code == 400 and "weight" in text
        code, text = await operator(c.master_url, {"type": "UPDATE_WEIGHTS", "update_weights": "x"})
        assert code == 400 and "update_weights" in text
        # Nothing of the refused calls was applied.
        assert c.get("/master/weights") == [{"role": "eng", "weight": 2.5}]


async def test_quota_guarantee_keeps_headroom_and_limit_caps_offers(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=1, agent_resources="cpus:4;mem:4096;disk:1024") as c:
        code, text = await operator(c.master_url, {"type": "UPDATE_QUOTA", "update_quota": {
            "quota_configs": [{"role": "eng", "guarantees": {"cpus": {"value": 3}},
                               "limits": {"cpus": {"value": 3}}}]}})
        assert code == 200, text
        ops, eng = RawScheduler(c.master_url), RawScheduler(c.master_url)
        try:
            await ops.subscribe({"user": "root", "name": "ops", "roles": ["ops"],
                                 "capabilities": [{"type": "MULTI_ROLE"}]})
            offer = (await ops.next_event("OFFERS"))["offers"]["offers"][0]
            assert cpus(offer) <= 1.0  # 3 cpus are held back for eng's guarantee
            await eng.subscribe({"user": "root", "name": "eng", "roles": ["eng"],
                                 "capabilities": [{"type": "MULTI_ROLE"}]})
            offered = cpus((await eng.next_event("OFFERS"))["offers"]["offers"][0])
            assert offered == 3.0  # the guarantee, and never more than the limit
        finally:
            for s in (ops, eng):
                if s.framework_id:
                    await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
                await s.close()


async def test_bad_quota_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    with Cluster(tmp_path, agents=0) as c:
        good = {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
            {"role": "eng", "guarantees": {"cpus": {"value": 1}}}]}}
        assert (await operator(c.master_url, good))[0] == 200
        for configs, needle in (
            ([{"role": "ops", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": {"value": 1}}}], "ops"),
            ([{"role": "eng", "guarantees": {"cpus": {"value": "lots"}}}], "guarantees.cpus"),
            ([{"guarantees": {"cpus": {"value": 1}}}], "role"),
            ([{"role": "*", "guarantees": {"cpus": {"value": 1}}}], "*"),
        ):
            code, text = await operator(c.master_url, {"type": "UPDATE_QUOTA", "update_quota": {
                "quota_configs": configs}})
            assert code == 400 and needle in text, (configs, text)
        _, body = await operator(c.master_url, {"type": "GET_QUOTA"})
        assert body["get_quota"]["status"]["configs"] == [
            {"role": "eng", "guarantees": {"cpus": {"value": 1.0}}}]


async def test_agents_of_another_region_go_only_to_region_aware_frameworks(tmp_path: Path) -> None:
    domain = '{"fault_domain":{"region":{"name":"%s"},"zone":{"name":"z"}}}'
    with Cluster(tmp_path, agents=1, master_flags=[f"--domain={domain % 'r1'}", "--role_sorter=random"],
                 agent_flags=[f"--domain={domain % 'r2'}"]) as c:
        plain, aware = RawScheduler(c.master_url), RawScheduler(c.master_url)
        try:
            await plain.subscribe({"user": "root", "name": "plain"})
            with pytest.raises(TimeoutError):
                await plain.next_event("OFFERS", timeout=1.0)
            await aware.subscribe({"user": "root", "name": "aware",
                                   "capabilities": [{"type": "REGION_AWARE"}]})
            offer = (await aware.next_event("OFFERS"))["offers"]["offers"][0]
            assert offer["domain"]["fault_domain"]["region"]["name"] == "r2"
        finally:
            for s in (plain, aware):
                if s.framework_id:
                    await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
                await s.close()


async def test_legacy_quota_and_teardown_endpoints(tmp_path: Path) -> None:
    """``POST/DELETE /master/quota`` (Mesos' QuotaRequest) and ``POST /master/teardown``."""
    with Cluster(tmp_path, agents=0) as c:
        base = f"http://{c.master_url}/master"
        request = {"role": "eng", "guarantee": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}}]}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/quota", json=request) as r:
                assert r.status == 200, await r.text()
            assert c.get("/master/quota")["configs"] == [{
                "role": "eng", "guarantees": {"cpus": {"value": 2.0}},
                "limits": {"cpus": {"value": 2.0}}}]
            async with http.post(f"{base}/quota", json={"role": "eng", "guarantee": "x"}) as r:
                assert r.status == 400 and "guarantee" in await r.text()
            async with http.delete(f"{base}/quota/ops") as r:
                assert r.status == 400 and "ops" in await r.text()  # nothing set there
            async with http.delete(f"{base}/quota/eng") as r:
                assert r.status == 200
            assert c.get("/master/quota")["configs"] == []

            s = RawScheduler(c.master_url)
            try:
                await s.subscribe({"user": "root", "name": "doomed"})
                framework_id = s.fw()["value"]
                async with http.post(f"{base}/teardown", data={"frameworkId": "nope"}) as r:
                    assert r.status == 400 and "nope" in await r.text()
                async with http.post(f"{base}/teardown", data={"frameworkId": framework_id}) as r:
                    assert r.status == 200
                completed = c.get("/master/frameworks")["completed_frameworks"]
                assert [f["id"] for f in completed] == [framework_id]
            finally:
                await s.close()
