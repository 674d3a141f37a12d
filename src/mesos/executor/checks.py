"""Health checks (``TaskInfo.health_check``) and general checks (``TaskInfo.check``) of the
built-in executors: pure scheduling (``HealthChecker``, ``GeneralChecker``) and the probes
of one task (``TaskChecks``), which run as child processes.

Stdlib-only, like ``command.py``, and loaded only for a task that has a check (by
``command.load_checks()``), so that the start-up of every other task does not pay for it.
Run from an executor script, this file gets ``command.py``'s names from its loader.
"""

import posix
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from mesos.executor.command import (
        FS_ENCODING,
        FS_ERRORS,
        SIGKILL,
        TASK_SIGDEF,
        ExecutorBase,
        LaunchError,
        build_command,
    )

    Json = dict[str, Any]
elif __package__:  # imported as mesos.executor.checks (tests, tools)
    from .command import (
        FS_ENCODING,
        FS_ERRORS,
        SIGKILL,
        TASK_SIGDEF,
        ExecutorBase,
        LaunchError,
        build_command,
    )

    Json = dict
# else: executed by command.load_checks() in a namespace holding command.py's names


HEALTH_REASON = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
CHECK_REASON = "REASON_TASK_CHECK_STATUS_UPDATED"
# HealthCheck / CheckInfo defaults (mesos.proto): delay 15s, interval 10s, timeout 20s;
# HealthCheck also: consecutive_failures 3, grace period 10s.
CHECK_DEFAULTS = (15.0, 10.0, 20.0)
HEALTH_DEFAULTS = (3, 10.0)
# The HTTP and TCP probes run as `python -S -I -c PROBE <kind> <port> [<path> <statuses>]`
# (Mesos runs curl / mesos-tcp-connect): exit 0 is a success; an HTTP probe also writes
# the response's status code to its stdout.  As a child process a probe never blocks the
# executor's loop, and its timeout is a plain kill.
PROBE = """
import _socket, sys
def probe(kind, port, path="/", statuses=""):
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    s.connect(("127.0.0.1", int(port)))
    if kind == "TCP":
        return True
    s.sendall(("GET " + path + " HTTP/1.1\\r\\nHost: 127.0.0.1:" + port
               + "\\r\\nUser-Agent: mesos-health-check\\r\\nConnection: close\\r\\n\\r\\n"
               ).encode("latin-1"))
    data = b""
    while b"\\r\\n" not in data:
        more = s.recv(4096)
        if not more:
            break
        data += more
    parts = data.split(b"\\r\\n", 1)[0].split()
    code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    sys.stdout.write(str(code))
    return code in ([int(c) for c in statuses.split(",") if c] or range(200, 400))
try:
    ok = probe(*sys.argv[1:])
except (OSError, ValueError, TypeError):
    ok = False
sys.exit(0 if ok else 1)
"""


def _number(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if number == number and number >= 0 else default


class Checker:
    """When to run a check (no I/O), plus the bookkeeping of the probe in flight.

    Mesos' semantics: the first check runs ``delay_seconds`` after the task started, each
    next one ``interval_seconds`` after the previous one ended; a check not done within
    ``timeout_seconds`` (0: no limit) has timed out.
    """

    def __init__(self, spec: Json, now: float) -> None:
        delay, interval, timeout = CHECK_DEFAULTS
        self.spec = spec
        self.kind = str(spec.get("type") or "")
        self.delay = _number(spec.get("delay_seconds"), delay)
        self.interval = _number(spec.get("interval_seconds"), interval)
        self.timeout = _number(spec.get("timeout_seconds"), timeout)
        self.started_at = now
        self.next_at: float | None = now + self.delay  # the next check is due
        self.timeout_at: float | None = None  # the check in flight times out
        self.stopped = False
        self.pid: int | None = None  # the probe in flight
        self.out_fd = -1  # its stdout (HTTP probes), read once it exited

    def deadline(self) -> float | None:
        return self.timeout_at if self.timeout_at is not None else self.next_at

    def due(self, now: float) -> bool:
        return self.next_at is not None and self.timeout_at is None and now >= self.next_at

    def timed_out(self, now: float) -> bool:
        return self.timeout_at is not None and now >= self.timeout_at

    def start(self, now: float) -> None:
        self.next_at = None
        self.timeout_at = now + (self.timeout if self.timeout > 0 else float("inf"))

    def stop(self) -> None:
        self.stopped = True
        self.next_at = self.timeout_at = None

    def _done(self, now: float) -> bool:
        """A check ended: schedule the next one; False once stopped."""
        self.timeout_at = None
        if self.stopped:
            return False
        self.next_at = now + self.interval
        return True


class HealthChecker(Checker):
    """A ``HealthCheck``: failures within ``grace_period_seconds`` of the start are ignored
    until the first success; after that ``consecutive_failures`` failures in a row mean the
    task must be killed.  ``result`` says when the task's health changed."""

    def __init__(self, spec: Json, now: float) -> None:
        super().__init__(spec, now)
        failures, grace = HEALTH_DEFAULTS
        self.max_failures = max(1, int(_number(spec.get("consecutive_failures"), failures)))
        self.grace = _number(spec.get("grace_period_seconds"), grace)
        self.initializing = True  # no success yet
        self.failures = 0  # consecutive failures that counted
        self.healthy: bool | None = None  # last reported health

    def result(self, ok: bool, now: float) -> tuple[bool | None, bool]:
        """Record a check's outcome: (health to report or None, whether to kill the task)."""
        if not self._done(now):
            return None, False
        if ok:
            self.initializing = False
            self.failures = 0
            report = None if self.healthy is True else True
            self.healthy = True
            return report, False
        if self.initializing and now - self.started_at <= self.grace:
            return None, False  # still in the grace period
        self.failures += 1
        report = None if self.healthy is False else False
        self.healthy = False
        kill = self.failures >= self.max_failures
        if kill:
            self.stop()
        return report, kill


class GeneralChecker(Checker):
    """A ``CheckInfo``: its ``CheckStatusInfo`` is reported whenever it changes."""

    def __init__(self, spec: Json, now: float) -> None:
        super().__init__(spec, now)
        self.status = self.empty_status()

    def empty_status(self) -> Json:
        """The status before the first result (and after a timeout): type, no value."""
        return {"type": self.kind, self.kind.lower(): {}}

    def result(self, value: object, now: float) -> Json | None:
        """Record a check's value (exit code, status code, connected; None: timed out).

        The new ``CheckStatusInfo`` when it differs from the last one, else None.
        """
        if not self._done(now):
            return None
        status = self.empty_status()
        if value is not None:
            field = {"COMMAND": "exit_code", "HTTP": "status_code", "TCP": "succeeded"}
            status[self.kind.lower()][field.get(self.kind, "value")] = value
        if status == self.status:
            return None
        self.status = status
        return status


def check_probe(
    spec: Json, task_env: dict[bytes, bytes], general: bool = False
) -> tuple[bytes, list[str], dict[bytes, bytes]]:
    """(path, argv, env) of the process that runs one check of a ``HealthCheck`` (or, with
    ``general``, of a ``CheckInfo``, whose command sits in ``command.command``)."""
    kind = spec.get("type")
    if kind == "COMMAND":
        command = spec.get("command")
        if general and isinstance(command, dict):
            command = command.get("command")
        if not isinstance(command, dict):
            raise LaunchError("COMMAND check without a command")
        return build_command(command, task_env)
    if kind not in ("HTTP", "TCP"):
        raise LaunchError(f"unsupported check type {kind!r}")
    details = spec.get("http" if kind == "HTTP" else "tcp")
    if not isinstance(details, dict) or details.get("port") is None:
        raise LaunchError(f"{kind} check without a port")
    port = str(int(details["port"]))
    argv = [sys.executable, "-S", "-I", "-c", PROBE, kind, port]
    if kind == "HTTP":
        path = str(details.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        statuses = ",".join(str(int(code)) for code in details.get("statuses") or [])
        argv += [path, statuses]
    return sys.executable.encode(FS_ENCODING, FS_ERRORS), argv, task_env


class TaskChecks:
    """The health check and general check of one task: their probes (child processes,
    each in a process group of its own) started on the executor's timers, reaped on
    SIGCHLD, killed on timeout, and their results sent as TASK_RUNNING updates.  After
    too many failed health checks, ``kill`` is called (once)."""

    def __init__(
        self,
        executor: "ExecutorBase",
        task: Json,
        task_id: str,
        env: dict[bytes, bytes],
        now: float,
        kill: "Callable[[], None]",
        cwd: str | None = None,
    ) -> None:
        self.executor = executor
        self.task_id = task_id
        self.env = env
        self.cwd = cwd  # where the probes run (else the executor's cwd)
        self.kill = kill
        self.checkers: list[Checker] = []
        self.general: GeneralChecker | None = None
        self.zombies: list[int] = []  # killed (timed out) probes not yet reaped
        self.unhealthy = False  # killed for failing its health check
        if isinstance(task.get("health_check"), dict):
            self.checkers.append(HealthChecker(task["health_check"], now))
        if isinstance(task.get("check"), dict):
            self.general = GeneralChecker(task["check"], now)
            self.checkers.append(self.general)

    def running_status(self, status: Json) -> Json:
        """The first TASK_RUNNING: with a general check, its type and no result yet."""
        if self.general is not None:
            status["check_status"] = self.general.status
        return status

    def deadlines(self) -> list[float | None]:
        return [checker.deadline() for checker in self.checkers]

    def on_timers(self, now: float) -> None:
        for checker in self.checkers:
            if checker.timed_out(now) and checker.pid is not None:
                self.executor._log(f"{checker.kind} check of task {self.task_id} timed out")
                self._drop_probe(checker)
                self._result(checker, None, b"", now)
            if checker.due(now):
                self._start_probe(checker, now)

    def _start_probe(self, checker: Checker, now: float) -> None:
        checker.start(now)
        general = isinstance(checker, GeneralChecker)
        write_fd = -1
        try:
            path, argv, env = check_probe(checker.spec, self.env, general)
            actions = []
            if checker.kind == "HTTP":  # its stdout: the status code
                checker.out_fd, write_fd = posix.pipe()
                posix.set_blocking(checker.out_fd, False)
                actions.append((posix.POSIX_SPAWN_DUP2, write_fd, 1))
            back = posix.getcwd() if self.cwd else None
            if self.cwd:
                posix.chdir(self.cwd)
            try:
                checker.pid = posix.posix_spawn(
                    path,
                    argv,
                    env,
                    file_actions=actions,
                    setpgroup=0,
                    setsigmask=(),
                    setsigdef=TASK_SIGDEF,
                )
            finally:
                if back is not None:
                    posix.chdir(back)
        except (LaunchError, OSError, ValueError, TypeError) as exc:
            self.executor._log(f"{checker.kind} check of task {self.task_id} cannot run: {exc}")
            self._close_output(checker)
            self._result(checker, None, b"", now)
        finally:
            if write_fd >= 0:
                posix.close(write_fd)

    def reap(self) -> None:
        for zombie in list(self.zombies):
            try:
                done = posix.waitpid(zombie, posix.WNOHANG)[0] != 0
            except ChildProcessError:
                done = True
            if done:
                self.zombies.remove(zombie)
        for checker in self.checkers:
            if checker.pid is None:
                continue
            try:
                pid, status = posix.waitpid(checker.pid, posix.WNOHANG)
            except ChildProcessError:
                pid, status = checker.pid, -1
            if pid == 0:
                continue
            checker.pid = None
            output = b""
            if checker.out_fd >= 0:
                try:
                    output = posix.read(checker.out_fd, 64) or b""
                except OSError:
                    pass
                self._close_output(checker)
            self._result(checker, status, output, time.monotonic())

    def _result(self, checker: Checker, wait_status: int | None, output: bytes, now: float) -> None:
        """A probe ended (``wait_status`` None: it timed out or could not run)."""
        executor = self.executor
        if isinstance(checker, HealthChecker):
            report, kill = checker.result(wait_status == 0, now)
            if report is not None:
                executor._log(f"task {self.task_id} is {'healthy' if report else 'unhealthy'}")
                status = executor._status(self.task_id, "TASK_RUNNING", reason=HEALTH_REASON)
                status["healthy"] = report
                executor._send_update(status)
            if kill:
                executor._log(
                    f"task {self.task_id} failed its health check {checker.failures} times"
                    " in a row; killing it"
                )
                self.unhealthy = True
                self.kill()
            return
        assert isinstance(checker, GeneralChecker)
        value: object = None
        if wait_status is not None and wait_status >= 0:
            if checker.kind == "COMMAND" and posix.WIFEXITED(wait_status):
                value = posix.WEXITSTATUS(wait_status)
            elif checker.kind == "HTTP" and output.strip().isdigit() and int(output) > 0:
                value = int(output)
            elif checker.kind == "TCP":
                value = wait_status == 0
        check_status = checker.result(value, now)
        if check_status is not None:
            status = executor._status(self.task_id, "TASK_RUNNING", reason=CHECK_REASON)
            status["check_status"] = check_status
            executor._send_update(status)

    def _close_output(self, checker: Checker) -> None:
        if checker.out_fd >= 0:
            try:
                posix.close(checker.out_fd)
            except OSError:
                pass
            checker.out_fd = -1

    def _drop_probe(self, checker: Checker) -> None:
        """Kill the probe in flight (its own process group); it is reaped later."""
        self._close_output(checker)
        if checker.pid is None:
            return
        try:
            posix.killpg(checker.pid, SIGKILL)
        except OSError:
            pass
        self.zombies.append(checker.pid)
        checker.pid = None

    def stop(self) -> None:
        """The task ends: no more checks, none in flight."""
        for checker in self.checkers:
            checker.stop()
            self._drop_probe(checker)

    def terminal_status(self, status: Json) -> Json:
        """As Mesos: a task killed for failing its health check ends with healthy=false."""
        if self.unhealthy:
            status["healthy"] = False
            detail = status.get("message") or ""
            status["message"] = f"Task was killed after failing its health check: {detail}"
        return status
