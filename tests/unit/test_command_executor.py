"""Pure helpers of the stdlib-only command executor (src/mesos/executor/command.py)."""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from mesos.executor import command as cx

SCRIPT = Path(cx.__file__).resolve()


# -- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5secs", 5.0),
        ("0secs", 0.0),
        ("100ms", 0.1),
        ("1.5mins", 90.0),
        ("15mins", 900.0),
        ("2hrs", 7200.0),
        ("1days", 86400.0),
        ("1weeks", 604800.0),
        ("250us", 250e-6),
        ("10ns", 10e-9),
        (" 3secs\n", 3.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert cx.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "secs", "5 parsecs", "-1secs", "xms", "nanms", "5s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        cx.parse_duration(text)


def test_duration_seconds() -> None:
    assert cx.duration_seconds({"nanoseconds": 1_500_000_000}) == 1.5
    assert cx.duration_seconds({"nanoseconds": "2000000000"}) == 2.0
    assert cx.duration_seconds({"nanoseconds": -5}) == 0.0
    assert cx.duration_seconds({}) is None
    assert cx.duration_seconds(None) is None
    assert cx.duration_seconds({"nanoseconds": "soon"}) is None


# -- JSON -----------------------------------------------------------------------------

SAMPLES: list[object] = [
    {"type": "SUBSCRIBED", "subscribed": {"executor_info": {"executor_id": {"value": "e"}}}},
    {"a": [1, -2, 2.5, 1e300, True, False, None, 'x\u00e9\n"\\', {}], "b": []},
    [],
    "caf\u00e9 \U0001f600",
    0,
]


@pytest.mark.parametrize("value", SAMPLES)
def test_json_round_trip(value: object) -> None:
    encoded = cx.json_dumps(value)
    assert encoded.isascii()
    assert "\n" not in encoded
    assert json.loads(encoded) == value
    assert cx.json_loads(encoded) == value
    assert cx.json_loads(json.dumps(value, indent=2).encode()) == value


def test_json_loads_errors() -> None:
    for bad in ["", "{", '{"a":1} x', "[1,]", "nope"]:
        with pytest.raises(ValueError):
            cx.json_loads(bad)


def test_json_dumps_rejects() -> None:
    with pytest.raises(ValueError):
        cx.json_dumps(float("nan"))
    with pytest.raises(TypeError):
        cx.json_dumps({"a": object()})


def test_json_dumps_is_compact_and_keeps_order() -> None:
    assert cx.json_dumps({"b": 1, "a": [1.0, "x"]}) == '{"b":1,"a":[1.0,"x"]}'


# -- RecordIO ---------------------------------------------------------------------------


def _recordio(*payloads: bytes) -> bytes:
    return b"".join(str(len(p)).encode() + b"\n" + p for p in payloads)


def test_recordio_whole_stream() -> None:
    records = [b'{"type":"HEARTBEAT"}', '{"m":"\u00e9\u00e9"}'.encode(), b"", b"x" * 1000]
    decoder = cx.RecordIODecoder()
    assert decoder.feed(_recordio(*records)) == records
    assert decoder.feed(b"") == []


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_recordio_split_anywhere(step: int) -> None:
    records = [b'{"type":"SUBSCRIBED"}', b'{"type":"LAUNCH","launch":{}}', b"12345678901"]
    stream = _recordio(*records)
    decoder = cx.RecordIODecoder()
    out: list[bytes] = []
    for index in range(0, len(stream), step):
        out += decoder.feed(stream[index : index + step])
    assert out == records


def test_recordio_size_counts_bytes_not_characters() -> None:
    payload = '{"s":"\u00e9\u20ac"}'.encode()
    assert len(payload) != len(payload.decode())
    decoder = cx.RecordIODecoder()
    assert decoder.feed(_recordio(payload) + b"3\nab") == [payload]
    assert decoder.feed(b"c") == [b"abc"]


@pytest.mark.parametrize("bad", [b"x\n{}", b"-1\n", b" 2\n{}", b"9" * 30])
def test_recordio_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(ValueError):
        cx.RecordIODecoder().feed(bad)


# -- chunked transfer encoding --------------------------------------------------------------


def _chunked(*pieces: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 5, 1000])
def test_chunked_split_anywhere(step: int) -> None:
    pieces = [b"hello ", b"x" * 300, b"world"]
    wire = _chunked(*pieces)
    decoder = cx.ChunkedDecoder()
    body = b""
    for index in range(0, len(wire), step):
        assert not decoder.done
        body += decoder.feed(wire[index : index + step])
    assert body == b"".join(pieces)
    assert decoder.done


def test_chunked_extensions_and_trailers() -> None:
    decoder = cx.ChunkedDecoder()
    assert decoder.feed(b"3;name=value\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n") == b"abc"
    assert decoder.done


def test_chunked_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        cx.ChunkedDecoder().feed(b"zz\r\n")
    with pytest.raises(ValueError):
        cx.ChunkedDecoder().feed(b"1\r\nabc\r\n")


def test_chunked_then_recordio_with_independent_boundaries() -> None:
    records = [b'{"type":"SUBSCRIBED"}', b'{"type":"LAUNCH"}', b'{"type":"KILL"}']
    stream = _recordio(*records)
    # Re-chunk at arbitrary offsets that cut through size lines and payloads.
    cuts = [0, 1, 2, 5, 24, 25, 40, len(stream)]
    wire = _chunked(*(stream[a:b] for a, b in itertools.pairwise(cuts)))
    chunked, recordio = cx.ChunkedDecoder(), cx.RecordIODecoder()
    out: list[bytes] = []
    for index in range(0, len(wire), 3):
        out += recordio.feed(chunked.feed(wire[index : index + 3]))
    assert out == records


# -- HTTP head, endpoint --------------------------------------------------------------------


def test_parse_response_head() -> None:
    status, headers = cx.parse_response_head(
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nX-A: 1\r\nx-a: 2"
    )
    assert status == 202
    assert headers == {"content-length": "0", "x-a": "1, 2"}
    with pytest.raises(ValueError):
        cx.parse_response_head(b"garbage")


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("127.0.0.1:5051", ("127.0.0.1", 5051)),
        ("agent.example:80", ("agent.example", 80)),
        ("[::1]:5051", ("::1", 5051)),
        ("http://10.0.0.1:5051/slave(1)", ("10.0.0.1", 5051)),
    ],
)
def test_parse_endpoint(endpoint: str, expected: tuple[str, int]) -> None:
    assert cx.parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["", "host", "host:", ":5051", "host:port"])
def test_parse_endpoint_rejects(endpoint: str) -> None:
    with pytest.raises(ValueError):
        cx.parse_endpoint(endpoint)


def test_request_bytes() -> None:
    agent = cx.Agent("127.0.0.1:5051", None, "tok")
    request = agent.request(b'{"type":"HEARTBEAT"}')
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /api/v1/executor HTTP/1.1"
    assert "Host: 127.0.0.1:5051" in lines
    assert "Content-Type: application/json" in lines
    assert "Accept: application/json" in lines
    assert "Authorization: Bearer tok" in lines
    assert f"Content-Length: {len(body)}" in lines
    assert body == b'{"type":"HEARTBEAT"}'


# -- statuses ---------------------------------------------------------------------------------


def test_new_uuid_is_16_random_bytes() -> None:
    values = {cx.new_uuid() for _ in range(100)}
    assert len(values) == 100
    for value in values:
        raw = base64.b64decode(value, validate=True)
        assert len(raw) == 16
        assert uuid.UUID(bytes=raw).version == 4


def test_make_status() -> None:
    status = cx.make_status("t1", "TASK_FAILED", "e1", message="boom", reason="REASON_X")
    assert status["task_id"] == {"value": "t1"}
    assert status["executor_id"] == {"value": "e1"}
    assert status["state"] == "TASK_FAILED"
    assert status["source"] == "SOURCE_EXECUTOR"
    assert status["message"] == "boom"
    assert status["reason"] == "REASON_X"
    assert isinstance(status["timestamp"], float)
    assert len(base64.b64decode(status["uuid"])) == 16
    plain = cx.make_status("t1", "TASK_RUNNING", "e1")
    assert "message" not in plain
    assert "reason" not in plain


def _wait_status(args: list[str]) -> int:
    pid = os.spawnvp(os.P_NOWAIT, args[0], args)
    return os.waitpid(pid, 0)[1]


def test_describe_wait_status() -> None:
    assert cx.describe_wait_status(_wait_status(["true"])) == "Command exited with status 0"
    assert cx.describe_wait_status(_wait_status(["sh", "-c", "exit 7"])) == (
        "Command exited with status 7"
    )
    killed = _wait_status(["sh", "-c", "kill -KILL $$"])
    assert cx.describe_wait_status(killed) == (
        f"Command terminated with signal {signal.strsignal(signal.SIGKILL)}"
    )


# -- commands ---------------------------------------------------------------------------------


def test_build_command_shell() -> None:
    environ = {b"PATH": b"/bin", b"KEEP": b"1", b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN": b"s"}
    command = {
        "value": "echo $FOO",
        "environment": {
            "variables": [
                {"name": "FOO", "value": "bar"},
                {"name": "KEEP", "value": "2"},
                {"name": "EMPTY"},
                {"name": "SECRET", "type": "SECRET", "secret": {"value": {"data": "aGk="}}},
                {"name": "REF", "type": "SECRET", "secret": {"reference": {"name": "x"}}},
            ]
        },
    }
    path, argv, env = cx.build_command(command, environ, "task-1")
    assert path == b"/bin/sh"
    assert argv == ["sh", "-c", "echo $FOO"]
    assert env[b"FOO"] == b"bar"
    assert env[b"KEEP"] == b"2"
    assert env[b"EMPTY"] == b""
    assert env[b"SECRET"] == b"hi"
    assert b"REF" not in env
    assert env[b"MESOS_TASK_ID"] == b"task-1"
    assert b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN" not in env
    assert environ[b"KEEP"] == b"1"  # the executor's own environment is untouched


def test_build_command_exec_uses_task_path(tmp_path: Path) -> None:
    tool = tmp_path / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    command = {
        "shell": False,
        "value": "mytool",
        "arguments": ["mytool", "-x"],
        "environment": {"variables": [{"name": "PATH", "value": f"/nonexistent:{tmp_path}"}]},
    }
    path, argv, _env = cx.build_command(command, {b"PATH": b"/bin"})
    assert path == str(tool).encode()
    assert argv == ["mytool", "-x"]
    # No arguments: argv is just the value.
    _path, argv, env = cx.build_command({"shell": False, "value": "/bin/true"}, {})
    assert argv == ["/bin/true"]
    assert env[b"PATH"] == cx.DEFAULT_PATH.encode()


@pytest.mark.parametrize(
    "command",
    [{}, {"value": ""}, {"shell": False}, {"shell": False, "value": "no-such-tool-xyz"}],
)
def test_build_command_errors(command: dict[str, object]) -> None:
    with pytest.raises(cx.LaunchError):
        cx.build_command(command, {b"PATH": b"/bin:/usr/bin"})


# -- configuration ------------------------------------------------------------------------------


def test_config_from_environment() -> None:
    config = cx.Config(
        {
            b"MESOS_AGENT_ENDPOINT": b"127.0.0.1:5051",
            b"MESOS_FRAMEWORK_ID": b"fw",
            b"MESOS_EXECUTOR_ID": b"ex",
            b"MESOS_DIRECTORY": b"/tmp/d",
            b"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": b"7secs",
            b"MESOS_CHECKPOINT": b"1",
            b"MESOS_RECOVERY_TIMEOUT": b"1mins",
            b"MESOS_SUBSCRIPTION_BACKOFF_MAX": b"500ms",
        }
    )
    assert (config.framework_id, config.executor_id) == ("fw", "ex")
    assert config.sandboxes == ["/tmp/d"]
    assert config.shutdown_grace == 7.0
    assert config.checkpoint is True
    assert config.recovery_timeout == 60.0
    assert config.backoff_max == 0.5
    defaults = cx.Config(
        {
            b"MESOS_AGENT_ENDPOINT": b"h:1",
            b"MESOS_FRAMEWORK_ID": b"fw",
            b"MESOS_EXECUTOR_ID": b"ex",
            b"MESOS_CHECKPOINT": b"0",
            b"MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": b"bogus",
        }
    )
    assert defaults.checkpoint is False
    assert defaults.shutdown_grace == cx.DEFAULT_SHUTDOWN_GRACE
    with pytest.raises(ValueError, match="MESOS_EXECUTOR_ID"):
        cx.Config({b"MESOS_AGENT_ENDPOINT": b"h:1", b"MESOS_FRAMEWORK_ID": b"fw"})


# -- the script itself --------------------------------------------------------------------------


def test_script_imports_only_lean_stdlib_modules() -> None:
    probe = (
        "import sys; before = set(sys.modules); "
        f"path = {str(SCRIPT)!r}; "
        "exec(compile(open(path).read(), path, 'exec'), {'__name__': 'probe'}); "
        "print(' '.join(sorted(set(sys.modules) - before)))"
    )
    added = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    allowed = {"__future__", "_json", "_socket", "binascii", "select"}
    assert set(added) <= allowed, set(added) - allowed


def test_connecting_stays_lean() -> None:
    """Resolving/connecting must not pull in the idna codec (unicodedata, re: ~8 ms)."""
    probe = (
        "import sys, _socket; "
        f"path = {str(SCRIPT)!r}; "
        "ns = {'__name__': 'probe'}; "
        "exec(compile(open(path).read(), path, 'exec'), ns); "
        "server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM); "
        "server.bind(('127.0.0.1', 0)); server.listen(1); "
        "port = server.getsockname()[1]; "
        "ns['Agent'](f'127.0.0.1:{port}', None, None).connect(5.0).close(); "
        "ns['Agent'](f'localhost:{port}', None, None).connect(5.0).close(); "
        "print(sorted(m for m in sys.modules if m.startswith(('encodings.idna', 're', 'unicodedata'))))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_executor_argv_prefers_fresh_bytecode(tmp_path: Path) -> None:
    argv = cx.executor_argv(cache_dir=str(tmp_path))
    assert argv[:3] == [sys.executable, "-S", "-I"]
    cached = Path(argv[3])
    assert cached.parent == tmp_path
    assert cached.suffix == ".pyc"
    written = cached.stat().st_mtime_ns
    assert cx.executor_argv(cache_dir=str(tmp_path)) == argv  # fresh: reused as is
    assert cached.stat().st_mtime_ns == written
    cached.write_bytes(b"stale")
    assert cx.executor_argv(cache_dir=str(tmp_path)) == argv  # stale: recompiled
    assert cached.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
    # The bytecode runs as the script does.
    result = subprocess.run([*argv], capture_output=True, text=True, env={}, timeout=30)
    assert result.returncode == 1
    assert "MESOS_FRAMEWORK_ID" in result.stderr


def test_executor_argv_falls_back_to_source(tmp_path: Path) -> None:
    assert cx.executor_argv("/other/python") == ["/other/python", "-S", "-I", str(SCRIPT)]
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    assert cx.executor_argv(cache_dir=str(unwritable)) == [sys.executable, "-S", "-I", str(SCRIPT)]


def test_script_exits_nonzero_without_environment() -> None:
    result = subprocess.run(
        [sys.executable, "-S", "-I", str(SCRIPT)],
        capture_output=True,
        text=True,
        env={},
        timeout=30,
    )
    assert result.returncode == 1
    assert "MESOS_FRAMEWORK_ID" in result.stderr
