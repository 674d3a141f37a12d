"""The master's state as the v1 operator API shows it (``GET_STATE``, ``GET_AGENTS``,
``GET_FRAMEWORKS``, ``GET_TASKS``, ``GET_EXECUTORS``).

Unlike the legacy endpoints (:mod:`mesos.master.views`) these use v1 conventions:
ids as ``{"value": ...}``, resources as lists of v1 ``Resource`` objects, times as
``TimeInfo`` (``{"nanoseconds": ...}``). As in Mesos, ``GET_AGENTS`` lists the
registered agents and, under ``recovered_agents``, the agents a restarted master
recovered from its registry that have not re-registered yet; unreachable and gone
agents are in neither list (``/master/state`` counts the unreachable ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mesos.master.accept import resources_of
from mesos.master.registry import DrainRecord
from mesos.master.state import Agent, Framework, Offer, Task
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1.enums import AGENT_CAPABILITIES

if TYPE_CHECKING:
    from mesos.master.service import Master



def drain_json(drain: DrainRecord) -> dict[str, Any]:
    """Mesos' ``DrainInfo``: the drain's state and the config DRAIN_AGENT gave."""
    config: dict[str, Any] = {"mark_gone": drain.mark_gone}
    if drain.max_grace_period is not None:
        config["max_grace_period"] = {"nanoseconds": round(drain.max_grace_period * 1e9)}
    return {"state": drain.state, "config": config}


def time_info(seconds: float) -> dict[str, int]:
    return {"nanoseconds": int(seconds * 1e9)}


def _sum(items: Any) -> Resources:
    total = Resources.empty()
    for r in items:
        total = total + r
    return total


def _agent_allocated(agent: Agent) -> Resources:
    used = agent.tasks.live_resources()  # kept as tasks change (issue 7), not walked
    for executors in agent.executors.values():
        for info in executors.values():
            used = used + resources_of(info.resources, "executor")
    return used


def agent_json(master: Master, agent: Agent) -> dict[str, Any]:
    offered = _sum(master.offers[o].resources for o in agent.offers if o in master.offers)
    info: dict[str, Any] = codec.to_builtins(agent.info)
    info["resources"] = agent.total.to_json()
    out: dict[str, Any] = {
        "agent_info": info,
        "active": agent.active and agent.connected and agent.id not in master.deactivated_agents,
        "deactivated": agent.id in master.deactivated_agents,
        "version": agent.version,
        "pid": agent.pid,
        "registered_time": time_info(agent.registered_time),
        "total_resources": agent.total.to_json(),
        "allocated_resources": _agent_allocated(agent).to_json(),
        "offered_resources": offered.to_json(),
        "capabilities": [{"type": c} for c in AGENT_CAPABILITIES],
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = time_info(agent.reregistered_time)
    drain = master.drains.get(agent.id)
    if drain is not None:
        out["drain_info"] = drain_json(drain)
    return out


def get_agents(master: Master) -> dict[str, Any]:
    return {
        "agents": [agent_json(master, a) for a in master.agents.values()],
        "recovered_agents": [codec.to_builtins(i) for i in master.recovered_agents.values()],
    }


def offer_json(master: Master, offer: Offer) -> dict[str, Any]:
    agent = master.agents.get(offer.agent_id)
    return {
        "id": {"value": offer.id},
        "framework_id": {"value": offer.framework_id},
        "agent_id": {"value": offer.agent_id},
        "hostname": agent.info.hostname if agent is not None else "",
        "resources": offer.resources.to_json(),
        "allocation_info": {"role": offer.role},
    }


def framework_json(master: Master, framework: Framework) -> dict[str, Any]:
    out: dict[str, Any] = {
        "framework_info": codec.to_builtins(framework.info),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "registered_time": time_info(framework.registered_time),
        "offers": [offer_json(master, o) for o in framework.offers.values()],
        "inverse_offers": [
            {"id": {"value": offer_id}, "framework_id": {"value": framework.id},
             "agent_id": {"value": agent_id}}
            for offer_id, (owner, agent_id) in master.inverse_offers.items()
            if owner == framework.id
        ],
        "allocated_resources": framework.tasks.live_resources().to_json(),
        "offered_resources": _sum(o.resources for o in framework.offers.values()).to_json(),
    }
    if framework.reregistered_time is not None:
        out["reregistered_time"] = time_info(framework.reregistered_time)
    if framework.unregistered_time is not None:
        out["unregistered_time"] = time_info(framework.unregistered_time)
    return out


def get_frameworks(master: Master) -> dict[str, Any]:
    return {
        "frameworks": [framework_json(master, f) for f in master.frameworks.values()],
        "completed_frameworks": [framework_json(master, f) for f in master.completed_frameworks],
    }


def task_json(task: Task) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": task.info.name,
        "task_id": {"value": task.id},
        "framework_id": {"value": task.framework_id},
        "agent_id": {"value": task.agent_id},
        "state": task.state,
        "resources": task.resources.to_json(),
        "statuses": [codec.to_builtins(s) for s in task.statuses],
    }
    if task.executor_id:
        out["executor_id"] = {"value": task.executor_id}
    latest = task.latest_status()
    if latest is not None:
        out["status_update_state"] = latest.state
        if latest.uuid is not None:
            out["status_update_uuid"] = codec.to_builtins(latest).get("uuid")
    for name in ("labels", "discovery", "container", "health_check", "kill_policy"):
        value = getattr(task.info, name, None)
        if value is not None:
            out[name] = codec.to_builtins(value)
    return out


def get_tasks(master: Master) -> dict[str, Any]:
    frameworks = list(master.frameworks.values())
    every = frameworks + master.completed_frameworks
    return {
        "tasks": [task_json(t) for f in frameworks for t in f.tasks.values()],
        "unreachable_tasks": [task_json(t) for f in every for t in f.unreachable_tasks.values()],
        "completed_tasks": [task_json(t) for f in every for t in f.completed_tasks],
    }


def get_executors(master: Master) -> dict[str, Any]:
    return {
        "executors": [
            {"executor_info": codec.to_builtins(info), "agent_id": {"value": agent_id}}
            for framework in master.frameworks.values()
            for agent_id, executors in framework.executors.items()
            for info in executors.values()
        ],
    }


def get_state(master: Master) -> dict[str, Any]:
    return {
        "get_tasks": get_tasks(master),
        "get_executors": get_executors(master),
        "get_frameworks": get_frameworks(master),
        "get_agents": get_agents(master),
    }


def _scalars(amounts: dict[str, float]) -> dict[str, dict[str, float]]:
    return {name: {"value": value} for name, value in sorted(amounts.items())}


class _RoleView:
    """What one role holds, for GET_ROLES and ``/master/roles``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.frameworks: list[str] = []
        self.allocated = Resources.empty()
        self.offered = Resources.empty()
        self.reserved = Resources.empty()


def role_views(master: Master) -> list[_RoleView]:
    """Every role that has a weight, a quota, a framework, resources allocated or
    offered, or a reservation, sorted by name."""
    roles: dict[str, _RoleView] = {}

    def role(name: str) -> _RoleView:
        if name not in roles:
            roles[name] = _RoleView(name)
        return roles[name]

    for name in list(master.weights) + list(master.quota_configs):
        role(name)
    for framework in master.frameworks.values():
        for name in framework.roles:
            role(name).frameworks.append(framework.id)
        for task in framework.tasks.values():
            if not task.terminal:
                view = role(task.role)
                view.allocated = view.allocated + task.resources
    for offer in master.offers.values():
        view = role(offer.role)
        view.offered = view.offered + offer.resources
    for agent in master.agents.values():
        for name, res in agent.total.reservations().items():
            view = role(name)
            view.reserved = view.reserved + res
    return [roles[name] for name in sorted(roles)]


def get_roles(master: Master) -> dict[str, Any]:
    """``GET_ROLES``: each role with its weight, frameworks, what it holds (v1
    resources) and its quota (guarantee, limit, and what counts against it)."""
    out = []
    for view in role_views(master):
        guarantees, limits = master.quota_configs.get(view.name, ({}, {}))
        out.append({
            "name": view.name,
            "weight": master.weights.get(view.name, 1.0),
            "frameworks": [{"value": f} for f in sorted(view.frameworks)],
            "resources": view.allocated.to_json(),
            "allocated": view.allocated.to_json(),
            "offered": view.offered.to_json(),
            "reserved": view.reserved.to_json(),
            "quota": {"role": view.name, "guarantee": _scalars(guarantees),
                      "limit": _scalars(limits),
                      "consumed": _scalars(view.allocated.quantities())},
        })
    return {"roles": out}


def legacy_roles(master: Master) -> dict[str, Any]:
    """``/master/roles``: the same in the legacy model (flat resource summaries, bare
    framework ids)."""
    out = []
    for view in role_views(master):
        guarantees, limits = master.quota_configs.get(view.name, ({}, {}))
        out.append({
            "name": view.name,
            "weight": master.weights.get(view.name, 1.0),
            "frameworks": sorted(view.frameworks),
            "resources": view.allocated.summary(),
            "allocated": view.allocated.summary(),
            "offered": view.offered.summary(),
            "reserved": view.reserved.summary(),
            "quota": {"role": view.name, "guarantee": guarantees, "limit": limits,
                      "consumed": view.allocated.quantities()},
        })
    return {"roles": out}
