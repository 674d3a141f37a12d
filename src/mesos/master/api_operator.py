"""``POST /api/v1`` on the master: the operator calls this master has so far.

Weights and quota (GET_/UPDATE_WEIGHTS, GET_/UPDATE_QUOTA), the informational
calls (GET_HEALTH, GET_VERSION, GET_FLAGS), the state (GET_STATE, GET_AGENTS,
GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS), and MARK_AGENT_GONE. Weight and quota
updates, and agents marked gone, are written to the registry before they are answered,
so a restarted master keeps them. Other calls answer 501.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from mesos import __version__
from mesos.allocator import Quota, QuotaError
from mesos.http import responses
from mesos.http.keys import MASTER
from mesos.master import operator_views
from mesos.master.registry import QuotaRecord, UpdateQuota, UpdateWeights
from mesos.master.service import Master, validate_role

# Read-only calls answered from the master's state (v1 shapes).
_READ_CALLS = {
    "GET_STATE": operator_views.get_state,
    "GET_AGENTS": operator_views.get_agents,
    "GET_FRAMEWORKS": operator_views.get_frameworks,
    "GET_TASKS": operator_views.get_tasks,
    "GET_EXECUTORS": operator_views.get_executors,
}


def _field(body: dict[str, Any], call: str, name: str) -> Any:
    """``body[call][name]``, refusing a sub-message that is not a JSON object."""
    sub = body.get(call)
    if sub is None:
        return None
    if not isinstance(sub, dict):
        raise ValueError(f"'{call}' must be an object")
    return sub.get(name)


def _ok(call: str, payload: Any = None) -> web.Response:
    body: dict[str, Any] = {"type": call}
    if payload is not None:
        body[call.lower()] = payload
    return web.json_response(body)


def weights_json(master: Master) -> list[dict[str, Any]]:
    return [{"role": role, "weight": weight} for role, weight in sorted(master.weights.items())]


def quota_json(master: Master) -> dict[str, Any]:
    configs = []
    for role, (guarantees, limits) in sorted(master.quota_configs.items()):
        config: dict[str, Any] = {"role": role}
        if guarantees:
            config["guarantees"] = {k: {"value": v} for k, v in guarantees.items()}
        if limits:
            config["limits"] = {k: {"value": v} for k, v in limits.items()}
        configs.append(config)
    return {"configs": configs}


async def update_weights(master: Master, items: Any, where: str) -> None:
    """Validate every weight first, persist them, then apply them all (shielded, so a
    cancelled request cannot leave a durable change unapplied)."""
    if not isinstance(items, list):
        raise ValueError(f"'{where}' must be a list of {{role, weight}}")
    new: dict[str, float] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "role" not in item:
            raise ValueError(f"'{where}[{i}].role' is required")
        role, weight = item["role"], item.get("weight", 1.0)
        problem = validate_role(role) if isinstance(role, str) else "must be a string"
        if problem:
            raise ValueError(f"Invalid '{where}[{i}].role' {role!r}: {problem}")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid '{where}[{i}].weight': {weight!r} is not a number") from None
        if not weight > 0:
            raise ValueError(f"Invalid '{where}[{i}].weight': weights must be positive")
        new[role] = weight
    async def persist_then_apply() -> None:
        await master.registrar.apply(UpdateWeights(weights=new))
        master.allocator.update_weights(new)
        master.weights.update(new)
        master.wake_allocator()

    await asyncio.shield(persist_then_apply())


def _amounts(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' must be an object of {{name: {{value}}}}")
    out: dict[str, float] = {}
    for name, amount in value.items():
        raw: Any = amount.get("value") if isinstance(amount, dict) else amount
        try:
            number = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"Invalid '{where}.{name}': {amount!r} is not a scalar") from None
        if number < 0:
            raise ValueError(f"Invalid '{where}.{name}': quota must not be negative")
        out[name] = number
    return out


async def update_quota(master: Master, configs: Any) -> None:
    """All configs are checked, then applied together (or none is), then persisted."""
    if not isinstance(configs, list):
        raise ValueError("'update_quota.quota_configs' must be a list")
    parsed: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    for i, config in enumerate(configs):
        where = f"update_quota.quota_configs[{i}]"
        role = config.get("role") if isinstance(config, dict) else None
        if not isinstance(role, str):
            raise ValueError(f"'{where}.role' is required")
        problem = validate_role(role)
        if problem or role == "*":
            raise ValueError(f"Invalid '{where}.role' {role!r}: {problem or 'quota cannot be set on *'}")
        parsed[role] = (_amounts(config.get("guarantees"), f"{where}.guarantees"),
                        _amounts(config.get("limits"), f"{where}.limits"))
    try:
        master.allocator.update_quotas({r: Quota.of(g or None, lim or None) for r, (g, lim) in parsed.items()})
    except QuotaError as exc:
        raise ValueError(str(exc)) from None
    async def persist_then_record() -> None:
        await master.registrar.apply(UpdateQuota(configs=[
            QuotaRecord(role=role, guarantees=g, limits=lim) for role, (g, lim) in parsed.items()
        ]))
        for role, (guarantees, limits) in parsed.items():
            if guarantees or limits:
                master.quota_configs[role] = (guarantees, limits)
            else:
                master.quota_configs.pop(role, None)
        master.wake_allocator()

    await asyncio.shield(persist_then_record())


async def operator_api(request: web.Request) -> web.Response:
    refusal = responses.check_post_json(request)
    if refusal is not None:
        return refusal
    master = request.app[MASTER]
    try:
        body = json.loads(await request.read())
    except ValueError as exc:
        return responses.bad_request(f"Failed to parse the body as JSON: {exc}")
    call = body.get("type") if isinstance(body, dict) else None
    if not isinstance(call, str):
        return responses.bad_request("Expecting 'type' to be present")
    try:
        if call == "GET_HEALTH":
            return _ok(call, {"healthy": True})
        if call == "GET_VERSION":
            return _ok(call, {"version_info": {"version": __version__}})
        if call == "GET_FLAGS":
            flags = [{"name": k, "value": v} for k, v in sorted(master.flags.as_dict().items())]
            return _ok(call, {"flags": flags})
        if call in _READ_CALLS:
            return _ok(call, _READ_CALLS[call](master))
        if call == "GET_WEIGHTS":
            return _ok(call, {"weight_infos": weights_json(master)})
        if call == "UPDATE_WEIGHTS":
            await update_weights(master, _field(body, "update_weights", "weight_infos"),
                                 "update_weights.weight_infos")
            return web.Response(status=200)
        if call == "GET_QUOTA":
            return _ok(call, {"status": quota_json(master)})
        if call == "MARK_AGENT_GONE":
            gone = body.get("mark_agent_gone")
            agent = gone.get("agent_id") if isinstance(gone, dict) else None
            agent_id = agent.get("value") if isinstance(agent, dict) else None
            if not isinstance(agent_id, str) or not agent_id:
                raise ValueError("Expecting 'mark_agent_gone.agent_id' to be present")
            if not master.knows_agent(agent_id):
                return responses.text(404, f"Agent {agent_id} not found")
            await master.mark_gone(agent_id)
            return web.Response(status=200)
        if call == "UPDATE_QUOTA":
            await update_quota(master, _field(body, "update_quota", "quota_configs"))
            return web.Response(status=200)
    except ValueError as exc:
        return responses.bad_request(str(exc))
    return responses.text(501, f"Operator call {call} is not available on this master yet")


async def legacy_weights(request: web.Request) -> web.Response:
    master = request.app[MASTER]
    if request.method == "GET":
        return web.json_response(weights_json(master))
    try:
        await update_weights(master, json.loads(await request.read()), "body")
    except ValueError as exc:
        return responses.bad_request(str(exc))
    return web.Response(status=200)


async def legacy_quota(request: web.Request) -> web.Response:
    return web.json_response(quota_json(request.app[MASTER]))
