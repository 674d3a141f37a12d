"""The master's legacy JSON views (``/master/state`` and friends), in Mesos' shapes.

Legacy conventions differ from v1 (ref §5.3): bare string ids, ``slave_id``,
resources summarised as flat objects, timestamps as float seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mesos import __version__
from mesos.attributes import summary as attributes_summary
from mesos.master.accept import resources_of
from mesos.master.service import Master
from mesos.master.state import (
    TASK_STATES,
    USED_SCALARS,
    Agent,
    Framework,
    Task,
    TaskMap,
    milli_scalars,
)
from mesos.resources import Resources
from mesos.v1 import codec
from mesos.v1.enums import AGENT_CAPABILITIES, TERMINAL_STATES
from mesos.v1.mesos import AgentInfo, MasterInfo

if TYPE_CHECKING:
    from mesos.master.leader import Standby

BUILD = {"build_date": "2026-11-24 00:00:00", "build_time": 1795478400.0, "build_user": "mesos-py"}


def version() -> dict[str, Any]:
    return {"version": __version__, **BUILD}


def _sum(items: Any) -> Resources:
    total = Resources.empty()
    for r in items:
        total = total + r
    return total


def _times(resources: Resources, count: int) -> Resources:
    """``resources`` added up ``count`` times, in log2(count) additions."""
    total = Resources.empty()
    while count:
        if count & 1:
            total = total + resources
        resources = resources + resources
        count >>= 1
    return total


class Memo:
    """Caches for one build of a view. Resources are immutable values and a cluster's
    tasks and agents come in a handful of shapes, so each shape is summarised once per
    build rather than once per task, and sums add each shape once per count: with
    100,000 tasks that was most of the time /master/state took (issue 7)."""

    def __init__(self) -> None:
        self._summaries: dict[Resources, dict[str, Any]] = {}

    def summary(self, resources: Resources) -> dict[str, Any]:
        """``resources.summary()``; the same dict for equal resources (read-only)."""
        out = self._summaries.get(resources)
        if out is None:
            out = self._summaries[resources] = resources.summary()
        return out

    @staticmethod
    def sum(items: Iterable[Resources]) -> Resources:
        """The total of ``items``, each distinct shape added in once (``_times``)."""
        counts: dict[Resources, int] = {}
        for r in items:
            counts[r] = counts.get(r, 0) + 1
        return _sum(r if n == 1 else _times(r, n) for r, n in counts.items())


def task_json(task: Task, memo: Memo | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": task.id,
        "name": task.info.name,
        "framework_id": task.framework_id,
        "executor_id": task.executor_id,
        "slave_id": task.agent_id,
        "state": task.state,
        "resources": memo.summary(task.resources) if memo else task.resources.summary(),
        "role": task.role,
        "statuses": [
            {k: v for k, v in {
                "state": s.state,
                "timestamp": s.timestamp,
                "healthy": s.healthy,
                "labels": codec.to_builtins(s.labels.labels) if s.labels else None,
                "container_status": codec.to_builtins(s.container_status) if s.container_status else None,
            }.items() if v is not None}
            for s in task.statuses
        ],
    }
    for name in ("labels", "discovery", "container", "health_check"):
        value = getattr(task.info, name)
        if value is not None:
            out[name] = codec.to_builtins(value)
    return out


def _agent_used(agent: Agent, memo: Memo | None = None) -> Resources:
    used = agent.tasks.live_resources()  # kept as tasks change, not walked
    for executors in agent.executors.values():
        for info in executors.values():
            used = used + resources_of(info.resources, "executor")
    return used


def agent_json(master: Master, agent: Agent, *, full: bool = False,
               memo: Memo | None = None) -> dict[str, Any]:
    memo = memo or Memo()
    offered = _sum(master.offers[o].resources for o in agent.offers if o in master.offers)
    used = _agent_used(agent, memo)
    by_role = agent.total.reservations()
    reserved = {role: memo.summary(res) for role, res in by_role.items()}
    out: dict[str, Any] = {
        "id": agent.id,
        "pid": agent.pid,
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "registered_time": agent.registered_time,
        "resources": memo.summary(agent.total),
        "used_resources": memo.summary(used),
        "offered_resources": memo.summary(offered),
        "reserved_resources": reserved,
        "unreserved_resources": memo.summary(agent.total.unreserved()),
        "attributes": attributes_summary(codec.to_builtins(agent.info.attributes)),
        "active": agent.active and agent.connected,
        "deactivated": not agent.active,
        "version": agent.version,
        "capabilities": list(AGENT_CAPABILITIES),
    }
    if agent.reregistered_time is not None:
        out["reregistered_time"] = agent.reregistered_time
    if agent.info.domain is not None:
        out["domain"] = codec.to_builtins(agent.info.domain)
    if full:
        out["used_resources_full"] = used.to_json()
        out["offered_resources_full"] = offered.to_json()
        out["unreserved_resources_full"] = agent.total.unreserved().to_json()
        out["reserved_resources_full"] = {
            role: res.to_json() for role, res in by_role.items()
        }
    return out


def recovered_agent_json(info: AgentInfo) -> dict[str, Any]:
    """An agent recovered from the registry and not re-registered yet, as Mesos writes
    its ``SlaveInfo`` in ``recovered_slaves``."""
    out: dict[str, Any] = {
        "id": info.id.value if info.id is not None else "",
        "hostname": info.hostname,
        "port": info.port,
        "attributes": attributes_summary(codec.to_builtins(info.attributes)),
    }
    if info.domain is not None:
        out["domain"] = codec.to_builtins(info.domain)
    return out


def recovered_agents(master: Master, wanted: str | None = None) -> list[dict[str, Any]]:
    return [recovered_agent_json(info) for agent_id, info in master.recovered_agents.items()
            if not wanted or agent_id == wanted]


def framework_json(
    master: Master, framework: Framework, *, summary: bool = False, memo: Memo | None = None,
    used: Resources | None = None, task_lists: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """``used`` and ``task_lists`` (``tasks``, ``unreachable_tasks``,
    ``completed_tasks``) may come already built (:mod:`mesos.master.state_builder`
    builds them a slice at a time)."""
    info = framework.info
    if used is None:
        used = framework.tasks.live_resources()
    offered = _sum(o.resources for o in framework.offers.values())
    out: dict[str, Any] = {
        "id": framework.id,
        "name": info.name,
        "hostname": info.hostname or "",
        "webui_url": info.webui_url or "",
        "user": info.user,
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "capabilities": sorted(framework.capabilities),
        "active": framework.active,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time or 0.0,
        "used_resources": used.summary(),
        "offered_resources": offered.summary(),
        "resources": used.summary(),
    }
    if framework.reregistered_time is not None:
        out["reregistered_time"] = framework.reregistered_time
    if info.principal is not None:
        out["principal"] = info.principal
    if "MULTI_ROLE" in framework.capabilities:
        out["roles"] = list(info.roles)
    else:
        out["role"] = info.role or "*"
    if info.labels is not None:
        out["labels"] = codec.to_builtins(info.labels.labels)
    if summary:
        return out
    if task_lists is None:
        memo = memo or Memo()
        task_lists = {
            "tasks": [task_json(t, memo) for t in framework.tasks.values()],
            "unreachable_tasks": [task_json(t, memo)
                                  for t in framework.unreachable_tasks.values()],
            "completed_tasks": [task_json(t, memo) for t in framework.completed_tasks],
        }
    out.update(task_lists)
    out["offers"] = [
        {
            "id": o.id,
            "framework_id": o.framework_id,
            "slave_id": o.agent_id,
            "resources": o.resources.summary(),
            "allocation_info": {"role": o.role},
        }
        for o in framework.offers.values()
    ]
    out["executors"] = [
        {
            "executor_id": info.executor_id.value,
            "name": info.name or "",
            "framework_id": framework.id,
            "slave_id": agent_id,
            "resources": Resources.from_json(codec.to_builtins(info.resources)).summary(),
            "command": codec.to_builtins(info.command) if info.command else {},
        }
        for agent_id, execs in framework.executors.items()
        for info in execs.values()
    ]
    return out


def state(master: Master, parts: dict[str, list[Any]] | None = None) -> dict[str, Any]:
    """/master/state. ``parts`` may hold ``slaves``, ``frameworks`` and
    ``completed_frameworks`` already built (:mod:`mesos.master.state_builder` builds
    them a slice at a time, as encoded fragments)."""
    if parts is None:
        memo = Memo()
        parts = {
            "slaves": [agent_json(master, a, memo=memo) for a in master.agents.values()],
            "frameworks": [framework_json(master, f, memo=memo)
                           for f in master.frameworks.values()],
            "completed_frameworks": [framework_json(master, f, memo=memo)
                                     for f in master.completed_frameworks],
        }
    leader = {"id": master.id, "pid": master.pid, "port": master.port, "hostname": master.hostname}
    out: dict[str, Any] = {
        **version(),
        "start_time": master.start_time,
        # A master elected in ZooKeeper knows when that happened; one alone leads from
        # its start.
        "elected_time": getattr(master, "elected_time", master.start_time),
        "id": master.id,
        "pid": master.pid,
        "hostname": master.hostname,
        "capabilities": ["AGENT_UPDATE"],
        "activated_slaves": sum(1 for a in master.agents.values() if a.active and a.connected),
        "deactivated_slaves": sum(1 for a in master.agents.values() if not (a.active and a.connected)),
        "unreachable_slaves": len(master.unreachable_agents),
        "leader": master.pid,
        "leader_info": leader,
        "flags": master.flags.as_dict(),
        "slaves": parts["slaves"],
        # Agents the recovered registry expects back (--agent_reregister_timeout).
        "recovered_slaves": recovered_agents(master),
        "frameworks": parts["frameworks"],
        "completed_frameworks": parts["completed_frameworks"],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }
    if master.flags.cluster:
        out["cluster"] = master.flags.cluster
    return out


def leader_info_json(info: MasterInfo) -> dict[str, Any]:
    """``leader_info`` of /master/state: the leading master's id, pid, port, hostname."""
    out: dict[str, Any] = {"id": info.id, "pid": info.pid, "port": info.port,
                           "hostname": info.hostname or (info.address.ip if info.address else "")}
    return {k: v for k, v in out.items() if v is not None}


def standby_state(standby: Standby) -> dict[str, Any]:
    """/master/state of a master that does not lead: who it is and who leads (Mesos
    puts ``leader``/``leader_info`` only when a leader is known, ``elected_time`` only
    on the leader); it keeps no agents or frameworks."""
    info = standby.info
    out: dict[str, Any] = {
        **version(),
        "start_time": standby.start_time,
        "id": info["id"],
        "pid": info["pid"],
        "hostname": info["hostname"],
        "capabilities": [c["type"] for c in info.get("capabilities", [])],
        "activated_slaves": 0,
        "deactivated_slaves": 0,
        "unreachable_slaves": 0,
        "flags": standby.flags.as_dict(),
        "slaves": [],
        "recovered_slaves": [],
        "frameworks": [],
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }
    leader = standby.leader()
    if leader is not None:
        out["leader"] = leader.pid
        out["leader_info"] = leader_info_json(leader)
    if standby.flags.cluster:
        out["cluster"] = standby.flags.cluster
    return out


def standby_metrics(standby: Standby) -> dict[str, float]:
    """/metrics/snapshot of a master that does not lead: ``master/elected`` is 0."""
    return {"master/elected": 0.0, "master/uptime_secs": standby.uptime()}


def _state_counts(maps: Iterable[TaskMap], tasks: Iterable[Task] = ()) -> dict[str, int]:
    """Tasks by state (every state of :data:`TASK_STATES` present, 0 if none): from
    the counts the task ``maps`` keep, plus a walk of ``tasks`` (a framework's
    completed ones, a bounded list)."""
    counts = dict.fromkeys(TASK_STATES, 0)
    for by_id in maps:
        for state_name, n in by_id.states.items():
            counts[state_name] = counts.get(state_name, 0) + n
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return counts


def state_summary(master: Master) -> dict[str, Any]:
    """/master/state-summary. The task counts come from the counts the task maps
    keep and ``slave_ids`` from the agents each framework's map tallies
    (:class:`mesos.master.state.TaskMap`), so nothing here walks the live tasks:
    O(agents + frameworks), plus each framework's bounded completed tasks."""
    memo = Memo()
    slaves = []
    for agent in master.agents.values():
        item = agent_json(master, agent, memo=memo)
        item.update(_state_counts(agent.tasks.values()))
        item["framework_ids"] = sorted(agent.tasks)
        slaves.append(item)
    frameworks = []
    for framework in master.frameworks.values():
        item = framework_json(master, framework, summary=True)
        item.update(_state_counts((framework.tasks,), framework.completed_tasks))
        item["slave_ids"] = sorted(framework.tasks.agents)
        frameworks.append(item)
    out: dict[str, Any] = {"hostname": master.hostname, "slaves": slaves, "frameworks": frameworks}
    if master.flags.cluster:
        out["cluster"] = master.flags.cluster
    return out


def tasks(master: Master, query: dict[str, str]) -> dict[str, Any]:
    try:
        limit = int(query.get("limit", "100"))
        offset = int(query.get("offset", "0"))
    except ValueError as exc:
        raise ValueError(f"Invalid 'limit' or 'offset': {exc}") from None
    order = query.get("order", "des")
    if order not in ("asc", "des"):
        raise ValueError("Invalid 'order': expecting 'asc' or 'des'")
    framework_id = query.get("framework_id")
    task_id = query.get("task_id")
    everything: list[Task] = []
    for framework in list(master.frameworks.values()) + master.completed_frameworks:
        if framework_id and framework.id != framework_id:
            continue
        everything.extend(framework.tasks.values())
        everything.extend(framework.unreachable_tasks.values())
        everything.extend(framework.completed_tasks)
    if task_id:
        everything = [t for t in everything if t.id == task_id]

    def started(t: Task) -> float:
        return t.statuses[0].timestamp or 0.0 if t.statuses else 0.0

    everything.sort(key=started, reverse=(order == "des"))
    memo = Memo()
    return {"tasks": [task_json(t, memo) for t in everything[offset : offset + max(limit, 0)]]}


def live_task_counts(master: Master) -> dict[str, int]:
    """Tasks of the registered frameworks by state, from the counts their task maps
    keep (:class:`mesos.master.state.TaskMap`): O(frameworks), not O(tasks)."""
    counts = dict.fromkeys(TASK_STATES, 0)
    for framework in master.frameworks.values():
        for state_name, n in framework.tasks.states.items():
            counts[state_name] = counts.get(state_name, 0) + n
    return counts


def used_by_connected_agents(master: Master,
                             connected: list[Agent] | None = None) -> dict[str, float]:
    """:data:`USED_SCALARS` used by the non-terminal tasks and the executors of the
    connected agents (``connected``, when the caller has them already), from the
    totals the agents' task maps keep (in thousandths, so the sum is exact):
    O(agents), not O(tasks)."""
    if connected is None:
        connected = [a for a in master.agents.values() if a.connected]
    milli = [0] * len(USED_SCALARS)
    for agent in connected:
        for i, amount in enumerate(agent.tasks.used):
            milli[i] += amount
        for infos in agent.executors.values():
            for info in infos.values():
                executor = milli_scalars(resources_of(info.resources, "executor"))
                for i, amount in enumerate(executor):
                    milli[i] += amount
    return {name: milli[i] / 1000.0 for i, name in enumerate(USED_SCALARS)}


def metrics(master: Master) -> dict[str, float]:
    """/metrics/snapshot. Nothing here walks the tasks: with 100,000 of them that
    held the loop for a quarter of a second per call (issue 7)."""
    agents = list(master.agents.values())
    frameworks = list(master.frameworks.values())
    # Summed shape by shape (Memo.sum): with 10,000 agents adding them up one by one
    # made this cheap call take a large part of a second.
    total = Memo.sum(a.total for a in agents)
    connected = [a for a in agents if a.connected]
    used = used_by_connected_agents(master, connected)
    out: dict[str, float] = {
        "master/elected": 1.0,
        "master/uptime_secs": master.uptime(),
        "master/slaves_active": float(sum(1 for a in connected if a.active)),
        "master/slaves_inactive": float(sum(1 for a in agents if not a.active)),
        "master/slaves_connected": float(len(connected)),
        "master/slaves_disconnected": float(len(agents) - len(connected)),
        "master/slaves_unreachable": float(len(master.unreachable_agents)),
        "master/frameworks_active": float(sum(1 for f in frameworks if f.active)),
        "master/frameworks_inactive": float(sum(1 for f in frameworks if not f.active)),
        "master/frameworks_connected": float(sum(1 for f in frameworks if f.connected)),
        "master/frameworks_disconnected": float(sum(1 for f in frameworks if not f.connected)),
        "master/outstanding_offers": float(len(master.offers)),
    }
    for name in ("slave_registrations", "slave_reregistrations", "slave_removals",
                 "slave_unreachable_completed", "valid_status_updates", "invalid_status_updates",
                 "tasks_launched", "frameworks_subscribed"):
        out[f"master/{name}"] = 0.0
    counts = live_task_counts(master)
    for state_name in ("TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
                       "TASK_UNREACHABLE"):
        out[f"master/tasks_{state_name[5:].lower()}"] = float(counts.get(state_name, 0))
    for state_name in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
                       "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"):
        out[f"master/tasks_{state_name[5:].lower()}"] = 0.0
    for key, value in master.counters.snapshot().items():
        if key.startswith("master/tasks_") and key.endswith("_total"):
            # Terminal states are counters in Mesos; the others stay gauges of live tasks.
            name = key[: -len("_total")]
            if f"TASK_{name[len('master/tasks_'):].upper()}" in TERMINAL_STATES:
                out[name] = value
        else:
            out[key] = value
    for name in USED_SCALARS:
        t = total.scalar(name)
        u = used[name]
        out[f"master/{name}_total"] = t
        out[f"master/{name}_used"] = u
        out[f"master/{name}_percent"] = (u / t) if t else 0.0
    return out
