"""``/master/state-summary`` built from the counts the task maps keep
(:class:`mesos.master.state.TaskMap`) says exactly what the walk of every task it
replaced said, whatever happens to the tasks (the random changes of
``test_task_counts``), and a framework's ``agents`` tally stays equal to its tasks."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from mesos.master import views
from mesos.master.service import Master
from mesos.master.state import TASK_STATES, Task
from tests.unit.test_master_core import FakeStream, master, register, reported
from tests.unit.test_task_counts import Driver


def walked_counts(tasks: list[Task]) -> dict[str, int]:
    counts = dict.fromkeys(TASK_STATES, 0)
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return counts


def walked_summary(m: Master) -> dict[str, Any]:
    """The state summary as it was built before: walking every task, for reference."""
    memo = views.Memo()
    slaves = []
    for agent in m.agents.values():
        item = views.agent_json(m, agent, memo=memo)
        item.update(walked_counts(agent.all_tasks()))
        item["framework_ids"] = sorted(agent.tasks)
        slaves.append(item)
    frameworks = []
    for framework in m.frameworks.values():
        item = views.framework_json(m, framework, summary=True)
        item.update(walked_counts(list(framework.tasks.values())
                                  + list(framework.completed_tasks)))
        item["slave_ids"] = sorted({t.agent_id for t in framework.tasks.values()})
        frameworks.append(item)
    out: dict[str, Any] = {"hostname": m.hostname, "slaves": slaves, "frameworks": frameworks}
    if m.flags.cluster:
        out["cluster"] = m.flags.cluster
    return out


def same(m: Master) -> None:
    # Byte for byte, key order included: what the endpoint sends.
    assert json.dumps(views.state_summary(m)) == json.dumps(walked_summary(m))
    for framework in [*m.frameworks.values(), *m.completed_frameworks]:
        tally: dict[str, int] = {}
        for t in framework.tasks.values():
            tally[t.agent_id] = tally.get(t.agent_id, 0) + 1
        assert framework.tasks.agents == tally


@pytest.mark.parametrize("seed", range(6))
async def test_summary_equals_the_walk_after_random_changes(seed: int) -> None:
    m = master()
    driver = Driver(m, random.Random(seed))
    for _ in range(3):
        driver.register()
    for _ in range(2):
        driver.subscribe()
    done: dict[str, int] = {}
    seen_states: set[str] = set()
    seen_completed = seen_slave_ids = 0
    for _ in range(400):
        action = driver.step()
        done[action] = done.get(action, 0) + 1
        same(m)
        summary = views.state_summary(m)
        for f in summary["frameworks"]:
            seen_states |= {s for s in TASK_STATES if f[s]}
            seen_slave_ids = max(seen_slave_ids, len(f["slave_ids"]))
        seen_completed = max(seen_completed,
                             max((len(f.completed_tasks) for f in m.frameworks.values()),
                                 default=0))
    # Not trivially empty: several states, completed tasks, tasks on several agents.
    assert len(seen_states) >= 5, seen_states
    assert seen_completed >= 3 and seen_slave_ids >= 2, (seen_completed, seen_slave_ids)
    assert all(done.get(a, 0) > 0 for a in ("launch", "status", "acknowledge", "reregister",
                                            "unreachable", "remove_framework")), done


async def test_a_terminal_task_the_reregistered_agent_left_out_keeps_its_agent() -> None:
    """A terminal, unacknowledged task an agent does not report when it re-registers
    stays its framework's (and so in ``slave_ids``) though the agent's new task map
    no longer holds it: the framework's ``agents`` tally, not the agents' maps, is
    what matches the walk."""
    m = master()
    fw_info = {"user": "u", "name": "f", "id": {"value": "F"}, "failover_timeout": 3600.0}
    agent = register(m, FakeStream(), frameworks=[fw_info],
                     tasks=[reported("x", "F", "", "TASK_FINISHED"),
                            reported("y", "G", "", "TASK_RUNNING")])
    same(m)
    agent = register(m, FakeStream(), agent.id, frameworks=[fw_info], tasks=[])
    assert "F" not in agent.tasks and "x" in m.frameworks["F"].tasks
    summary = views.state_summary(m)
    assert summary["frameworks"][0]["slave_ids"] == [agent.id]
    assert summary["frameworks"][0]["TASK_FINISHED"] == 1
    assert summary["slaves"][0]["TASK_FINISHED"] == 0
    same(m)
