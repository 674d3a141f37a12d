"""Health checks run by the real command executor, against the fake agent of
``test_command_executor.py`` (short intervals; every wait bounded)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_command_executor as base
from tests.integration.test_command_executor import FakeAgent, launch_event

agent = base.agent  # the fake agent and executor fixtures
executors = base.executors

pytestmark = pytest.mark.slow

HEALTH_REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


def with_health_check(task_id: str, value: str, **health_check: Any) -> dict[str, Any]:
    event = launch_event(task_id, value)
    timings = {
        "delay_seconds": 0.0,
        "interval_seconds": 0.1,
        "timeout_seconds": 5.0,
        "grace_period_seconds": 0.0,
    }
    event["launch"]["task"]["health_check"] = {**timings, **health_check}
    event["launch"]["task"]["kill_policy"] = {"grace_period": {"nanoseconds": 200_000_000}}
    return event


async def next_health(agent: FakeAgent) -> dict[str, Any]:
    while True:
        status = await agent.next_update()
        assert status["state"] in ("TASK_STARTING", "TASK_RUNNING"), status
        if "healthy" in status:
            return status


@pytest.fixture
def http_server() -> Iterator[tuple[int, list[str]]]:
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200 if self.path == "/health" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_failing_command_check_kills_the_task(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        with_health_check(
            "task-h",
            "sleep 100",
            type="COMMAND",
            command={"value": 'echo "check:$MESOS_TASK_ID" >> checks.txt; exit 1'},
            consecutive_failures=3,
        )
    ]
    executor = executors(agent, tmp_path)
    unhealthy = await next_health(agent)
    assert unhealthy["state"] == "TASK_RUNNING"
    assert unhealthy["healthy"] is False
    assert unhealthy["reason"] == HEALTH_REASON
    terminal = await agent.next_update()
    assert terminal["state"] == "TASK_KILLED"
    assert terminal["healthy"] is False
    assert "health check" in terminal["message"]
    assert await executor.wait() == 0
    # Run in the sandbox with the task's environment; reported once, killed after 3.
    assert (tmp_path / "checks.txt").read_text().split() == ["check:task-h"] * 3
    assert [s.get("healthy") for s in agent.updates] == [None, None, False, False]


async def test_grace_period_ignores_early_failures(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    # Fails for its first 0.3 s (inside the grace period), then passes: only healthy=true.
    agent.on_subscribe = [
        with_health_check(
            "task-g",
            "sleep 100",
            type="COMMAND",
            command={"value": "test -e ready"},
            grace_period_seconds=5.0,
            consecutive_failures=1,
        )
    ]
    executors(agent, tmp_path)
    await asyncio.sleep(0.3)
    (tmp_path / "ready").write_text("")
    healthy = await next_health(agent)
    assert healthy["healthy"] is True
    assert healthy["reason"] == HEALTH_REASON
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-g"}}})
    terminal = await agent.next_update()
    assert terminal["state"] == "TASK_KILLED"
    assert "healthy" not in terminal


async def test_http_check_reports_healthy(
    agent: FakeAgent, executors: Any, tmp_path: Path, http_server: tuple[int, list[str]]
) -> None:
    port, paths = http_server
    agent.on_subscribe = [
        with_health_check(
            "task-w", "sleep 100", type="HTTP", http={"port": port, "path": "/health"}
        )
    ]
    executors(agent, tmp_path)
    healthy = await next_health(agent)
    assert healthy["state"] == "TASK_RUNNING"
    assert healthy["healthy"] is True
    assert healthy["reason"] == HEALTH_REASON
    assert paths[0] == "/health"
    # A steady health is not reported again.
    await asyncio.sleep(0.5)
    assert len(paths) >= 2
    assert [s.get("healthy") for s in agent.updates] == [None, None, True]
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-w"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"


async def test_http_check_fails_on_an_error_status(
    agent: FakeAgent, executors: Any, tmp_path: Path, http_server: tuple[int, list[str]]
) -> None:
    port, _paths = http_server
    agent.on_subscribe = [
        with_health_check(
            "task-e",
            "sleep 100",
            type="HTTP",
            http={"port": port, "path": "/broken"},
            consecutive_failures=2,
        )
    ]
    executor = executors(agent, tmp_path)
    assert (await next_health(agent))["healthy"] is False
    terminal = await agent.next_update()
    assert (terminal["state"], terminal["healthy"]) == ("TASK_KILLED", False)
    assert await executor.wait() == 0


async def test_tcp_check_to_a_closed_port_fails(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        with_health_check(
            "task-t", "sleep 100", type="TCP", tcp={"port": closed_port()}, consecutive_failures=2
        )
    ]
    executor = executors(agent, tmp_path)
    unhealthy = await next_health(agent)
    assert unhealthy["healthy"] is False
    terminal = await agent.next_update()
    assert (terminal["state"], terminal["healthy"]) == ("TASK_KILLED", False)
    assert await executor.wait() == 0


async def test_tcp_check_to_an_open_port_passes(
    agent: FakeAgent, executors: Any, tmp_path: Path, http_server: tuple[int, list[str]]
) -> None:
    port, _paths = http_server
    agent.on_subscribe = [with_health_check("task-o", "sleep 100", type="TCP", tcp={"port": port})]
    executors(agent, tmp_path)
    assert (await next_health(agent))["healthy"] is True
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-o"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"


async def test_check_timeout_counts_as_failure(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        with_health_check(
            "task-s",
            "sleep 100",
            type="COMMAND",
            command={"value": "sleep 100"},
            timeout_seconds=0.2,
            consecutive_failures=1,
        )
    ]
    executor = executors(agent, tmp_path)
    assert (await next_health(agent))["healthy"] is False
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0


# -- general checks (TaskInfo.check) ---------------------------------------------------

CHECK_REASON = "REASON_TASK_CHECK_STATUS_UPDATED"


def with_check(task_id: str, value: str, **check: Any) -> dict[str, Any]:
    event = launch_event(task_id, value)
    timings = {"delay_seconds": 0.0, "interval_seconds": 0.1, "timeout_seconds": 5.0}
    event["launch"]["task"]["check"] = {**timings, **check}
    return event


async def next_check(agent: FakeAgent) -> dict[str, Any]:
    while True:
        status = await agent.next_update()
        assert status["state"] in ("TASK_STARTING", "TASK_RUNNING"), status
        if status.get("reason") == CHECK_REASON:
            return status


async def test_general_command_check_reports_exit_codes(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        with_check(
            "task-c",
            "sleep 100",
            type="COMMAND",
            command={"command": {"value": "test -e ready || exit 7"}},
        )
    ]
    executors(agent, tmp_path)
    assert (await agent.next_update())["state"] == "TASK_STARTING"
    running = await agent.next_update()
    assert running["check_status"] == {"type": "COMMAND", "command": {}}
    first = await next_check(agent)
    assert first["check_status"] == {"type": "COMMAND", "command": {"exit_code": 7}}
    (tmp_path / "ready").write_text("")
    second = await next_check(agent)
    assert second["check_status"] == {"type": "COMMAND", "command": {"exit_code": 0}}
    assert "healthy" not in second
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-c"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"


async def test_general_http_check_reports_the_status_code(
    agent: FakeAgent, executors: Any, tmp_path: Path, http_server: tuple[int, list[str]]
) -> None:
    port, _paths = http_server
    agent.on_subscribe = [
        with_check("task-hc", "sleep 100", type="HTTP", http={"port": port, "path": "/nope"})
    ]
    executors(agent, tmp_path / "http")
    status = await next_check(agent)
    assert status["check_status"] == {"type": "HTTP", "http": {"status_code": 503}}
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-hc"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"


async def test_general_tcp_check_to_a_closed_port(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    agent.on_subscribe = [
        with_check("task-tc", "sleep 100", type="TCP", tcp={"port": closed_port()})
    ]
    executors(agent, tmp_path)
    status = await next_check(agent)
    assert status["check_status"] == {"type": "TCP", "tcp": {"succeeded": False}}
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-tc"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"


async def test_checks_from_bytecode_in_a_cache_dir(
    agent: FakeAgent, executors: Any, tmp_path: Path
) -> None:
    # As the agent starts it: the checks module is loaded from the bytecode that
    # executor_argv() wrote beside the executor's own, only once a task has a check.
    argv = base.command_module.executor_argv(cache_dir=str(tmp_path / "bin"))
    assert argv[3].startswith(str(tmp_path / "bin"))
    assert sorted(p.name.split(".")[0] for p in (tmp_path / "bin").iterdir()) == [
        "checks",
        "command",
    ]
    agent.on_subscribe = [
        with_check("task-b", "sleep 100", type="COMMAND", command={"command": {"value": "true"}})
    ]
    executor = executors(agent, tmp_path / "sandbox", argv=argv)
    status = await next_check(agent)
    assert status["check_status"] == {"type": "COMMAND", "command": {"exit_code": 0}}
    await agent.send({"type": "KILL", "kill": {"task_id": {"value": "task-b"}}})
    assert (await agent.next_update())["state"] == "TASK_KILLED"
    assert await executor.wait() == 0
