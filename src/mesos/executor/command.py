"""Mesos' built-in command executor: runs exactly one task's ``CommandInfo``.

The agent starts this file as ``[sys.executable, "-S", "-I", "<abs path>/command.py"]``
(docs/dev/contracts.md section 6), so it is a standalone script: it must not import the
``mesos`` package nor anything outside the standard library.  Its start-up time and memory
are the floor of every task launch, so imports are kept to C modules that an interpreter
started with ``-S`` has (almost) for free:

* ``_socket`` instead of ``socket`` (which pulls in ``enum``/``selectors``),
* ``_json``'s C scanner/quoting instead of ``json`` (which pulls in ``re``),
* ``_signal`` instead of ``signal`` (``enum`` again), ``posix`` instead of ``os``,
* ``select.poll`` + ``posix.posix_spawn`` instead of ``selectors``/``asyncio``/``subprocess``.

Design: one thread, one ``poll()`` loop over the SUBSCRIBE event stream and a signal
wake-up pipe (SIGCHLD reports the task's exit; SIGTERM/SIGINT/SIGHUP mean "shut down").
Timers (kill escalation, ack wait, reconnect back-off, max completion time) are deadlines
checked around ``poll()``.  UPDATE calls are synchronous POSTs on a second, keep-alive
connection.  Wire protocol: ref ``mesos-http-api.md`` sections 1, 3 and 4.

That machinery is ``ExecutorBase``, shared with the default executor (``default.py`` in
this directory, which imports this file); ``CommandExecutor`` adds the one task.
"""

import _signal
import _socket
import binascii
import posix
import select
import sys
import time

try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - interpreters without the C accelerator
    from json.encoder import py_encode_basestring_ascii as _quote
    from json.scanner import make_scanner as _make_scanner

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mesos.executor import checks

    Json = dict[str, Any]
else:  # annotations are evaluated at run time; `from __future__` would cost an import
    Any = object
    Json = dict

# --------------------------------------------------------------------------------------
# Constants

API_PATH = "/api/v1/executor"
ACK_TIMEOUT = 1.0  # exit this long after the terminal update was accepted but not acked
DEFAULT_KILL_GRACE = 3.0  # Mesos' command executor default when no KillPolicy is given
DEFAULT_SHUTDOWN_GRACE = 5.0  # agent --executor_shutdown_grace_period default
SHUTDOWN_BUFFER = 2.0  # Mesos keeps MAX_REAP_INTERVAL (1s) + 1s for the forced kill
REGISTRATION_TIMEOUT = 60.0  # agent --executor_registration_timeout default
DEFAULT_RECOVERY_TIMEOUT = 900.0  # agent --recovery_timeout default (15mins)
DEFAULT_BACKOFF_MAX = 2.0  # agent --executor_reregistration_timeout default
UPDATE_TIMEOUT = 10.0  # socket timeout of one UPDATE round trip
UPDATE_RETRY = 1.0  # retry interval of an UPDATE that could not be delivered
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

SIGKILL = _signal.SIGKILL
SIGTERM = _signal.SIGTERM
SIGCHLD = _signal.SIGCHLD
# Signals meaning "shut down" for an executor that does not lead its process group.
SHUTDOWN_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
# Signals an executor sharing its group with the task ignores: whatever sends them to the
# group (the executor's own kill, the agent, a task running `kill 0`) means the task.
GROUP_SIGNALS = (
    _signal.SIGTERM,
    _signal.SIGINT,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGUSR1,
    _signal.SIGUSR2,
)
# Dispositions reset to default in the task (Python ignores SIGPIPE and SIGXFSZ).
TASK_SIGDEF = (_signal.SIGPIPE, _signal.SIGXFSZ, _signal.SIGCHLD, *GROUP_SIGNALS)

FS_ENCODING = sys.getfilesystemencoding()
FS_ERRORS = sys.getfilesystemencodeerrors()

_DURATION_UNITS = (
    ("weeks", 604800.0),
    ("days", 86400.0),
    ("hrs", 3600.0),
    ("mins", 60.0),
    ("secs", 1.0),
    ("ms", 1e-3),
    ("us", 1e-6),
    ("ns", 1e-9),
)


def log(message: str, name: str = "command-executor") -> None:
    """Write one diagnostic line to stderr (the sandbox ``stderr`` file)."""
    try:
        sys.stderr.write(f"{name}[{posix.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------------------
# Pure helpers: durations, JSON, RecordIO, HTTP framing, statuses


def parse_duration(text: str) -> float:
    """Parse a stout/Mesos duration string (``5secs``, ``100ms``, ``1.5mins``) to seconds."""
    value = text.strip()
    for unit, factor in _DURATION_UNITS:
        if value.endswith(unit):
            number = value[: -len(unit)].strip()
            try:
                amount = float(number)
            except ValueError:
                break
            if amount != amount or amount < 0 or amount == float("inf"):
                break
            return amount * factor
    raise ValueError(f"invalid duration {text!r}")


def duration_seconds(duration: object) -> float | None:
    """Seconds of a ``DurationInfo`` (``{"nanoseconds": N}``), or None when unset/invalid."""
    if not isinstance(duration, dict):
        return None
    nanos = duration.get("nanoseconds")
    try:
        value = int(nanos) if nanos is not None else None
    except (TypeError, ValueError):
        return None
    if value is None:
        return None
    return max(0.0, value / 1e9)


class _ScanContext:
    """The attributes the C JSON scanner reads from its context object."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo: dict[str, object] = {}  # used by the pure-Python fallback scanner only


_scan = _make_scanner(_ScanContext())  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


def json_loads(text: str | bytes) -> Any:
    """Decode one JSON document (what ``json.loads`` does, minus the ``re`` import)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8")
    index = 0
    length = len(text)
    while index < length and text[index] in _WHITESPACE:
        index += 1
    try:
        value, index = _scan(text, index)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at offset {exc.value}") from None
    while index < length and text[index] in _WHITESPACE:
        index += 1
    if index != length:
        raise ValueError(f"extra data in JSON at offset {index}")
    return value


def json_dumps(value: Any) -> str:
    """Compact, ASCII-only JSON (no raw newlines), as Mesos itself emits it."""
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot encode {value!r} as JSON")
        return float.__repr__(value)
    if isinstance(value, dict):
        items = [_quote(str(key)) + ":" + json_dumps(item) for key, item in value.items()]
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_dumps(item) for item in value) + "]"
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class RecordIODecoder:
    """Incremental RecordIO decoder: ``<decimal byte length>\\n<bytes>`` back to back.

    Input may be split anywhere (HTTP chunk boundaries are independent of records).
    """

    MAX_HEADER = 20  # digits of a uint64

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._pending = -1  # size of the record being read, -1 while reading a size line

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        records: list[bytes] = []
        position = 0
        while True:
            if self._pending < 0:
                newline = buffer.find(b"\n", position)
                if newline < 0:
                    if len(buffer) - position > self.MAX_HEADER:
                        raise ValueError("RecordIO size line too long")
                    break
                header = bytes(buffer[position:newline])
                if not header.isdigit():
                    raise ValueError(f"invalid RecordIO size {header[:32]!r}")
                self._pending = int(header)
                position = newline + 1
            end = position + self._pending
            if len(buffer) < end:
                break
            records.append(bytes(buffer[position:end]))
            position = end
            self._pending = -1
        del buffer[:position]
        return records


class ChunkedDecoder:
    """Incremental decoder of an HTTP/1.1 ``Transfer-Encoding: chunked`` body."""

    _SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
    MAX_LINE = 4096

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = self._SIZE
        self._remaining = 0

    @property
    def done(self) -> bool:
        """True once the terminating zero-size chunk (and trailers) has been read."""
        return self._state == self._DONE

    def _line(self) -> bytes | None:
        newline = self._buffer.find(b"\n")
        if newline < 0:
            if len(self._buffer) > self.MAX_LINE:
                raise ValueError("chunked encoding: line too long")
            return None
        line = bytes(self._buffer[:newline])
        del self._buffer[: newline + 1]
        return line.rstrip(b"\r")

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        output = bytearray()
        while self._buffer and self._state != self._DONE:
            if self._state == self._SIZE:
                line = self._line()
                if line is None:
                    break
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ValueError(f"chunked encoding: bad size {size_text[:32]!r}") from None
                if size < 0:
                    raise ValueError("chunked encoding: negative size")
                if size == 0:
                    self._state = self._TRAILER
                else:
                    self._remaining = size
                    self._state = self._DATA
            elif self._state == self._DATA:
                take = min(self._remaining, len(self._buffer))
                output += self._buffer[:take]
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining == 0:
                    self._state = self._DATA_END
            elif self._state == self._DATA_END:
                line = self._line()
                if line is None:
                    break
                if line:
                    raise ValueError("chunked encoding: missing CRLF after chunk data")
                self._state = self._SIZE
            else:  # trailer section: header lines until an empty one
                line = self._line()
                if line is None:
                    break
                if not line:
                    self._state = self._DONE
        return bytes(output)


def parse_response_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of an HTTP/1.x response head."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"malformed HTTP status line {lines[0][:80]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return status, headers


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` to (host, port)."""
    text = endpoint.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"invalid agent endpoint {endpoint!r}")
    return host, int(port)


def new_uuid() -> str:
    """Base64 of 16 random bytes laid out as a version-4 UUID (TaskStatus.uuid)."""
    raw = bytearray(posix.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return binascii.b2a_base64(bytes(raw), newline=False).decode("ascii")


def make_status(
    task_id: str,
    state: str,
    executor_id: str,
    message: str | None = None,
    reason: str | None = None,
) -> Json:
    """A v1 ``TaskStatus`` as the command executor sends it."""
    status: Json = {
        "task_id": {"value": task_id},
        "state": state,
        "source": "SOURCE_EXECUTOR",
        "executor_id": {"value": executor_id},
        "uuid": new_uuid(),
        "timestamp": time.time(),
    }
    if message is not None:
        status["message"] = message
    if reason is not None:
        status["reason"] = reason
    return status


def task_id_of(message: Json) -> str:
    """The ``task_id.value`` of a message (a TaskInfo, a KILL, ...); "" when missing."""
    task_id = message.get("task_id") or {}
    value = task_id.get("value") if isinstance(task_id, dict) else None
    return value if isinstance(value, str) else ""


def subscribe_call(
    framework_id: str, executor_id: str, tasks: list[Json], updates: list[Json]
) -> Json:
    """A SUBSCRIBE call carrying unacknowledged tasks and updates (``TaskStatus`` list)."""
    return {
        "type": "SUBSCRIBE",
        "framework_id": {"value": framework_id},
        "executor_id": {"value": executor_id},
        "subscribe": {
            "unacknowledged_tasks": list(tasks),
            "unacknowledged_updates": [{"status": status} for status in updates],
        },
    }


def update_call(framework_id: str, executor_id: str, status: Json) -> Json:
    """An UPDATE call carrying one ``TaskStatus``."""
    return {
        "type": "UPDATE",
        "framework_id": {"value": framework_id},
        "executor_id": {"value": executor_id},
        "update": {"status": status},
    }


def describe_wait_status(status: int) -> str:
    """Mesos' ``"Command " + WSTRINGIFY(status)`` text."""
    if posix.WIFEXITED(status):
        return f"Command exited with status {posix.WEXITSTATUS(status)}"
    if posix.WIFSIGNALED(status):
        signal = posix.WTERMSIG(status)
        try:
            name = _signal.strsignal(signal)
        except ValueError:
            name = None
        return f"Command terminated with signal {name or f'Unknown signal {signal}'}"
    return f"Command exited with wait status {status}"


def build_command(
    command: Json, environ: dict[bytes, bytes], task_id: str | None = None
) -> tuple[bytes, list[str], dict[bytes, bytes]]:
    """(executable path, argv, env) for a ``CommandInfo`` (ref section 3).

    The environment is the executor's own plus ``MESOS_TASK_ID`` plus the command's
    ``environment.variables`` (which win); the agent's executor auth token is dropped.
    """
    env = dict(environ)
    env.pop(b"MESOS_EXECUTOR_AUTHENTICATION_TOKEN", None)
    if task_id is not None:
        env[b"MESOS_TASK_ID"] = task_id.encode(FS_ENCODING, FS_ERRORS)
    variables = (command.get("environment") or {}).get("variables") or []
    for variable in variables:
        name = variable.get("name")
        if not isinstance(name, str) or not name:
            continue
        value = variable.get("value")
        if variable.get("type") == "SECRET" or (value is None and "secret" in variable):
            value = _secret_value(variable.get("secret"))
            if value is None:
                log(f"cannot resolve secret environment variable {name!r}; skipped")
                continue
        if value is None:
            value = ""
        env[name.encode(FS_ENCODING, FS_ERRORS)] = (
            value if isinstance(value, bytes) else str(value).encode(FS_ENCODING, FS_ERRORS)
        )
    if b"PATH" not in env:
        env[b"PATH"] = DEFAULT_PATH.encode()

    value = command.get("value")
    if command.get("shell", True) not in (False, "false"):
        if not isinstance(value, str) or not value:
            raise LaunchError("Shell command of task is not specified")
        return b"/bin/sh", ["sh", "-c", value], env
    if not isinstance(value, str) or not value:
        raise LaunchError("Executable of task is not specified")
    arguments = command.get("arguments") or [value]
    argv = [str(argument) for argument in arguments]
    return resolve_executable(value, env[b"PATH"].decode(FS_ENCODING, FS_ERRORS)), argv, env


def _secret_value(secret: object) -> bytes | None:
    """The bytes of a ``Secret`` of type VALUE (references cannot be resolved here)."""
    if not isinstance(secret, dict):
        return None
    data = (secret.get("value") or {}).get("data")
    if not isinstance(data, str):
        return None
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return None


def resolve_executable(name: str, search_path: str) -> bytes:
    """``execvp``-style lookup of ``name`` on the task's PATH."""
    if "/" in name:
        return name.encode(FS_ENCODING, FS_ERRORS)
    for directory in search_path.split(":"):
        candidate = f"{directory or '.'}/{name}".encode(FS_ENCODING, FS_ERRORS)
        try:
            mode = posix.stat(candidate).st_mode
        except (OSError, ValueError):
            continue
        if mode & 0o170000 != 0o040000 and posix.access(candidate, posix.X_OK):
            return candidate
    raise LaunchError(f"Failed to find executable {name!r} on PATH")


class LaunchError(Exception):
    """The task's command could not be started."""


# --------------------------------------------------------------------------------------
# HTTP connections to the agent


class Agent:
    """Where and how to reach the agent's executor API."""

    def __init__(self, endpoint: str, unix_socket: str | None, token: str | None) -> None:
        self.unix_socket = unix_socket
        self.host, self.port = parse_endpoint(endpoint) if endpoint else ("localhost", 0)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = f"{host}:{self.port}" if endpoint else "localhost"
        self.token = token

    def connect(self, timeout: float | None) -> _socket.socket:
        if self.unix_socket:
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(self.unix_socket)
            except BaseException:
                sock.close()
                raise
            return sock
        error: OSError | None = None
        # A str host makes getaddrinfo() import the "idna" codec (unicodedata, re,
        # stringprep): about 8 ms, as much as the rest of the start-up.  Bytes do not.
        host = self.host.encode("ascii") if self.host.isascii() else self.host.encode("idna")
        for family, kind, proto, _name, address in _socket.getaddrinfo(
            host, self.port, 0, _socket.SOCK_STREAM
        ):
            sock = _socket.socket(family, kind, proto)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
                sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            except BaseException:
                sock.close()
                raise
            return sock
        raise error or OSError(f"cannot resolve {self.host}")

    def request(self, body: bytes) -> bytes:
        """The bytes of ``POST /api/v1/executor`` carrying a JSON ``body``."""
        head = (
            f"POST {API_PATH} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            "Content-Type: application/json\r\n"
            "Accept: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if self.token:
            head += f"Authorization: Bearer {self.token}\r\n"
        return (head + "\r\n").encode("latin-1") + body


def read_head(sock: _socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read a response head; return status, headers and body bytes read past it."""
    buffer = b""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            status, headers = parse_response_head(buffer[:end])
            return status, headers, buffer[end + 4 :]
        if len(buffer) > 65536:
            raise ValueError("HTTP response head too large")
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("agent closed the connection")
        buffer += data


def read_body(sock: _socket.socket, status: int, headers: dict[str, str], rest: bytes) -> bytes:
    """Read a complete (non-streaming) response body."""
    if status in (204, 304) or 100 <= status < 200:
        return b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        decoder = ChunkedDecoder()
        body = decoder.feed(rest)
        while not decoder.done:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("agent closed the connection mid-body")
            body += decoder.feed(data)
        return body
    length_text = headers.get("content-length")
    if length_text is not None:
        length = int(length_text)
        body = rest
        while len(body) < length:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("agent closed the connection mid-body")
            body += data
        return body[:length]
    body = rest  # delimited by connection close
    while True:
        data = sock.recv(65536)
        if not data:
            return body
        body += data


class CallSender:
    """Synchronous POSTs of (non-SUBSCRIBE) calls over one reused keep-alive connection."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._sock: _socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def post(self, body: bytes) -> tuple[int, bytes]:
        request = self._agent.request(body)
        for _attempt in range(2):
            reused = self._sock is not None
            if self._sock is None:
                self._sock = self._agent.connect(UPDATE_TIMEOUT)
            sock = self._sock
            try:
                sock.sendall(request)
                status, headers, rest = read_head(sock)
                payload = read_body(sock, status, headers, rest)
            except (OSError, ValueError):
                self.close()
                if reused:
                    continue  # a stale keep-alive connection; retry once on a fresh one
                raise
            connection = headers.get("connection", "").lower()
            if connection == "close" or (
                "content-length" not in headers
                and "chunked" not in headers.get("transfer-encoding", "").lower()
            ):
                self.close()
            return status, payload
        raise ConnectionError("unreachable")  # pragma: no cover - loop always returns/raises


# --------------------------------------------------------------------------------------
# The executor


class Config:
    """Executor settings from the environment the agent provides (ref section 4.4)."""

    def __init__(self, environ: dict[bytes, bytes]) -> None:
        def get(name: str) -> str | None:
            value = environ.get(name.encode())
            return None if value is None else value.decode(FS_ENCODING, FS_ERRORS)

        def duration(name: str, default: float) -> float:
            text = get(name)
            if not text:
                return default
            try:
                return parse_duration(text)
            except ValueError:
                log(f"ignoring invalid {name}={text!r}")
                return default

        missing = [name for name in ("MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID") if not get(name)]
        self.domain_socket = get("MESOS_DOMAIN_SOCKET") or None
        self.endpoint = get("MESOS_AGENT_ENDPOINT") or ""
        if not self.endpoint and not self.domain_socket:
            missing.append("MESOS_AGENT_ENDPOINT")
        if missing:
            raise ValueError(f"missing environment variable(s): {', '.join(missing)}")
        self.framework_id = get("MESOS_FRAMEWORK_ID") or ""
        self.executor_id = get("MESOS_EXECUTOR_ID") or ""
        # Working directory candidates: the sandbox as the task sees it, then on the host.
        self.sandboxes = [d for d in (get("MESOS_SANDBOX"), get("MESOS_DIRECTORY")) if d]
        self.checkpoint = (get("MESOS_CHECKPOINT") or "0").strip().lower() in ("1", "true")
        self.shutdown_grace = duration(
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", DEFAULT_SHUTDOWN_GRACE
        )
        self.recovery_timeout = duration("MESOS_RECOVERY_TIMEOUT", DEFAULT_RECOVERY_TIMEOUT)
        self.backoff_max = duration("MESOS_SUBSCRIPTION_BACKOFF_MAX", DEFAULT_BACKOFF_MAX)
        self.token = get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN") or None


def _signal_noop(signum: int, frame: object) -> None:
    """Python-level handler; the C handler already wrote the signal to the wake-up pipe."""


class ExecutorBase:
    """What every executor here shares, whatever it runs; ``run()`` returns the exit code.

    One ``poll()`` loop over the signal wake-up pipe and the SUBSCRIBE event stream; the
    subscription (re-subscribing with back-off when checkpointing); event decoding and
    dispatch; UPDATE calls and the unacknowledged updates; the timers around ``poll()``.
    Subclasses run the tasks, through these hooks:

    * events: ``_on_launch``, ``_on_launch_group``, ``_on_kill``, ``_on_acknowledged``,
      ``_shutdown`` (SHUTDOWN, a termination signal, or losing a non-checkpointing agent);
    * ``_reap`` (SIGCHLD), ``_tasks_running``, ``_abandon_tasks`` (the agent is gone for
      good), ``_unacknowledged_tasks`` (for SUBSCRIBE);
    * optional: ``_catch_signals``, ``_enter_sandbox``, ``_task_deadlines`` and
      ``_on_task_timers``, ``_check_done`` (after each loop), ``_on_update_accepted``,
      ``_grace_exit_code`` and ``_cleanup``.
    """

    NAME = "executor"  # prefix of log lines

    def __init__(self, config: Config, environ: dict[bytes, bytes]) -> None:
        self.config = config
        self.environ = environ
        self.agent = Agent(config.endpoint, config.domain_socket, config.token)
        self.sender = CallSender(self.agent)
        self.poller = select.poll()
        self.wakeup_r = -1
        self.me = posix.getpid()
        # Started by the agent in a new session: everything in it is the executor's.
        self.session_leader = posix.getsid(0) == self.me
        self.exit_code: int | None = None

        # Event stream.
        self.stream: _socket.socket | None = None  # the SUBSCRIBE connection
        self.stream_fd = -1
        self.chunked: ChunkedDecoder | None = None
        self.records = RecordIODecoder()
        self.subscribed = False  # SUBSCRIBED event received on the current stream
        self.capabilities: set[str] = set()
        self.reconnect_at: float | None = None
        self.reconnect_deadline: float | None = None
        self.backoff = 0.0
        self.agent_gone = False
        self.shutting_down = False
        self.shutdown_deadline: float | None = None

        # Status updates: uuid -> status, oldest first; `pending` not yet accepted (202).
        self.unacked: dict[str, Json] = {}
        self.pending: list[str] = []
        self.retry_at: float | None = None
        self.exit_at: float | None = None

    @classmethod
    def main(cls) -> int:
        """Configure from the environment and run; the process exit code."""
        environ = dict(posix.environ)
        try:
            config = Config(environ)
        except ValueError as exc:
            log(str(exc), cls.NAME)
            return 1
        return cls(config, environ).run()

    def _log(self, message: str) -> None:
        log(message, self.NAME)

    # -- hooks -------------------------------------------------------------------------

    def _on_launch(self, launch: Json) -> None:
        """A LAUNCH event (its ``launch`` message)."""
        raise NotImplementedError

    def _on_launch_group(self, launch_group: Json) -> None:
        """A LAUNCH_GROUP event (its ``launch_group`` message)."""
        raise NotImplementedError

    def _on_kill(self, task_id: str, kill_policy: object) -> None:
        raise NotImplementedError

    def _on_acknowledged(self, task_id: str, uuid: object) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    def _reap(self) -> None:
        """Collect exited task processes (SIGCHLD, or any signal)."""
        raise NotImplementedError

    def _tasks_running(self) -> bool:
        raise NotImplementedError

    def _abandon_tasks(self) -> None:
        """The agent cannot be reached: kill the tasks at once (the executor leaves)."""
        raise NotImplementedError

    def _unacknowledged_tasks(self) -> list[Json]:
        """``TaskInfo``s to name in SUBSCRIBE: launched, no update of them acknowledged."""
        raise NotImplementedError

    def _catch_signals(self) -> None:
        """Dispositions of the signals other than SIGCHLD (that write to the pipe)."""
        for signum in SHUTDOWN_SIGNALS:
            _signal.signal(signum, _signal_noop)

    def _enter_sandbox(self) -> None:
        for sandbox in self.config.sandboxes:
            try:
                posix.chdir(sandbox)
                break
            except OSError as exc:
                self._log(f"cannot enter sandbox {sandbox!r}: {exc}")

    def _task_deadlines(self) -> tuple[float | None, ...]:
        """Timers of the tasks, for ``_on_task_timers``."""
        return ()

    def _on_task_timers(self, now: float) -> None:
        """Act on the task timers that are due."""

    def _check_done(self) -> None:
        """After each turn of the loop: set ``exit_code`` once there is no more to do."""

    def _on_update_accepted(self, uuid: str) -> None:
        """The agent took the update (HTTP 202, or inside SUBSCRIBE): only the ack is due."""

    def _grace_exit_code(self) -> int:
        """Exit code when the shutdown grace period runs out."""
        return 0

    def _cleanup(self) -> None:
        self._close_stream()
        self.sender.close()

    # -- set-up and main loop ----------------------------------------------------------

    def _setup_signals(self) -> None:
        read_fd, write_fd = posix.pipe()
        posix.set_blocking(read_fd, False)
        posix.set_blocking(write_fd, False)
        self.wakeup_r = read_fd
        _signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        _signal.signal(SIGCHLD, _signal_noop)
        self._catch_signals()
        self.poller.register(read_fd, select.POLLIN)

    def run(self) -> int:
        self._setup_signals()
        self._enter_sandbox()
        self.reconnect_deadline = time.monotonic() + (
            self.config.recovery_timeout if self.config.checkpoint else REGISTRATION_TIMEOUT
        )
        self._try_subscribe()
        while self.exit_code is None:
            timeout = self._poll_timeout(time.monotonic())
            for fd, _events in self.poller.poll(timeout):
                if fd == self.wakeup_r:
                    self._on_signals()
                elif fd == self.stream_fd and self.stream is not None:
                    self._on_stream_readable()
                if self.exit_code is not None:
                    break
            if self.exit_code is None:
                self._on_timers(time.monotonic())
            if self.exit_code is None:
                self._check_done()
        self._cleanup()
        return self.exit_code

    def _poll_timeout(self, now: float) -> int | None:
        deadline = min(
            (
                when
                for when in (
                    self.reconnect_at,
                    self.retry_at,
                    self.exit_at,
                    self.shutdown_deadline,
                    *self._task_deadlines(),
                )
                if when is not None
            ),
            default=None,
        )
        return None if deadline is None else max(0, int((deadline - now) * 1000) + 1)

    def _on_signals(self) -> None:
        try:
            data = posix.read(self.wakeup_r, 512)
        except (BlockingIOError, InterruptedError):
            data = b""
        if any(signum in SHUTDOWN_SIGNALS for signum in data) and not self.shutting_down:
            self._log("received a termination signal; shutting down")
            self.agent_gone = self.agent_gone or self.stream is None
            self._shutdown()
        self._reap()

    def _on_timers(self, now: float) -> None:
        if self.shutdown_deadline is not None and now >= self.shutdown_deadline:
            self._log("shutdown grace period elapsed; exiting")
            self.exit_code = self._grace_exit_code()
            return
        if self.exit_at is not None and now >= self.exit_at:
            self.exit_code = 0
            return
        self._on_task_timers(now)
        if self.retry_at is not None and now >= self.retry_at:
            self._flush()
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self._try_subscribe()

    # -- subscription ------------------------------------------------------------------

    def _subscribe_body(self) -> bytes:
        call = subscribe_call(
            self.config.framework_id,
            self.config.executor_id,
            self._unacknowledged_tasks(),
            list(self.unacked.values()),
        )
        return json_dumps(call).encode("ascii")

    def _try_subscribe(self) -> None:
        self.reconnect_at = None
        sock: _socket.socket | None = None
        try:
            sock = self.agent.connect(5.0)
            sock.sendall(self.agent.request(self._subscribe_body()))
            status, headers, rest = read_head(sock)
            if status != 200:
                body = read_body(sock, status, headers, rest) if status != 503 else b""
                sock.close()
                sock = None
                if status == 503:
                    raise ConnectionError("agent is recovering (503)")
                text = body.decode("utf-8", "replace").strip()
                self._log(f"SUBSCRIBE rejected with HTTP {status}: {text}")
                self._give_up(1)
                return
        except (OSError, ValueError) as exc:
            if sock is not None:
                sock.close()
            self._log(f"SUBSCRIBE failed: {exc}")
            self._schedule_reconnect()
            return
        self._on_stream_open(sock, headers, rest)

    def _on_stream_open(self, sock: _socket.socket, headers: dict[str, str], rest: bytes) -> None:
        sock.settimeout(None)
        self.stream = sock
        self.stream_fd = sock.fileno()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.chunked = ChunkedDecoder() if chunked else None
        self.records = RecordIODecoder()
        self.poller.register(self.stream_fd, select.POLLIN)
        self.backoff = 0.0
        self.reconnect_deadline = None
        # Everything unacknowledged travelled inside SUBSCRIBE: the agent owns it now.
        self.pending.clear()
        self.retry_at = None
        for uuid in list(self.unacked):
            self._on_update_accepted(uuid)
        if rest:
            self._on_stream_data(rest)

    def _schedule_reconnect(self) -> None:
        now = time.monotonic()
        if self.reconnect_deadline is None:
            self.reconnect_deadline = now + self.config.recovery_timeout
        if now >= self.reconnect_deadline:
            self._log("could not (re)subscribe with the agent in time")
            self._give_up(1)
            return
        limit = max(self.config.backoff_max, 0.01)
        self.backoff = min(max(self.backoff * 2, 0.05), limit)
        jitter = posix.urandom(1)[0] / 255.0
        self.reconnect_at = now + self.backoff * (0.5 + 0.5 * jitter)

    def _give_up(self, code: int) -> None:
        """The agent cannot be reached: kill the tasks and leave."""
        self.agent_gone = True
        self._abandon_tasks()
        self.exit_code = code

    def _close_stream(self) -> None:
        if self.stream is not None:
            try:
                self.poller.unregister(self.stream_fd)
            except (KeyError, ValueError):
                pass
            self.stream.close()
        self.stream = None
        self.stream_fd = -1
        self.subscribed = False

    def _on_stream_readable(self) -> None:
        assert self.stream is not None
        try:
            data = self.stream.recv(65536)
        except OSError as exc:
            self._log(f"event stream error: {exc}")
            data = b""
        if not data:
            self._on_disconnected()
            return
        self._on_stream_data(data)

    def _on_stream_data(self, data: bytes) -> None:
        try:
            body = self.chunked.feed(data) if self.chunked is not None else data
            records = self.records.feed(body) if body else []
        except ValueError as exc:
            self._log(f"corrupt event stream: {exc}")
            self._on_disconnected()
            return
        for record in records:
            try:
                event = json_loads(record)
            except (ValueError, UnicodeDecodeError) as exc:
                self._log(f"undecodable event: {exc}")
                continue
            if isinstance(event, dict):
                self._on_event(event)
            if self.exit_code is not None or self.stream is None:
                return
        if self.chunked is not None and self.chunked.done:
            self._on_disconnected()

    def _on_disconnected(self) -> None:
        was_subscribed = self.subscribed
        self._close_stream()
        if self.exit_code is not None:
            return
        self._log("disconnected from the agent" if was_subscribed else "event stream ended")
        running = self._tasks_running()
        if self.shutting_down and not running:
            self.exit_code = 0
            return
        if self.config.checkpoint:
            self.reconnect_deadline = time.monotonic() + self.config.recovery_timeout
            self._schedule_reconnect()
            return
        # Not checkpointing: an agent that went away will not take us back.
        self.agent_gone = True
        if running:
            self._shutdown()
        else:
            self.exit_code = 1

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Json) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            self._on_subscribed(event.get("subscribed") or {})
        elif kind == "LAUNCH":
            self._on_launch(event.get("launch") or {})
        elif kind == "LAUNCH_GROUP":
            self._on_launch_group(event.get("launch_group") or {})
        elif kind == "KILL":
            kill = event.get("kill") or {}
            self._on_kill(task_id_of(kill), kill.get("kill_policy"))
        elif kind == "ACKNOWLEDGED":
            acknowledged = event.get("acknowledged") or {}
            self._on_acknowledged(task_id_of(acknowledged), acknowledged.get("uuid"))
        elif kind == "SHUTDOWN":
            self._log("received SHUTDOWN")
            self._shutdown()
        elif kind == "ERROR":
            self._log(f"agent error: {(event.get('error') or {}).get('message')}")
        elif kind not in ("HEARTBEAT", "MESSAGE"):
            self._log(f"ignoring event {kind!r}")

    def _on_subscribed(self, subscribed: Json) -> None:
        self.subscribed = True
        framework = subscribed.get("framework_info") or {}
        self.capabilities = {
            str(capability.get("type"))
            for capability in framework.get("capabilities") or []
            if isinstance(capability, dict)
        }

    # -- status updates ----------------------------------------------------------------

    def _status(
        self, task_id: str, state: str, message: str | None = None, reason: str | None = None
    ) -> Json:
        return make_status(task_id, state, self.config.executor_id, message, reason)

    def _send_update(self, status: Json) -> None:
        uuid = status["uuid"]
        self.unacked[uuid] = status
        self.pending.append(uuid)
        self._flush()

    def _flush(self) -> None:
        """POST pending updates in order; stop at the first one that cannot be delivered."""
        self.retry_at = None
        if self.stream is None:
            return  # disconnected: they go out inside the next SUBSCRIBE
        while self.pending:
            uuid = self.pending[0]
            status = self.unacked.get(uuid)
            if status is None:
                self.pending.pop(0)
                continue
            call = update_call(self.config.framework_id, self.config.executor_id, status)
            try:
                code, body = self.sender.post(json_dumps(call).encode("ascii"))
            except (OSError, ValueError) as exc:
                self._log(f"UPDATE {status['state']} could not be delivered: {exc}")
                self.retry_at = time.monotonic() + UPDATE_RETRY
                return
            if code == 503:
                self.retry_at = time.monotonic() + UPDATE_RETRY
                return
            self.pending.pop(0)
            if not 200 <= code < 300:
                text = body.decode("utf-8", "replace").strip()
                self._log(f"UPDATE {status['state']} rejected with HTTP {code}: {text}")
                self.unacked.pop(uuid, None)
                continue
            self._on_update_accepted(uuid)


class CommandExecutor(ExecutorBase):
    """The command executor: one task, from LAUNCH, as a child process."""

    NAME = "command-executor"

    def __init__(self, config: Config, environ: dict[bytes, bytes]) -> None:
        super().__init__(config, environ)
        # The agent starts executors in a new session, so the executor leads its process
        # group and the agent destroys a container with killpg(executor pid).  The task
        # then stays in that group (nothing escapes the agent's clean-up) and the executor
        # ignores group signals.  Otherwise the task gets a group of its own.
        self.own_group = posix.getpgid(0) == self.me

        # The task.
        self.task: Json | None = None
        self.task_id: str | None = None
        self.unacked_task: Json | None = None
        self.pid: int | None = None
        self.exited = False
        self.kill_grace: float | None = None  # from the task's KillPolicy
        self.killed = False
        self.kill_started = 0.0
        self.escalate_at: float | None = None
        self.max_completion_at: float | None = None
        self.max_completion_reached = False
        self.terminal_uuid: str | None = None
        self.task_env: dict[bytes, bytes] = {}
        self.checks: checks.TaskChecks | None = None  # its health check and general check

    # -- hooks of the executor machinery ------------------------------------------------

    def _catch_signals(self) -> None:
        if self.own_group:
            for signum in GROUP_SIGNALS:
                _signal.signal(signum, _signal.SIG_IGN)
        else:
            super()._catch_signals()

    def _task_deadlines(self) -> tuple[float | None, ...]:
        checks = () if self.checks is None else self.checks.deadlines()
        return (self.escalate_at, self.max_completion_at, *checks)

    def _cleanup(self) -> None:
        self._stop_checks()
        if self._tasks_running():
            self._kill_all()
        super()._cleanup()

    def _unacknowledged_tasks(self) -> list[Json]:
        return [] if self.unacked_task is None else [self.unacked_task]

    def _tasks_running(self) -> bool:
        return self.pid is not None and not self.exited

    def _abandon_tasks(self) -> None:
        if self._tasks_running():
            self._kill(0.0)

    def _on_update_accepted(self, uuid: str) -> None:
        if uuid == self.terminal_uuid:
            self._terminal_accepted()

    # -- events ------------------------------------------------------------------------

    def _on_launch(self, launch: Json) -> None:
        task = launch.get("task")
        if isinstance(task, dict):
            self._launch(task)

    def _on_launch_group(self, launch_group: Json) -> None:
        group = launch_group.get("task_group") or {}
        for task in group.get("tasks") or []:
            self._send_update(
                self._status(
                    task_id_of(task),
                    "TASK_FAILED",
                    message="The command executor cannot run task groups",
                )
            )

    def _launch(self, task: Json) -> None:
        task_id = task_id_of(task)
        if self.task_id is not None:
            self._send_update(
                self._status(
                    task_id,
                    "TASK_FAILED",
                    message='Attempted to run multiple tasks using a "command" executor',
                )
            )
            return
        self.task = task
        self.task_id = task_id
        self.unacked_task = task
        self.kill_grace = duration_seconds((task.get("kill_policy") or {}).get("grace_period"))
        if self.shutting_down:
            self._finish("TASK_KILLED", "Task launched while the executor was shutting down")
            return
        command = task.get("command")
        try:
            if not isinstance(command, dict):
                raise LaunchError(f"Expecting task '{task_id}' to have a command")
            path, argv, env = build_command(command, self.environ, task_id)
            self.task_env = env
            if self.own_group:
                self.pid = posix.posix_spawn(path, argv, env, setsigmask=(), setsigdef=TASK_SIGDEF)
            else:
                self.pid = posix.posix_spawn(
                    path, argv, env, setpgroup=0, setsigmask=(), setsigdef=TASK_SIGDEF
                )
        except (LaunchError, OSError, ValueError, TypeError) as exc:
            log(f"failed to launch task {task_id}: {exc}")
            self._finish("TASK_FAILED", f"Failed to launch command: {exc}")
            return
        log(f"started task {task_id} as pid {self.pid}")
        max_completion = duration_seconds(task.get("max_completion_time"))
        if max_completion is not None:
            self.max_completion_at = time.monotonic() + max_completion
        self._send_update(self._status(task_id, "TASK_STARTING"))
        running = self._status(task_id, "TASK_RUNNING")
        if "health_check" in task or "check" in task:
            try:
                self.checks = load_checks().TaskChecks(
                    self, task, task_id, self.task_env, time.monotonic(), self._kill_unhealthy
                )
                running = self.checks.running_status(running)
            except (OSError, ValueError, EOFError, TypeError, SyntaxError, ImportError) as exc:
                log(f"cannot run the checks of task {task_id}: {exc}")
        self._send_update(running)
        self._reap()  # a very short command may be gone already

    def _on_kill(self, task_id: str, kill_policy: object) -> None:
        if task_id != self.task_id or self.pid is None:
            log(f"ignoring KILL of unknown task {task_id!r}")
            return
        grace = None
        if isinstance(kill_policy, dict):
            grace = duration_seconds(kill_policy.get("grace_period"))
        if grace is None:
            grace = self.kill_grace if self.kill_grace is not None else DEFAULT_KILL_GRACE
        log(f"killing task {task_id} with a grace period of {grace:g}s")
        self._kill(grace)

    def _shutdown(self) -> None:
        now = time.monotonic()
        self.shutting_down = True
        if self.shutdown_deadline is None:
            self.shutdown_deadline = now + max(self.config.shutdown_grace, 0.5)
        if self.pid is not None and not self.exited:
            self._kill(max(0.0, self.config.shutdown_grace - SHUTDOWN_BUFFER))
        elif self.terminal_uuid is None or self.terminal_uuid not in self.unacked:
            self.exit_code = 0
        else:  # the terminal update is out; give the ack a moment
            self.exit_at = min(self.exit_at or now + ACK_TIMEOUT, now + ACK_TIMEOUT)

    def _on_acknowledged(self, task_id: str, uuid: object) -> None:
        if not isinstance(uuid, str):
            return
        self.unacked.pop(uuid, None)
        if uuid in self.pending:
            self.pending.remove(uuid)
        self.unacked_task = None
        if uuid == self.terminal_uuid:
            self.exit_code = 0

    # -- the task process --------------------------------------------------------------

    def _terminate_task(self) -> None:
        """SIGTERM the task and everything it started (the executor ignores SIGTERM)."""
        if self.pid is None:
            return
        try:
            posix.killpg(0 if self.own_group else self.pid, SIGTERM)
        except OSError:
            try:
                posix.kill(self.pid, SIGTERM)
            except OSError:
                pass

    def _kill_all(self) -> None:
        """SIGKILL the task and whatever it left behind, sparing the executor.

        Its own process group when the task has one; else (and also for processes that
        moved to another group of the executor's session) every other member of the
        executor's group or session, found in /proc.
        """
        if self.pid is not None and not self.own_group:
            try:
                posix.killpg(self.pid, SIGKILL)
            except OSError:
                pass
        if not (self.own_group or self.session_leader):
            return
        me = self.me
        try:
            names = posix.listdir("/proc")
        except OSError:
            return
        for name in names:
            if not name.isdigit() or int(name) == me:
                continue
            try:
                with open(f"/proc/{name}/stat", "rb") as stat:
                    fields = stat.read().rpartition(b")")[2].split()
                if (self.own_group and int(fields[2]) == me) or (
                    self.session_leader and int(fields[3]) == me
                ):
                    posix.kill(int(name), SIGKILL)
            except (OSError, ValueError, IndexError):
                continue

    def _kill(self, grace: float) -> None:
        if self.pid is None or self.exited:
            return
        now = time.monotonic()
        if self.killed:
            # A later kill may only shorten the grace period (as in Mesos).
            escalate = self.kill_started + grace
            if self.escalate_at is not None and escalate < self.escalate_at:
                self.escalate_at = escalate
            return
        self.killed = True
        self.kill_started = now
        self._stop_checks()
        self._terminate_task()
        self.escalate_at = now + grace
        if grace <= 0:
            self._escalate()
        if "TASK_KILLING_STATE" in self.capabilities and self.task_id is not None:
            self._send_update(self._status(self.task_id, "TASK_KILLING"))

    def _escalate(self) -> None:
        self.escalate_at = None
        if self.pid is None or self.exited:
            return
        log(f"task {self.task_id} outlived its kill grace period; sending SIGKILL")
        self._kill_all()

    def _reap(self) -> None:
        if self.checks is not None:
            self.checks.reap()
        if self.pid is None or self.exited:
            return
        try:
            pid, status = posix.waitpid(self.pid, posix.WNOHANG)
        except ChildProcessError:
            pid, status = self.pid, -1
        if pid == 0:
            return
        self.exited = True
        self.escalate_at = None
        self.max_completion_at = None
        self._stop_checks()
        # Leave nothing of a killed task behind.  After a normal exit the agent's killpg
        # of the executor's group does that, unless the task has a group of its own.
        if self.killed:
            self._kill_all()
        elif not self.own_group:
            try:
                posix.killpg(self.pid, SIGKILL)
            except OSError:
                pass
        message = (
            describe_wait_status(status) if status >= 0 else "Failed to get exit status for Command"
        )
        log(f"task {self.task_id}: {message}")
        reason = None
        if self.max_completion_reached:
            state, reason = "TASK_FAILED", "REASON_MAX_COMPLETION_TIME_REACHED"
        elif self.killed:
            state = "TASK_KILLED"
        elif status == 0:
            state = "TASK_FINISHED"
        else:
            state = "TASK_FAILED"
        self._finish(state, message, reason)

    def _finish(self, state: str, message: str, reason: str | None = None) -> None:
        """Send the task's terminal update; exit once it is acknowledged."""
        assert self.task_id is not None
        if self.agent_gone:
            self.exit_code = 1
            return
        status = self._status(self.task_id, state, message, reason)
        if self.checks is not None:
            status = self.checks.terminal_status(status)
        self.terminal_uuid = status["uuid"]
        self._send_update(status)
        if self.terminal_uuid not in self.unacked:
            # Rejected outright (or already acknowledged): nothing more to wait for.
            self.exit_code = 0 if self.exit_code is None else self.exit_code
        elif self.terminal_uuid not in self.pending:
            self._terminal_accepted()

    def _terminal_accepted(self) -> None:
        now = time.monotonic()
        self.exit_at = (
            now + ACK_TIMEOUT if self.exit_at is None else min(self.exit_at, now + ACK_TIMEOUT)
        )

    def _stop_checks(self) -> None:
        if self.checks is not None:
            self.checks.stop()

    def _kill_unhealthy(self) -> None:
        self._kill(self.kill_grace if self.kill_grace is not None else DEFAULT_KILL_GRACE)

    # -- timers ------------------------------------------------------------------------

    def _on_task_timers(self, now: float) -> None:
        if self.escalate_at is not None and now >= self.escalate_at:
            self._escalate()
        if self.checks is not None:
            self.checks.on_timers(now)
        if self.max_completion_at is not None and now >= self.max_completion_at:
            self.max_completion_at = None
            if not self.exited and not self.killed:
                log(f"task {self.task_id} reached its max_completion_time")
                self.max_completion_reached = True
                grace = self.kill_grace if self.kill_grace is not None else DEFAULT_KILL_GRACE
                self._kill(grace)


_checks_module: Any = None


def load_checks() -> Any:
    """The module of the health checks and general checks (``checks.py``), on first use.

    Only tasks with checks need it, so the executor's start-up does not load it.  Imported
    as a package module, this imports ``mesos.executor.checks``; run as a script, it
    executes the file next to this one (``checks.<tag>.pyc`` beside this bytecode, which
    ``executor_argv`` writes, or ``checks.py`` beside this source) in a namespace holding
    this module's names, since an executor started with ``-S -I`` has no package to import.
    """
    global _checks_module
    if _checks_module is not None:
        return _checks_module
    if __package__:
        from . import checks as module

        _checks_module = module
        return module
    import marshal

    directory, _, name = _abspath(__file__).rpartition("/")
    if name.endswith(".pyc"):
        path = f"{directory}/{name.replace('command', 'checks', 1)}"
        with open(path, "rb") as handle:
            code = marshal.loads(handle.read()[16:])
    else:
        path = f"{directory}/checks.py"
        with open(path, "rb") as handle:
            code = compile(handle.read(), path, "exec")
    namespace = dict(globals())
    namespace.update(__name__="checks", __file__=path, __package__=None, __doc__=None)
    exec(code, namespace)
    module = type(sys)("checks")
    module.__dict__.update(namespace)
    _checks_module = module
    return module


def executor_argv(python: str | None = None, cache_dir: str | None = None) -> list[str]:
    """The argv an agent should start this executor with (for the agent, not the script).

    A script named on the command line is compiled from source on every start, which is
    most of this executor's own start-up cost (about 8-10 ms for this file, against about
    1 ms of imports); a ``.pyc`` given instead is only unmarshalled.  So this returns
    ``[python, "-S", "-I", <fresh bytecode of this file>]`` (in ``__pycache__`` or in
    ``cache_dir``), compiling it first when missing or stale, and falls back to the source
    path when no bytecode can be written or ``python`` is another interpreter.
    """
    import py_compile

    interpreter = python or sys.executable
    source = _abspath(__file__)
    argv = [interpreter, "-S", "-I"]
    if source.endswith(".pyc") or interpreter != sys.executable:
        return [*argv, source]
    try:
        cached = _fresh_bytecode(source, cache_dir)
        # Loaded by load_checks() from beside this file's bytecode, when a task has checks.
        _fresh_bytecode(f"{source.rpartition('/')[0]}/checks.py", cache_dir)
        return [*argv, cached]
    except (OSError, py_compile.PyCompileError, NotImplementedError, ValueError):
        return [*argv, source]


def _fresh_bytecode(source: str, cache_dir: str | None) -> str:
    """The path of up-to-date bytecode of ``source`` (compiled when missing or stale)."""
    import importlib.util
    import py_compile

    cached = importlib.util.cache_from_source(source)
    if cache_dir is not None:
        cached = f"{cache_dir.rstrip('/')}/{cached.rpartition('/')[2]}"
    stat = posix.stat(source)
    try:
        with open(cached, "rb") as handle:
            header = handle.read(16)
    except OSError:
        header = b""
    expected = (
        importlib.util.MAGIC_NUMBER
        + b"\0\0\0\0"
        + (int(stat.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little")
        + (stat.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    )
    if header != expected:
        py_compile.compile(
            source,
            cfile=cached,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
        )
    return cached


def _abspath(path: str) -> str:
    if path.startswith("/"):
        return path
    return f"{posix.getcwd()}/{path}"


def main() -> int:
    return CommandExecutor.main()


if __name__ == "__main__":
    sys.exit(main())
