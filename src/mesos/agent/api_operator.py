"""The agent's legacy JSON endpoints: ``/state``, ``/flags``, ``/health``, ``/version``,
``/metrics/snapshot`` (ref §5.3), also under ``/slave(1)/``, and ``/monitor/statistics``.

Legacy "model" conventions: ids are bare strings, the agent id is ``slave_id``,
resources are summarised flat (``{"cpus": 4.0, "mem": 1024.0, ...}``), attributes are a
flat object, timestamps are float epoch seconds. ``?jsonp=cb`` wraps the output.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mesos import __version__
from mesos import attributes as attributes_mod
from mesos.agent.keys import AGENT
from mesos.agent.state import Executor, Framework, Task
from mesos.http.files import json_response
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1 import mesos as v1
from mesos.v1.enums import AGENT_CAPABILITIES
from mesos.v1.mesos import TERMINAL_STATES

if TYPE_CHECKING:
    from mesos.agent.service import Agent

__all__ = [
    "container_resources",
    "containers",
    "containers_json",
    "flags",
    "health",
    "metrics",
    "metrics_json",
    "monitor_statistics",
    "state",
    "state_json",
    "statistics_json",
    "version",
]

BUILD = {"build_date": "", "build_time": 0.0, "build_user": ""}


def _resources(items: list[v1.Resource]) -> Resources:
    return Resources.from_json(codec.to_builtins(items)) if items else Resources.empty()


def _labels(labels: v1.Labels | None) -> list[dict[str, Any]] | None:
    return codec.to_builtins(labels.labels) if labels is not None and labels.labels else None


def task_json(task: Task, agent_id: str | None, command_executor: bool) -> dict[str, Any]:
    """Mesos' ``model(Task)`` (a queued task has state TASK_STAGING and no statuses)."""
    info = task.info
    out: dict[str, Any] = {
        "id": task.id,
        "name": info.name,
        "framework_id": task.framework_id,
        "executor_id": "" if command_executor else task.executor_id,
        "slave_id": agent_id or info.agent_id.value,
        "state": task.state,
        "resources": _resources(info.resources).summary(),
        "statuses": [_status_json(s) for s in task.statuses],
    }
    role = next((r.allocation_info.role for r in info.resources
                 if r.allocation_info is not None), None)
    if role:
        out["role"] = role
    labels = _labels(info.labels)
    if labels:
        out["labels"] = labels
    for key in ("discovery", "container", "health_check"):
        value = getattr(info, key)
        if value is not None:
            out[key] = codec.to_builtins(value)
    if info.command is not None and info.command.user:
        out["user"] = info.command.user
    return out


def _status_json(status: v1.TaskStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"state": status.state, "timestamp": status.timestamp}
    if status.healthy is not None:
        out["healthy"] = status.healthy
    labels = _labels(status.labels)
    if labels:
        out["labels"] = labels
    if status.container_status is not None:
        out["container_status"] = codec.to_builtins(status.container_status)
    return out


def executor_json(executor: Executor, agent_id: str | None) -> dict[str, Any]:
    info = executor.info
    cmd = executor.command_executor
    out: dict[str, Any] = {
        "id": executor.id,
        "name": info.name or "",
        "source": info.source or "",
        "container": executor.container_id,
        "directory": executor.directory,
        "resources": _resources(info.resources).summary(),
        "tasks": [task_json(t, agent_id, cmd)
                  for t in [*executor.launched.values(), *executor.terminated.values()]],
        "queued_tasks": [task_json(t, agent_id, cmd) for t in executor.queued_tasks()],
        "completed_tasks": [task_json(t, agent_id, cmd) for t in executor.completed],
    }
    if executor.role:
        out["role"] = executor.role
    if info.type:
        out["type"] = info.type
    labels = _labels(info.labels)
    if labels:
        out["labels"] = labels
    return out


def framework_json(framework: Framework, agent_id: str | None) -> dict[str, Any]:
    info = framework.info
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "hostname": info.hostname or "",
        "executors": [executor_json(e, agent_id) for e in framework.executors.values()],
        "completed_executors": [executor_json(e, agent_id)
                                for e in framework.completed_executors],
    }
    if info.roles:
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    if info.principal:
        out["principal"] = info.principal
    if info.capabilities:
        out["capabilities"] = sorted(info.capability_names())
    return out


def state_json(agent: Agent) -> dict[str, Any]:
    core = agent.core
    agent_id = core.agent_id
    # The flag resources with the checkpointed dynamic reservations and persistent
    # volumes laid over them, as Mesos' agent reports its ``totalResources``.
    total = agent.volume_state.total
    reserved = {role: r.summary() for role, r in total.reservations().items()}
    reserved_full = {role: r.to_json_endpoint() for role, r in total.reservations().items()}
    return {
        "version": __version__,
        **BUILD,
        "start_time": agent.start_time,
        "id": agent_id or "",
        "pid": agent.pid,
        "hostname": agent.hostname,
        "capabilities": list(AGENT_CAPABILITIES),
        "resources": total.summary(),
        "reserved_resources": reserved,
        "unreserved_resources": total.unreserved().summary(),
        "reserved_resources_full": reserved_full,
        "unreserved_resources_full": total.unreserved().to_json_endpoint(),
        "reserved_resources_allocated": {},
        "unreserved_resources_allocated": {},
        "resource_providers": [],
        "attributes": attributes_mod.summary(agent.attributes),
        "master_hostname": agent.master_hostname,
        "flags": agent.flags.as_dict(),
        "frameworks": [framework_json(f, agent_id) for f in core.frameworks.values()],
        "completed_frameworks": [framework_json(f, agent_id) for f in core.completed_frameworks],
    }


def container_resources(executor: Executor) -> Resources:
    """What an executor's container holds: its own resources and its queued and live
    tasks' (as Mesos sizes a container), unallocated."""
    held = _resources(executor.info.resources).unallocated()
    for task in [*executor.queued_tasks(), *executor.launched.values()]:
        held = held + _resources(task.info.resources).unallocated()
    return held


async def statistics_json(agent: Agent) -> list[dict[str, Any]]:
    """Mesos' ``/monitor/statistics``: the usage of every running executor's container.

    Containers are asked concurrently; one that ends meanwhile is left out.
    """
    executors = [e for e in agent.core.executors() if e.state != "TERMINATED"]
    usages = await asyncio.gather(*(agent.container_usage(e) for e in executors))
    out = []
    for executor, usage in zip(executors, usages, strict=True):
        if usage is None:
            continue
        out.append({
            "executor_id": executor.id,
            "executor_name": executor.info.name or "",
            "framework_id": executor.framework_id,
            "source": executor.info.source or "",
            "statistics": usage,
        })
    return out


def used_resources(agent: Agent) -> Resources:
    """Resources of live tasks and of their executors."""
    used = Resources.empty()
    for executor in agent.core.executors():
        if executor.state == "TERMINATED":
            continue
        used = used + container_resources(executor)
    return used


def _system_metrics() -> dict[str, float]:
    out: dict[str, float] = {"system/cpus_total": float(os.cpu_count() or 1)}
    try:
        load1, load5, load15 = os.getloadavg()
        out.update({"system/load_1min": load1, "system/load_5min": load5,
                    "system/load_15min": load15})
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        out["system/mem_total_bytes"] = float(info.get("MemTotal", 0))
        out["system/mem_free_bytes"] = float(info.get("MemAvailable", info.get("MemFree", 0)))
    except (OSError, ValueError, IndexError):
        pass
    return out


def metrics_json(agent: Agent) -> dict[str, float]:
    core = agent.core
    out: dict[str, float] = {
        "slave/registered": 1.0 if agent.registered else 0.0,
        "slave/uptime_secs": time.time() - agent.start_time,
        "slave/frameworks_active": float(len(core.frameworks)),
    }
    live: dict[str, int] = {s: 0 for s in
                            ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING")}
    for task in core.tasks():
        if task.state in live:
            live[task.state] += 1
    for state, count in live.items():
        out[f"slave/tasks_{state[5:].lower()}"] = float(count)
    for state in sorted(TERMINAL_STATES):
        out[f"slave/tasks_{state[5:].lower()}"] = float(core.terminal_counts[state])
    by_state = {s: 0 for s in ("REGISTERING", "RUNNING", "TERMINATING")}
    for executor in core.executors():
        if executor.state in by_state:
            by_state[executor.state] += 1
    for state, count in by_state.items():
        out[f"slave/executors_{state.lower()}"] = float(count)
    out["slave/executors_terminated"] = float(core.executors_terminated)
    used = used_resources(agent)
    for name in ("cpus", "mem", "disk", "gpus"):
        total = agent.resources.scalar(name)
        in_use = used.scalar(name)
        out[f"slave/{name}_total"] = total
        out[f"slave/{name}_used"] = in_use
        out[f"slave/{name}_percent"] = in_use / total if total else 0.0
    out.update({
        "slave/valid_status_updates": float(core.valid_status_updates),
        "slave/invalid_status_updates": float(core.invalid_status_updates),
        "slave/valid_framework_messages": float(core.valid_framework_messages),
        "slave/invalid_framework_messages": float(core.invalid_framework_messages),
        "slave/recovery_errors": 0.0,
    })
    out.update(_system_metrics())
    return out


async def state(request: web.Request) -> web.Response:
    return json_response(request, state_json(request.app[AGENT]))


async def flags(request: web.Request) -> web.Response:
    return json_response(request, {"flags": request.app[AGENT].flags.as_dict()})


async def monitor_statistics(request: web.Request) -> web.Response:
    return json_response(request, await statistics_json(request.app[AGENT]))


async def containers_json(agent: Agent) -> list[dict[str, Any]]:
    """Mesos' ``/containers``: every running executor's container with its id, its
    status (the executor's pid) and its usage statistics."""
    out = []
    entries = {(e["framework_id"], e["executor_id"]): e for e in await statistics_json(agent)}
    for executor in agent.core.executors():
        entry = entries.get((executor.framework_id, executor.id))
        if entry is None:
            continue
        cid = executor.container_id
        process = agent.processes.get(cid)
        pid = process.pid if process is not None else agent.recovered_pids.get(cid)
        status: dict[str, Any] = {"container_id": {"value": cid}}
        if pid is not None:
            status["executor_pid"] = pid
        out.append({**entry, "container_id": cid, "status": status})
    return out


async def containers(request: web.Request) -> web.Response:
    return json_response(request, await containers_json(request.app[AGENT]))


async def health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def version(request: web.Request) -> web.Response:
    return json_response(request, {"version": __version__, **BUILD})


async def metrics(request: web.Request) -> web.Response:
    return json_response(request, metrics_json(request.app[AGENT]))
