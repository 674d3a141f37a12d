from __future__ import annotations

from pathlib import Path

import pytest

from mesos.flags import (
    JSON,
    Bytes,
    Duration,
    Flag,
    Flags,
    exit_with_error,
    format_bytes,
    format_duration,
    parse_bytes,
    parse_duration,
    parse_flags,
)

FLAGS = [
    Flag("port", int, 5050, "Port to listen on."),
    Flag("ip", str, None, "IP address to listen on."),
    Flag("work_dir", str, None, "Directory for state.", required=True),
    Flag("hostname_lookup", bool, True, "Look up the hostname."),
    Flag("checkpoint", bool, False, "Checkpoint state."),
    Flag("allocation_interval", Duration, "1secs", "Time between allocations."),
    Flag("agent_ping_timeout", Duration, 15.0, "Ping timeout.", aliases=("slave_ping_timeout",)),
    Flag("ratio", float, 0.5, "A ratio."),
    Flag("gc_headroom", Bytes, "1GB", "Bytes."),
    Flag("domain", JSON, None, "Domain JSON."),
]


def parse(argv: list[str], env: dict[str, str] | None = None) -> Flags:
    return parse_flags("mesos-master", FLAGS, argv, env or {})


def error_of(
    capsys: pytest.CaptureFixture[str], argv: list[str], env: dict[str, str] | None = None
) -> str:
    with pytest.raises(SystemExit) as exc:
        parse(argv, env)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("mesos-master: ")
    return err.strip()


def test_defaults_and_forms() -> None:
    f = parse(["--work_dir=/tmp/w"])
    assert f.port == 5050
    assert f.ip is None
    assert f.work_dir == "/tmp/w"
    assert f.hostname_lookup is True
    assert f.checkpoint is False
    assert f.allocation_interval == 1.0
    assert f.agent_ping_timeout == 15.0
    assert f.gc_headroom == 1 << 30
    assert not f.is_set("port")
    assert f.is_set("work_dir")


def test_value_forms() -> None:
    f = parse(
        [
            "--work_dir",
            "/w",
            "--port",
            "6060",
            "--no-hostname_lookup",
            "--checkpoint",
            "--allocation_interval=200ms",
            "--ratio=0.25",
            '--domain={"a": 1}',
        ]
    )
    assert f.port == 6060
    assert f.work_dir == "/w"
    assert f.hostname_lookup is False
    assert f.checkpoint is True
    assert f.allocation_interval == pytest.approx(0.2)
    assert f.ratio == 0.25
    assert f.domain == {"a": 1}
    f = parse(["--work_dir=/w", "--checkpoint=false", "--hostname_lookup=true"])
    assert f.checkpoint is False and f.hostname_lookup is True


def test_environment_fallback_and_precedence() -> None:
    env = {"MESOS_WORK_DIR": "/env", "MESOS_PORT": "7070", "MESOS_CHECKPOINT": "true"}
    f = parse([], env)
    assert (f.work_dir, f.port, f.checkpoint) == ("/env", 7070, True)
    f = parse(["--port=8080"], env)
    assert f.port == 8080
    assert f.is_set("port")


def test_alias() -> None:
    f = parse(["--work_dir=/w", "--slave_ping_timeout=3secs"])
    assert f.agent_ping_timeout == 3.0
    f = parse(["--work_dir=/w"], {"MESOS_SLAVE_PING_TIMEOUT": "2mins"})
    assert f.agent_ping_timeout == 120.0


def test_file_loader(tmp_path: Path) -> None:
    p = tmp_path / "port"
    p.write_text("9090\n")
    f = parse(["--work_dir=/w", f"--port=file://{p}"])
    assert f.port == 9090


def test_as_dict() -> None:
    f = parse(["--work_dir=/w", "--allocation_interval=90secs", "--ratio=2"])
    d = f.as_dict()
    assert d["port"] == "5050"
    assert d["work_dir"] == "/w"
    assert d["hostname_lookup"] == "true"
    assert d["allocation_interval"] == "90secs"
    assert d["agent_ping_timeout"] == "15secs"
    assert d["ratio"] == "2"
    assert d["gc_headroom"] == "1GB"
    assert "ip" not in d
    assert all(isinstance(v, str) for v in d.values())


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        assert f"--{flag.name}" in out or f"--[no-]{flag.name}" in out
        assert flag.help in out
    assert "default: 5050" in out
    assert "default: 1secs" in out
    assert "default: 15secs" in out
    assert "MESOS_PORT" in out


def test_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, ["--work_dir=/w", "--bogus=1"])
    assert "bogus" in err


def test_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, ["--work_dir=/w", "--port=abc"])
    assert "'port'" in err
    err = error_of(capsys, ["--work_dir=/w", "--allocation_interval=5"])
    assert "allocation_interval" in err
    err = error_of(capsys, ["--work_dir=/w", "--checkpoint=maybe"])
    assert "checkpoint" in err
    err = error_of(capsys, ["--work_dir=/w"], {"MESOS_PORT": "x"})
    assert "'port'" in err


def test_missing_required(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(capsys, [])
    assert "work_dir" in err and "required" in err


def test_misc_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert "port" in error_of(capsys, ["--work_dir=/w", "--no-port"])
    assert "port" in error_of(capsys, ["--work_dir=/w", "--port"])
    assert "stray" in error_of(capsys, ["--work_dir=/w", "stray"])
    assert "port" in error_of(capsys, ["--work_dir=/w", "--port=1", "--port=2"])
    assert "nofile" in error_of(capsys, ["--work_dir=/w", "--port=file:///nofile/x"])


def test_exit_with_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        exit_with_error("mesos-agent", "bad thing")
    assert exc.value.code == 1
    assert capsys.readouterr().err == "mesos-agent: bad thing\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("1secs", 1.0),
        ("5mins", 300.0),
        ("2hrs", 7200.0),
        ("1days", 86400.0),
        ("1weeks", 604800.0),
        ("10ns", 1e-8),
        ("3us", 3e-6),
        ("0.5secs", 0.5),
        ("1.5mins", 90.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "secs", "5s", "5 parsecs", "abc", "1.2.3secs"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (5.0, "5secs"),
        (900.0, "15mins"),
        (0.1, "100ms"),
        (604800.0, "1weeks"),
        (90.0, "90secs"),
        (1.5, "1500ms"),
        (10 * 86400.0, "10days"),
        (0.0, "0ns"),
        (2e-6, "2us"),
        (7200.0, "2hrs"),
        (1.2345, "1.2345secs"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_duration_round_trip() -> None:
    for s in ["1secs", "15mins", "100ms", "2weeks", "3days", "90secs", "7us", "9ns"]:
        assert format_duration(parse_duration(s)) == s


def test_bytes() -> None:
    assert parse_bytes("512MB") == 512 << 20
    assert parse_bytes("1GB") == 1 << 30
    assert parse_bytes("100B") == 100
    assert format_bytes(1 << 30) == "1GB"
    assert format_bytes(1536 << 10) == "1536KB"
    assert format_bytes(7) == "7B"
    with pytest.raises(ValueError):
        parse_bytes("12")
    with pytest.raises(ValueError):
        parse_bytes("12XB")
