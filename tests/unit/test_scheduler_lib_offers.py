"""The scheduler library's pure offer helpers (no I/O)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from mesos.scheduler import (
    command_info,
    fit_tasks,
    fits,
    is_terminal,
    launch_operation,
    scalar,
    scalar_resources,
    scalars,
    take,
    task_info,
    to_id,
)


def res(name: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, **extra}


OFFER = [
    res("cpus", 2.0, role="*"),
    res("mem", 1024.0, role="*"),
    res("cpus", 1.0, role="web", reservation={"principal": "ops"}),
    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
]


def test_scalars_sum_across_roles() -> None:
    assert scalars(OFFER) == {"cpus": 3.0, "mem": 1024.0}
    assert scalar(OFFER, "cpus") == 3.0
    assert scalar(OFFER, "gpus") == 0.0


def test_take_prefers_reserved_and_keeps_entry_fields() -> None:
    carved = take(OFFER, {"cpus": 1.5, "mem": 64})
    assert carved is not None
    taken, rest = carved
    assert taken == [
        res("cpus", 1.0, role="web", reservation={"principal": "ops"}),
        res("cpus", 0.5, role="*"),
        res("mem", 64.0, role="*"),
    ]
    assert scalars(rest) == {"cpus": 1.5, "mem": 960.0}
    assert rest[-1]["type"] == "RANGES"  # untouched entries stay
    assert OFFER[0]["scalar"]["value"] == 2.0  # the input is not modified


def test_take_returns_none_when_short() -> None:
    assert take(OFFER, {"cpus": 3.5}) is None
    assert take(OFFER, {"gpus": 1}) is None
    assert fits(OFFER, {"cpus": 3.0, "mem": 1024})
    assert not fits(OFFER, {"mem": 1024.001})


def test_fixed_point_amounts_fit_exactly() -> None:
    assert len(fit_tasks([res("cpus", 0.3)], {"cpus": 0.1}, 10)) == 3
    assert fits([res("cpus", 0.3)], {"cpus": 0.1 + 0.2})


def test_fit_tasks_packs_up_to_count() -> None:
    offer = [res("cpus", 1.0), res("mem", 100.0)]
    per_task = {"cpus": 0.25, "mem": 32}
    assert len(fit_tasks(offer, per_task, 10)) == 3  # mem bounds it
    assert len(fit_tasks(offer, per_task, 2)) == 2
    tasks = fit_tasks(offer, per_task, 3)
    assert all(scalars(t) == {"cpus": 0.25, "mem": 32.0} for t in tasks)
    with pytest.raises(ValueError):
        fit_tasks(offer, {"cpus": 0}, 1)


def test_special_resources_are_not_carved() -> None:
    volume = res("disk", 100.0, disk={"persistence": {"id": "v1"}, "volume": {"mode": "RW"}})
    mount = res("disk", 100.0, disk={"source": {"type": "MOUNT", "mount": {"root": "/m"}}})
    revocable = res("cpus", 4.0, revocable={})
    shared = res("disk", 10.0, shared={}, disk={"persistence": {"id": "v2"}})
    offer = [volume, mount, revocable, shared]
    assert take(offer, {"disk": 1}) is None
    assert take(offer, {"cpus": 1}) is None
    assert take(offer, {"cpus": 1}, allow_revocable=True) is not None
    assert fits([res("disk", 5.0, disk={"source": {"type": "PATH"}})], {"disk": 5})


def test_negative_request_is_refused() -> None:
    with pytest.raises(ValueError, match="Negative"):
        take(OFFER, {"cpus": -1})


def test_builders() -> None:
    assert to_id("a") == {"value": "a"} == to_id({"value": "a"})
    assert scalar_resources({"cpus": 0.5, "mem": 0}, role="web") == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "web"}
    ]
    command = command_info("ls", shell=False, arguments=["ls", "-l"], environment={"A": "b"})
    assert command == {
        "shell": False,
        "value": "ls",
        "arguments": ["ls", "-l"],
        "environment": {"variables": [{"name": "A", "value": "b"}]},
    }
    task = task_info(
        "web-1",
        {"value": "agent-1"},
        scalar_resources({"cpus": 1}),
        command=command_info("sleep 10"),
        labels={"tier": "front"},
        data=b"\x00",
    )
    assert task == {
        "name": "web-1",
        "task_id": {"value": "web-1"},
        "agent_id": {"value": "agent-1"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}],
        "command": {"shell": True, "value": "sleep 10"},
        "labels": {"labels": [{"key": "tier", "value": "front"}]},
        "data": base64.b64encode(b"\x00").decode(),
    }
    assert launch_operation([task]) == {"type": "LAUNCH", "launch": {"task_infos": [task]}}
    with pytest.raises(ValueError):
        task_info("x", "a", [], command={"value": "true"}, executor={"executor_id": {}})


def test_terminal_states() -> None:
    assert is_terminal("TASK_FINISHED") and is_terminal("TASK_GONE_BY_OPERATOR")
    assert not is_terminal("TASK_RUNNING") and not is_terminal("TASK_UNREACHABLE")
