"""``POST /api/v1`` on the master: the v1 operator calls, and the legacy endpoints
that share their code.

Weights and quota (GET_/UPDATE_WEIGHTS, GET_/UPDATE_QUOTA), the informational
calls (GET_HEALTH, GET_VERSION, GET_FLAGS, GET_METRICS, GET_/SET_LOGGING_LEVEL), the
state (GET_STATE, GET_AGENTS, GET_FRAMEWORKS, GET_TASKS, GET_EXECUTORS, GET_ROLES),
the event stream (SUBSCRIBE), maintenance (GET_/UPDATE_MAINTENANCE_SCHEDULE,
GET_MAINTENANCE_STATUS, START_/STOP_MAINTENANCE), one agent at a time (DRAIN_AGENT,
DEACTIVATE_AGENT, REACTIVATE_AGENT, MARK_AGENT_GONE), reservations and volumes
(RESERVE_/UNRESERVE_RESOURCES, CREATE_/DESTROY_VOLUMES, also as /master/reserve ...;
GROW_/SHRINK_VOLUME, which have no legacy endpoint) and TEARDOWN. Every change is
written to the registry before it is answered, so a restarted master keeps it; bad
input answers 400 naming what is wrong and changes nothing. Other calls answer 501.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

from aiohttp import web

from mesos import __version__
from mesos.allocator import Quota, QuotaError
from mesos.errors import ConflictError, MesosError, ValidationError
from mesos.http import responses
from mesos.http.files import FilesError
from mesos.http.keys import MASTER
from mesos.http.streaming import EventStream
from mesos.master import accept as acceptmod
from mesos.master import files as master_files
from mesos.master import operator_views, state_builder, views
from mesos.master.events import event
from mesos.master.maintenance import parse_machines, parse_schedule
from mesos.master.operator_stream import subscribed
from mesos.master.registry import QuotaRecord, UpdateQuota, UpdateWeights
from mesos.master.service import Master, validate_role
from mesos.resources import Resources, ResourcesError
from mesos.v1.enums import TERMINAL_STATES

# Read-only calls answered from the master's state (v1 shapes).
_READ_CALLS = {
    "GET_AGENTS": operator_views.get_agents,
    "GET_FRAMEWORKS": operator_views.get_frameworks,
    "GET_TASKS": operator_views.get_tasks,
    "GET_EXECUTORS": operator_views.get_executors,
    "GET_ROLES": operator_views.get_roles,
}

_NANOS = 1_000_000_000


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


async def operator_api(request: web.Request) -> web.StreamResponse:
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
        if call == "GET_STATE":
            # Built a slice at a time, yielding to the loop (10,000 agents: seconds of work).
            return state_builder.json_response(request, await state_builder.get_state_json(master))
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
        if call == "SUBSCRIBE":
            return await subscribe(request, master)
        if call in ("LIST_FILES", "READ_FILE"):
            return await _files_call(master, call, body)
        if call == "GET_MASTER":
            return _ok(call, {"master_info": master.master_info(),
                              "start_time": master.start_time,
                              "elected_time": getattr(master, "elected_time", master.start_time)})
        if call == "GET_OPERATIONS":
            # Operations are applied at once (no resource providers, no pending
            # operation feedback), so there is never one to list.
            return _ok(call, {})
        if call == "GET_RESOURCE_PROVIDERS":
            return _ok(call, {})
        if call == "SET_QUOTA":
            await _set_quota(master, _field(body, "set_quota", "quota_request"))
            return web.Response(status=200)
        if call == "REMOVE_QUOTA":
            role = _field(body, "remove_quota", "role")
            if not isinstance(role, str) or not role:
                raise ValueError("Expecting 'remove_quota.role' to be present")
            if role not in master.quota_configs:
                raise ValueError(f"No quota set for role '{role}'")
            await update_quota(master, [{"role": role}])
            return web.Response(status=200)
        if call in _CALLS:
            return await _CALLS[call](master, body)
    except ValueError as exc:
        return responses.bad_request(str(exc))
    return responses.text(501, f"Operator call {call} is not available on this master yet")


async def _files_call(master: Master, call: str, body: dict[str, Any]) -> web.Response:
    """LIST_FILES and READ_FILE over the master's attached files (its log)."""
    key = call.lower()
    path = _field(body, key, "path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"Expecting '{key}.path' to be present")
    try:
        if call == "LIST_FILES":
            return _ok(call, {"file_infos": master_files.list_files(master, path)})
        offset, length = _field(body, key, "offset"), _field(body, key, "length")
        if not isinstance(offset, int) or offset < 0:
            raise ValueError("Expecting 'read_file.offset' to be a non-negative integer")
        if length is not None and (not isinstance(length, int) or length < 0):
            raise ValueError("Expecting 'read_file.length' to be a non-negative integer")
        answer = await master_files.read_file_call(
            master, path, offset, -1 if length is None else length)
        return _ok(call, answer)
    except FilesError as exc:
        return responses.text(exc.status, str(exc))


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
    """``/master/quota``: GET the quota status; POST a QuotaRequest (``role``,
    ``guarantee``: scalar Resources; Mesos' pre-1.9 form, which sets the guarantee and
    the same limit); DELETE ``/master/quota/ROLE`` removes a role's quota."""
    master = request.app[MASTER]
    if request.method == "GET":
        return web.json_response(quota_json(master))
    if request.method == "DELETE":
        role = request.match_info.get("role", "")
        if not role:
            return responses.bad_request("Expecting a role: DELETE /master/quota/ROLE")
        if role not in master.quota_configs:
            return responses.bad_request(f"No quota set for role '{role}'")
        try:
            await update_quota(master, [{"role": role}])
        except ValueError as exc:
            return responses.bad_request(str(exc))
        return web.Response(status=200)

    async def set_quota(data: Any) -> None:
        await _set_quota(master, data)

    return await _legacy(request, set_quota)


async def _set_quota(master: Master, data: Any) -> None:
    """A QuotaRequest (``role``, ``guarantee``: scalar Resources), Mesos' pre-1.9 form
    (SET_QUOTA, ``POST /quota``): the guarantee, and the same amounts as the limit."""
    if not isinstance(data, dict) or not isinstance(data.get("role"), str):
        raise ValueError("Expecting a QuotaRequest object with a 'role'")
    guarantee = data.get("guarantee")
    if not isinstance(guarantee, list):
        raise ValueError("Expecting 'guarantee' to be a list of scalar resources")
    amounts: dict[str, dict[str, Any]] = {}
    for i, item in enumerate(guarantee):
        scalar = item.get("scalar") if isinstance(item, dict) else None
        if not isinstance(scalar, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"Invalid 'guarantee[{i}]': expecting a scalar Resource")
        amounts[item["name"]] = {"value": scalar.get("value")}
    await update_quota(master, [{"role": data["role"], "guarantees": amounts,
                                 "limits": amounts}])


async def legacy_teardown(request: web.Request) -> web.Response:
    """``POST /master/teardown`` with form field ``frameworkId``: as TEARDOWN."""
    if request.method != "POST":
        return responses.text(405, "Expecting 'POST'")
    form = await request.post()
    framework_id = form.get("frameworkId")
    if not isinstance(framework_id, str) or not framework_id:
        return responses.bad_request("Missing 'frameworkId' query parameter")
    master = request.app[MASTER]
    framework = master.frameworks.get(framework_id)
    if framework is None:
        return responses.bad_request(f"No framework found with ID {framework_id}")
    await master.teardown(framework)
    return web.Response(status=200)


# ---------------------------------------------------------------------- SUBSCRIBE


async def subscribe(request: web.Request, master: Master) -> web.StreamResponse:
    """The operator event stream: SUBSCRIBED (the whole state), HEARTBEAT, then the
    events the master publishes, each a RecordIO record of JSON."""
    if not responses.accepts_json(request):
        return responses.text(406, "Expecting 'Accept' to allow application/json")
    interval = float(master.flags.heartbeat_interval)
    stream = EventStream(request, heartbeat=event("HEARTBEAT"), heartbeat_interval=interval,
                         on_close=master.operator_streams.remove)
    await stream.prepare()
    # Snapshot and subscription in one step on the loop: no event falls between them.
    stream.send(event("SUBSCRIBED", subscribed(master, interval)))
    stream.send(event("HEARTBEAT"))
    master.operator_streams.add(stream)
    return await stream.run()


# ---------------------------------------------------------------------- helpers


def _sub(body: dict[str, Any], key: str) -> dict[str, Any]:
    """The call's sub-message, which must be present and an object."""
    sub = body.get(key)
    if not isinstance(sub, dict):
        raise ValueError(f"Expecting '{key}' to be present")
    return sub


def _agent_id(body: dict[str, Any], key: str) -> str:
    agent = _sub(body, key).get("agent_id")
    value = agent.get("value") if isinstance(agent, dict) else None
    if not isinstance(value, str) or not value:
        raise ValueError(f"Expecting '{key}.agent_id' to be present")
    return value


def _duration(value: Any, where: str) -> float:
    """A ``DurationInfo`` (``{"nanoseconds": N}``) or a v1 ``Duration``
    (``{"seconds": S, "nanos": N}``) in seconds; never negative."""
    if not isinstance(value, dict):
        raise ValueError(f"'{where}' must be a duration object")
    try:
        if "nanoseconds" in value:
            seconds = int(value["nanoseconds"]) / _NANOS
        else:
            seconds = int(value.get("seconds", 0)) + int(value.get("nanos", 0)) / _NANOS
    except (TypeError, ValueError):
        raise ValueError(f"'{where}' is not a valid duration: {value!r}") from None
    if seconds < 0:
        raise ValueError(f"'{where}' must not be negative")
    return seconds


# ---------------------------------------------------------------------- maintenance


async def _get_schedule(master: Master, body: dict[str, Any]) -> web.Response:
    return _ok("GET_MAINTENANCE_SCHEDULE", {"schedule": master.schedule_json()})


async def _update_schedule(master: Master, body: dict[str, Any]) -> web.Response:
    sub = _sub(body, "update_maintenance_schedule")
    windows = parse_schedule(sub.get("schedule"), "update_maintenance_schedule.schedule")
    await master.update_schedule(windows)
    return web.Response(status=200)


async def _get_status(master: Master, body: dict[str, Any]) -> web.Response:
    return _ok("GET_MAINTENANCE_STATUS", {"status": master.maintenance_status()})


async def _start(master: Master, body: dict[str, Any]) -> web.Response:
    machines = parse_machines(_sub(body, "start_maintenance").get("machines"),
                              "start_maintenance.machines")
    await master.start_maintenance(machines)
    return web.Response(status=200)


async def _stop(master: Master, body: dict[str, Any]) -> web.Response:
    machines = parse_machines(_sub(body, "stop_maintenance").get("machines"),
                              "stop_maintenance.machines")
    await master.stop_maintenance(machines)
    return web.Response(status=200)


# ---------------------------------------------------------------------- one agent


async def _drain(master: Master, body: dict[str, Any]) -> web.Response:
    agent_id = _agent_id(body, "drain_agent")
    sub = _sub(body, "drain_agent")
    grace = None
    if sub.get("max_grace_period") is not None:
        grace = _duration(sub["max_grace_period"], "drain_agent.max_grace_period")
    mark_gone = sub.get("mark_gone", False)
    if not isinstance(mark_gone, bool):
        raise ValueError("'drain_agent.mark_gone' must be true or false")
    await master.drain_agent(agent_id, grace, mark_gone)
    return web.Response(status=200)


async def _deactivate(master: Master, body: dict[str, Any]) -> web.Response:
    await master.deactivate_agent(_agent_id(body, "deactivate_agent"))
    return web.Response(status=200)


async def _reactivate(master: Master, body: dict[str, Any]) -> web.Response:
    await master.reactivate_agent(_agent_id(body, "reactivate_agent"))
    return web.Response(status=200)


async def _teardown(master: Master, body: dict[str, Any]) -> web.Response:
    framework = _sub(body, "teardown").get("framework_id")
    framework_id = framework.get("value") if isinstance(framework, dict) else None
    if not isinstance(framework_id, str) or not framework_id:
        raise ValueError("Expecting 'teardown.framework_id' to be present")
    target = master.frameworks.get(framework_id)
    if target is None:
        raise ValueError(f"Unknown framework {framework_id}")
    await master.teardown(target)
    return web.Response(status=200)


# ---------------------------------------------------------------------- logging, metrics


def _base_level(master: Master) -> int:
    level = getattr(logging, str(master.flags.logging_level).upper(), logging.INFO)
    return level if isinstance(level, int) else logging.INFO


def _set_verbosity(master: Master, level: int) -> None:
    """glog verbosity onto Python logging: 0 is the --logging_level; above it, DEBUG."""
    master.logging_verbosity = level
    logging.getLogger().setLevel(logging.DEBUG if level > 0 else _base_level(master))


async def _get_logging(master: Master, body: dict[str, Any]) -> web.Response:
    return _ok("GET_LOGGING_LEVEL", {"level": master.logging_verbosity})


async def _set_logging(master: Master, body: dict[str, Any]) -> web.Response:
    sub = _sub(body, "set_logging_level")
    level = sub.get("level")
    if isinstance(level, str) and level.isdigit():
        level = int(level)
    if not isinstance(level, int) or isinstance(level, bool) or level < 0:
        raise ValueError(f"'set_logging_level.level' must be a non-negative integer, not {level!r}")
    if sub.get("duration") is None:
        raise ValueError("Expecting 'set_logging_level.duration' to be present")
    duration = _duration(sub["duration"], "set_logging_level.duration")
    if master.logging_revert is not None:
        master.logging_revert.cancel()
    _set_verbosity(master, level)
    # As Mesos: the change lasts `duration`, then the original level is back.
    master.logging_revert = asyncio.get_running_loop().call_later(
        duration, _set_verbosity, master, 0)
    return web.Response(status=200)


async def _get_metrics(master: Master, body: dict[str, Any]) -> web.Response:
    sub = body.get("get_metrics")
    if sub is not None:
        if not isinstance(sub, dict):
            raise ValueError("'get_metrics' must be an object")
        if sub.get("timeout") is not None:
            _duration(sub["timeout"], "get_metrics.timeout")
    snapshot = views.metrics(master)
    return _ok("GET_METRICS", {"metrics": [{"name": k, "value": v}
                                           for k, v in sorted(snapshot.items())]})


# ---------------------------------------------------------------------- reservations, volumes


def _resources(value: Any, where: str) -> Resources:
    if not isinstance(value, list) or not value:
        raise ValueError(f"Expecting '{where}' to be a non-empty list of resources")
    resources = Resources.from_json(value)
    if resources.allocations():
        raise ValueError(f"Invalid '{where}': resources must not carry 'allocation_info'")
    return resources


def plan_operation(master: Master, call: str, agent_id: str,
                   resources: Resources, where: str) -> tuple[Resources, Resources]:
    """What an operator operation turns into what (``old`` -> ``new``), checked
    against the agent before anything changes; ValueError/ValidationError -> 400."""
    agent = master.agents.get(agent_id)
    if agent is None:
        raise ValidationError(f"No agent found with specified ID '{agent_id}'")
    try:
        if call == "RESERVE_RESOURCES":
            for entry in resources:
                if not entry.reservations or entry.reservations[-1].type != "DYNAMIC":
                    raise ValueError(f"Invalid '{where}': '{entry.name}' needs a DYNAMIC "
                                     "reservation as its last reservation")
            return resources.pop_reservation(), resources
        if call == "UNRESERVE_RESOURCES":
            acceptmod.check_unreserve(resources, where)
            for entry in resources:
                if not entry.reservations or entry.reservations[-1].type != "DYNAMIC":
                    raise ValueError(f"Invalid '{where}': '{entry.name}' has no dynamic "
                                     "reservation to drop")
            return resources, resources.pop_reservation()
        if call == "CREATE_VOLUMES":
            acceptmod.check_new_volumes(resources, where, agent.total, None)
            return resources.without_volumes(), resources
        acceptmod.check_destroy(resources, where, agent.total, acceptmod.agent_in_use(agent))
        return resources, resources.without_volumes()
    except ResourcesError as exc:
        raise ValueError(str(exc)) from None


async def operate(master: Master, call: str, agent_id: str, resources: Resources,
                  where: str) -> web.Response:
    """202 once applied; 400 for bad input or an unknown agent, 409 when the agent
    does not have the resources available, as Mesos answers."""
    try:
        old, new = plan_operation(master, call, agent_id, resources, where)
        master.apply_operator_operation(agent_id, old, new)
    except MesosError as exc:
        return responses.from_error(exc)
    except ValueError as exc:
        return responses.bad_request(str(exc))
    return web.Response(status=202)


_OPERATIONS = {
    "RESERVE_RESOURCES": ("reserve_resources", "resources"),
    "UNRESERVE_RESOURCES": ("unreserve_resources", "resources"),
    "CREATE_VOLUMES": ("create_volumes", "volumes"),
    "DESTROY_VOLUMES": ("destroy_volumes", "volumes"),
}


def _operation_handler(call: str) -> Any:
    key, field = _OPERATIONS[call]

    async def handle(master: Master, body: dict[str, Any]) -> web.Response:
        agent_id = _agent_id(body, key)
        resources = _resources(_sub(body, key).get(field), f"{key}.{field}")
        return await operate(master, call, agent_id, resources, f"{key}.{field}")

    return handle


def _one_resource(value: Any, where: str) -> Resources:
    if not isinstance(value, dict):
        raise ValueError(f"Expecting '{where}' to be a resource object")
    return _resources([value], where)


def plan_resize(master: Master, call: str, body: dict[str, Any]) -> tuple[str, Resources,
                                                                         Resources]:
    """GROW_VOLUME / SHRINK_VOLUME as ``(agent id, old, new)``. Malformed input is a
    ValueError/ValidationError (400), an unknown agent too (as for CREATE_VOLUMES);
    a volume the agent does not have, exactly as given, is a ConflictError (409),
    as Mesos answers when the operation's resources are not on the agent."""
    key = call.lower()
    agent_id = _agent_id(body, key)
    agent = master.agents.get(agent_id)
    if agent is None:
        raise ValidationError(f"No agent found with specified ID '{agent_id}'")
    sub = _sub(body, key)
    volume = _one_resource(sub.get("volume"), f"{key}.volume")
    if call == "GROW_VOLUME":
        addition = _one_resource(sub.get("addition"), f"{key}.addition")
        old, new = acceptmod.resize_volume(volume, addition, None, key)
    else:
        subtract = sub.get("subtract")
        value = subtract.get("value") if isinstance(subtract, dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"Expecting '{key}.subtract.value' to be a number")
        old, new = acceptmod.resize_volume(volume, None, float(value), key)
    problem = acceptmod.whole_volume_problem(volume, agent.total)
    if problem is not None:
        raise ConflictError(f"Invalid '{key}.volume': {problem} on agent {agent_id}")
    return agent_id, old, new


def _resize_handler(call: str) -> Any:
    async def handle(master: Master, body: dict[str, Any]) -> web.Response:
        """202 once applied (offers on the agent are rescinded first, as for the
        other operations); 409 when the volume or addition is not available: a task
        uses the volume, or the agent does not have that much disk free."""
        try:
            agent_id, old, new = plan_resize(master, call, body)
            master.apply_operator_operation(agent_id, old, new)
        except MesosError as exc:
            return responses.from_error(exc)
        return web.Response(status=202)

    return handle


_CALLS: dict[str, Any] = {
    **{call: _operation_handler(call) for call in _OPERATIONS},
    "GROW_VOLUME": _resize_handler("GROW_VOLUME"),
    "SHRINK_VOLUME": _resize_handler("SHRINK_VOLUME"),
    "GET_MAINTENANCE_SCHEDULE": _get_schedule,
    "UPDATE_MAINTENANCE_SCHEDULE": _update_schedule,
    "GET_MAINTENANCE_STATUS": _get_status,
    "START_MAINTENANCE": _start,
    "STOP_MAINTENANCE": _stop,
    "DRAIN_AGENT": _drain,
    "DEACTIVATE_AGENT": _deactivate,
    "REACTIVATE_AGENT": _reactivate,
    "TEARDOWN": _teardown,
    "GET_LOGGING_LEVEL": _get_logging,
    "SET_LOGGING_LEVEL": _set_logging,
    "GET_METRICS": _get_metrics,
}


# ---------------------------------------------------------------------- legacy endpoints


async def _legacy(request: web.Request, action: Any) -> web.Response:
    try:
        data = json.loads(await request.read())
    except ValueError as exc:
        return responses.bad_request(f"Failed to parse the body as JSON: {exc}")
    try:
        await action(data)
    except ValueError as exc:
        return responses.bad_request(str(exc))
    return web.Response(status=200)


def _legacy_operation(call: str, field: str) -> Any:
    """``/master/reserve`` and friends: a form of ``slaveId`` and a JSON array."""

    async def handle(request: web.Request) -> web.Response:
        if request.method != "POST":
            return responses.text(405, "Expecting 'POST'")
        form = await request.post()
        agent_id = form.get("slaveId")
        if not isinstance(agent_id, str) or not agent_id:
            return responses.bad_request("Missing 'slaveId' query parameter")
        raw = form.get(field)
        if not isinstance(raw, str):
            return responses.bad_request(f"Missing '{field}' query parameter")
        try:
            resources = _resources(json.loads(raw), field)
        except ValueError as exc:
            return responses.bad_request(f"Error in parsing '{field}' query parameter: {exc}")
        return await operate(request.app[MASTER], call, agent_id, resources, field)

    return handle


legacy_reserve = _legacy_operation("RESERVE_RESOURCES", "resources")
legacy_unreserve = _legacy_operation("UNRESERVE_RESOURCES", "resources")
legacy_create_volumes = _legacy_operation("CREATE_VOLUMES", "volumes")
legacy_destroy_volumes = _legacy_operation("DESTROY_VOLUMES", "volumes")


async def legacy_roles(request: web.Request) -> web.Response:
    return web.json_response(operator_views.legacy_roles(request.app[MASTER]))


async def legacy_schedule(request: web.Request) -> web.Response:
    """``/master/maintenance/schedule``: GET the Schedule JSON, POST a new one."""
    master = request.app[MASTER]
    if request.method == "GET":
        return web.json_response(master.schedule_json())

    async def update(data: Any) -> None:
        await master.update_schedule(parse_schedule(data, "schedule"))

    return await _legacy(request, update)


async def legacy_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[MASTER].maintenance_status())


async def legacy_machine_down(request: web.Request) -> web.Response:
    master = request.app[MASTER]

    async def down(data: Any) -> None:
        await master.start_maintenance(parse_machines(data, "machines"))

    return await _legacy(request, down)


async def legacy_machine_up(request: web.Request) -> web.Response:
    master = request.app[MASTER]

    async def up(data: Any) -> None:
        await master.stop_maintenance(parse_machines(data, "machines"))

    return await _legacy(request, up)


_PROM_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def _terminal_count(name: str) -> bool:
    """``master/tasks_<terminal state>``: counted (the live states are gauges)."""
    prefix = "master/tasks_"
    return name.startswith(prefix) and f"TASK_{name[len(prefix):].upper()}" in TERMINAL_STATES


def prometheus_text(master: Master) -> str:
    """The metrics snapshot in the Prometheus text format: ``master/tasks_running``
    becomes ``mesos_master_tasks_running``; the master's counters are typed
    ``counter``, everything else ``gauge``."""
    counters = master.counters.snapshot()
    lines = []
    for name, value in sorted(views.metrics(master).items()):
        metric = "mesos_" + _PROM_UNSAFE.sub("_", name)
        kind = "counter" if name in counters or _terminal_count(name) else "gauge"
        lines.append(f"# TYPE {metric} {kind}")
        lines.append(f"{metric} {float(value)!r}")
    return "\n".join(lines) + "\n"


async def legacy_prometheus(request: web.Request) -> web.Response:
    return web.Response(body=prometheus_text(request.app[MASTER]).encode(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
