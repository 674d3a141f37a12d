"""The pure check scheduling of the command executor (``HealthChecker``, ``GeneralChecker``)
and the probes it runs."""

from __future__ import annotations

import sys

import pytest

from mesos.executor import checks as cx


def checker(**spec: object) -> cx.HealthChecker:
    return cx.HealthChecker({"type": "COMMAND", **spec}, now=100.0)


def test_defaults_are_mesos_defaults() -> None:
    health = cx.HealthChecker({"type": "TCP", "tcp": {"port": 1}}, now=0.0)
    assert (health.delay, health.interval, health.timeout) == (15.0, 10.0, 20.0)
    assert (health.max_failures, health.grace) == (3, 10.0)
    assert health.deadline() == 15.0
    assert not health.due(14.9)
    assert health.due(15.0)


def test_invalid_values_fall_back_to_defaults() -> None:
    health = checker(delay_seconds=-1, interval_seconds="x", consecutive_failures=0)
    assert health.delay == 15.0
    assert health.interval == 10.0
    assert health.max_failures == 1


def test_schedule_runs_interval_after_each_check_ends() -> None:
    health = checker(delay_seconds=1, interval_seconds=2, timeout_seconds=5)
    assert health.due(101.0)
    health.start(101.0)
    assert not health.due(200.0)  # one check at a time
    assert health.deadline() == 106.0  # its timeout
    assert not health.timed_out(105.9)
    assert health.timed_out(106.0)
    assert health.result(True, 101.5) == (True, False)
    assert health.deadline() == 103.5


def test_zero_timeout_means_no_timeout() -> None:
    health = checker(delay_seconds=0, timeout_seconds=0)
    health.start(100.0)
    assert not health.timed_out(1e12)


def test_only_changes_of_health_are_reported() -> None:
    health = checker(grace_period_seconds=0, consecutive_failures=5)
    results = [health.result(ok, 120.0) for ok in (True, True, False, False, True, True)]
    assert results == [
        (True, False),
        (None, False),
        (False, False),
        (None, False),
        (True, False),
        (None, False),
    ]


def test_consecutive_failures_kill_and_stop_checking() -> None:
    health = checker(grace_period_seconds=0, consecutive_failures=3)
    assert health.result(False, 120.0) == (False, False)
    assert health.result(False, 121.0) == (None, False)
    assert health.result(True, 122.0) == (True, False)  # a success resets the count
    assert health.result(False, 123.0) == (False, False)
    assert health.result(False, 124.0) == (None, False)
    assert health.result(False, 125.0) == (None, True)
    assert health.failures == 3
    assert health.deadline() is None
    assert not health.due(1e12)
    assert health.result(False, 126.0) == (None, False)  # stopped


def test_failures_in_the_grace_period_do_not_count_until_a_success() -> None:
    health = checker(grace_period_seconds=10, consecutive_failures=1)
    assert health.result(False, 105.0) == (None, False)
    assert health.result(False, 110.0) == (None, False)  # still within the grace period
    assert health.failures == 0
    assert health.result(False, 110.5) == (False, True)  # grace period over


def test_grace_period_ends_with_the_first_success() -> None:
    health = checker(grace_period_seconds=60, consecutive_failures=1)
    assert health.result(True, 101.0) == (True, False)
    assert health.result(False, 102.0) == (False, True)


def test_probe_of_a_command_check_uses_the_task_environment() -> None:
    env = {b"PATH": b"/bin", b"MESOS_TASK_ID": b"t"}
    spec = {"type": "COMMAND", "command": {"value": "true"}}
    path, argv, probe_env = cx.check_probe(spec, env)
    assert (path, argv) == (b"/bin/sh", ["sh", "-c", "true"])
    assert probe_env[b"MESOS_TASK_ID"] == b"t"


def test_probe_of_http_and_tcp_checks() -> None:
    spec = {"type": "HTTP", "http": {"port": 8080, "path": "health", "statuses": [200, 204]}}
    path, argv, _env = cx.check_probe(spec, {})
    assert path == sys.executable.encode()
    assert argv[:5] == [sys.executable, "-S", "-I", "-c", cx.PROBE]
    assert argv[5:] == ["HTTP", "8080", "/health", "200,204"]
    _path, argv, _env = cx.check_probe({"type": "TCP", "tcp": {"port": 22}}, {})
    assert argv[5:] == ["TCP", "22"]


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "COMMAND"},
        {"type": "HTTP", "http": {}},
        {"type": "TCP"},
        {"type": "GRPC", "grpc": {"port": 1}},
    ],
)
def test_unusable_checks_are_launch_errors(spec: dict[str, object]) -> None:
    with pytest.raises(cx.LaunchError):
        cx.check_probe(spec, {})


def test_probe_of_a_general_command_check() -> None:
    spec = {"type": "COMMAND", "command": {"command": {"value": "exit 3"}}}
    _path, argv, _env = cx.check_probe(spec, {b"PATH": b"/bin"}, general=True)
    assert argv == ["sh", "-c", "exit 3"]


def test_general_check_reports_changes_of_its_result() -> None:
    check = cx.GeneralChecker(
        {"type": "COMMAND", "delay_seconds": 0, "interval_seconds": 1}, now=0.0
    )
    assert check.status == {"type": "COMMAND", "command": {}}
    assert check.due(0.0)
    check.start(0.0)
    assert check.result(1, 0.5) == {"type": "COMMAND", "command": {"exit_code": 1}}
    assert check.deadline() == 1.5
    assert check.result(1, 2.0) is None  # unchanged
    assert check.result(0, 3.0) == {"type": "COMMAND", "command": {"exit_code": 0}}
    assert check.result(None, 4.0) == {"type": "COMMAND", "command": {}}  # timed out
    check.stop()
    assert check.result(5, 5.0) is None
    assert check.deadline() is None


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [("HTTP", 200, {"status_code": 200}), ("TCP", False, {"succeeded": False})],
)
def test_general_check_fields(kind: str, value: object, expected: dict[str, object]) -> None:
    check = cx.GeneralChecker({"type": kind}, now=0.0)
    assert check.deadline() == 15.0  # CheckInfo's default delay
    assert check.result(value, 16.0) == {"type": kind, kind.lower(): expected}
