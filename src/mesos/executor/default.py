"""Mesos' built-in default executor: runs task groups (pods) sent with LAUNCH_GROUP.

The agent starts this file as ``[sys.executable, "-S", "-I", "<abs path>/default.py"]`` for
executors of type DEFAULT (docs/dev/contracts.md section 6).  Like the command executor it
is a standalone, stdlib-only script, and it reuses that executor's HTTP, RecordIO, JSON and
status helpers (``command.py`` in this directory, imported as ``lean``).

Behaviour follows Mesos' ``src/launcher/default_executor.cpp``, with each task a local
process instead of a nested container:

* every task of a group runs its ``CommandInfo`` in its own process group, with cwd and
  ``MESOS_SANDBOX`` = ``<executor sandbox>/tasks/<task id>`` (its ``stdout``/``stderr``
  files live there); TASK_STARTING for each task, then TASK_RUNNING once launched;
* a task that exits sends TASK_FINISHED (status 0), TASK_KILLED (it was being killed) or
  TASK_FAILED, with ``"Command exited with status N"``-style messages;
* when a task ends FAILED or KILLED, the other tasks of its group are killed (Mesos'
  default policy for task groups) and end TASK_KILLED;
* KILL sends SIGTERM to the task's process group and SIGKILL after the grace period (the
  event's KillPolicy, else the task's, else 3 s); TASK_KILLING first for frameworks with
  the TASK_KILLING_STATE capability; a KILL while shutting down or while the task is
  already being killed is ignored;
* SHUTDOWN kills everything; the executor exits once every task is terminal and every
  terminal update is acknowledged, or one second after the last of them was accepted.

Tasks in their own process groups are out of reach of the agent's ``killpg(executor)``.
So that a killed executor leaves nothing behind, the first launch forks a small *guard*
process that holds the read end of a pipe only the executor writes to: the executor tells
it each task's process group, and when the pipe reports end-of-file (the executor is gone,
however it went) the guard SIGKILLs those groups and whatever else is left in the
executor's session, then exits.
"""

import _signal
import _socket
import posix
import select
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mesos.executor import command as lean

    Json = dict[str, Any]
elif __package__:  # imported as mesos.executor.default (tests, tools)
    from . import command as lean

    Json = dict
else:  # run as a script: `python -S -I .../default.py` puts nothing of ours on sys.path
    _SCRIPT = __file__ if __file__.startswith("/") else f"{posix.getcwd()}/{__file__}"
    sys.path.insert(0, _SCRIPT.rpartition("/")[0] or "/")
    import command as lean

    Json = dict

# --------------------------------------------------------------------------------------
# Constants

DEFAULT_KILL_GRACE = 3.0  # Mesos' default executor: "Default grace period is set to 3s"
ACK_TIMEOUT = lean.ACK_TIMEOUT  # exit this long after the last terminal update was accepted
SHUTDOWN_BUFFER = lean.SHUTDOWN_BUFFER
REGISTRATION_TIMEOUT = lean.REGISTRATION_TIMEOUT
UPDATE_RETRY = lean.UPDATE_RETRY
TERMINAL_STATES = frozenset(
    (
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    )
)
# Terminal states of a group member that make the default policy kill the rest.
GROUP_KILLING_STATES = frozenset(("TASK_FAILED", "TASK_KILLED"))

SIGKILL = _signal.SIGKILL
SIGTERM = _signal.SIGTERM
SIGCHLD = _signal.SIGCHLD
SHUTDOWN_SIGNALS = lean.SHUTDOWN_SIGNALS
GUARD_SWEEPS = 2  # kill rounds of the guard, GUARD_PAUSE apart (catches racing forks)
GUARD_PAUSE = 0.05


def log(message: str) -> None:
    """Write one diagnostic line to stderr (the executor sandbox's ``stderr`` file)."""
    try:
        sys.stderr.write(f"default-executor[{posix.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------------------
# Pure helpers


def task_sandbox(root: str, task_id: str) -> str:
    """``<executor sandbox>/tasks/<task id>``; ValueError for an id that names no directory."""
    if not task_id or task_id in (".", "..") or "/" in task_id or "\0" in task_id:
        raise ValueError(f"task id {task_id!r} cannot name a sandbox directory")
    return f"{root.rstrip('/')}/tasks/{task_id}"


def kill_grace(kill_policy: object, task: Json) -> float:
    """Seconds between SIGTERM and SIGKILL: the KILL event's policy, else the task's, else 3s."""
    for policy in (kill_policy, task.get("kill_policy")):
        if isinstance(policy, dict):
            grace = lean.duration_seconds(policy.get("grace_period"))
            if grace is not None:
                return grace
    return DEFAULT_KILL_GRACE


def task_state(wait_status: int, killing: bool) -> str:
    """Terminal state of a task that exited with ``wait_status`` (negative: unknown)."""
    if killing:
        return "TASK_KILLED"
    if wait_status == 0:
        return "TASK_FINISHED"
    return "TASK_FAILED"


def exit_message(wait_status: int) -> str:
    """``"Command " + WSTRINGIFY(status)``, as Mesos words a task's exit."""
    if wait_status < 0:
        return "Command terminated with unknown status"
    return lean.describe_wait_status(wait_status)


def task_command(
    command: Json, environ: dict[bytes, bytes], task_id: str, sandbox: str
) -> tuple[bytes, list[str], dict[bytes, bytes]]:
    """(executable, argv, env) of a task: the executor's environment, ``MESOS_TASK_ID``,
    the command's variables, and ``MESOS_SANDBOX`` naming the task's own sandbox."""
    path, argv, env = lean.build_command(command, environ, task_id)
    env[b"MESOS_SANDBOX"] = sandbox.encode(lean.FS_ENCODING, lean.FS_ERRORS)
    return path, argv, env


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


def guard_records(data: bytes, groups: set[int]) -> bytes:
    """Apply the guard pipe's ``+<pgid>\\n`` / ``-<pgid>\\n`` lines to ``groups``.

    Returns the trailing partial line, to be fed again with the next read.
    """
    lines = data.split(b"\n")
    for line in lines[:-1]:
        sign, number = line[:1], line[1:]
        if not number.isdigit():
            continue
        if sign == b"+":
            groups.add(int(number))
        elif sign == b"-":
            groups.discard(int(number))
    return lines[-1]


def proc_stat_ids(stat: bytes) -> tuple[bytes, int, int]:
    """(state, process group, session) from the contents of ``/proc/<pid>/stat``."""
    fields = stat.rpartition(b")")[2].split()
    return fields[0], int(fields[2]), int(fields[3])


def session_members(session: int) -> list[int]:
    """Live (non-zombie) processes of a session, from /proc."""
    members: list[int] = []
    try:
        names = posix.listdir("/proc")
    except OSError:
        return members
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                state, _group, sid = proc_stat_ids(handle.read())
        except (OSError, ValueError, IndexError):
            continue
        if sid == session and state not in (b"Z", b"X"):
            members.append(int(name))
    return members


def sweep(groups: set[int], session: int, spare: set[int]) -> None:
    """SIGKILL process groups ``groups`` and, if ``session`` > 0, every process of that
    session except ``spare``; twice, a moment apart, to catch processes forked meanwhile."""
    for round_ in range(GUARD_SWEEPS):
        if round_:
            time.sleep(GUARD_PAUSE)
        for group in groups:
            try:
                posix.killpg(group, SIGKILL)
            except OSError:
                pass
        if session > 0:
            for pid in session_members(session):
                if pid not in spare:
                    try:
                        posix.kill(pid, SIGKILL)
                    except OSError:
                        pass


def _guard_main(read_fd: int, executor_pid: int, session: int) -> None:
    """Body of the guard process (see the module docstring); returns when done."""
    _signal.set_wakeup_fd(-1)
    for signum in (SIGCHLD, *SHUTDOWN_SIGNALS):
        _signal.signal(signum, _signal.SIG_DFL)
    try:
        posix.setpgid(0, 0)  # out of the executor's group: killpg(executor) spares it
    except OSError:
        pass
    posix.closerange(3, read_fd)  # sockets, the wake-up pipe, ...
    posix.closerange(read_fd + 1, max(read_fd + 2, posix.sysconf("SC_OPEN_MAX")))
    groups: set[int] = set()
    partial = b""
    while True:
        try:
            data = posix.read(read_fd, 4096)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        partial = guard_records(partial + data, groups)
    sweep(groups, session, {posix.getpid(), executor_pid})


def _signal_noop(signum: int, frame: object) -> None:
    """Python-level handler; the C handler already wrote the signal to the wake-up pipe."""


# --------------------------------------------------------------------------------------
# The executor


class Task:
    """One task of a group and its process."""

    def __init__(self, info: Json, task_id: str, group: int) -> None:
        self.info = info
        self.task_id = task_id
        self.group = group  # index into DefaultExecutor.groups
        self.sandbox: str | None = None
        self.pid: int | None = None  # leads the task's process group
        self.exited = False  # reaped, or never started
        self.terminal = False  # its terminal update was issued
        self.terminal_uuid: str | None = None
        self.acknowledged = False  # some update of it was acknowledged
        self.killing = False
        self.kill_started = 0.0
        self.escalate_at: float | None = None

    @property
    def live(self) -> bool:
        """Whether its process still runs (launched and not yet reaped)."""
        return self.pid is not None and not self.exited


class DefaultExecutor:
    """State machine of the default executor; ``run()`` returns the process exit code."""

    def __init__(self, config: lean.Config, environ: dict[bytes, bytes]) -> None:
        self.config = config
        self.environ = environ
        self.agent = lean.Agent(config.endpoint, config.domain_socket, config.token)
        self.sender = lean.CallSender(self.agent)
        self.poller = select.poll()
        self.wakeup_r = -1
        self.me = posix.getpid()
        # Started by the agent in a new session: everything in it is ours (see the guard).
        self.session_leader = posix.getsid(0) == self.me
        self.sandbox_root = ""
        self.exit_code: int | None = None

        # Event stream.
        self.stream: _socket.socket | None = None  # the SUBSCRIBE connection
        self.stream_fd = -1
        self.chunked: lean.ChunkedDecoder | None = None
        self.records = lean.RecordIODecoder()
        self.subscribed = False
        self.capabilities: set[str] = set()
        self.reconnect_at: float | None = None
        self.reconnect_deadline: float | None = None
        self.backoff = 0.0
        self.agent_gone = False

        # Tasks, in launch order, and the task ids of each group.
        self.tasks: dict[str, Task] = {}
        self.groups: list[list[str]] = []
        self.groups_killed: set[int] = set()
        self.shutting_down = False
        self.shutdown_deadline: float | None = None

        # Status updates: uuid -> status, oldest first; `pending` not yet accepted (202).
        self.unacked: dict[str, Json] = {}
        self.pending: list[str] = []
        self.retry_at: float | None = None
        self.exit_at: float | None = None

        # The guard process and the write end of its pipe.
        self.guard_pid: int | None = None
        self.guard_fd = -1
        self.guard_failed = False

    # -- set-up and main loop ----------------------------------------------------------

    def _setup_signals(self) -> None:
        read_fd, write_fd = posix.pipe()
        posix.set_blocking(read_fd, False)
        posix.set_blocking(write_fd, False)
        self.wakeup_r = read_fd
        _signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        _signal.signal(SIGCHLD, _signal_noop)
        for signum in SHUTDOWN_SIGNALS:
            _signal.signal(signum, _signal_noop)
        self.poller.register(read_fd, select.POLLIN)

    def run(self) -> int:
        self._setup_signals()
        for sandbox in self.config.sandboxes:
            try:
                posix.chdir(sandbox)
                break
            except OSError as exc:
                log(f"cannot enter sandbox {sandbox!r}: {exc}")
        self.sandbox_root = posix.getcwd()
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
        deadlines = [
            when
            for when in (
                self.reconnect_at,
                self.retry_at,
                self.exit_at,
                self.shutdown_deadline,
                *(task.escalate_at for task in self.tasks.values()),
            )
            if when is not None
        ]
        if not deadlines:
            return None
        return max(0, int((min(deadlines) - now) * 1000) + 1)

    def _cleanup(self) -> None:
        for task in self.tasks.values():
            if task.live:
                self._kill_group(task, SIGKILL)
        self._close_stream()
        self.sender.close()
        if self.guard_fd >= 0:
            posix.close(self.guard_fd)  # the guard sweeps up and exits
            self.guard_fd = -1

    def _check_done(self) -> None:
        """Exit once no task runs and the terminal updates are through (or given up on)."""
        if not self.tasks:
            if self.shutting_down:
                self.exit_code = 1 if self.agent_gone else 0
            return
        if any(not task.terminal or task.live for task in self.tasks.values()):
            return
        if self.agent_gone:
            self.exit_code = 1
            return
        waiting = [
            task.terminal_uuid
            for task in self.tasks.values()
            if task.terminal_uuid is not None and task.terminal_uuid in self.unacked
        ]
        if not waiting:
            self.exit_code = 0
        elif self.exit_at is None and not any(uuid in self.pending for uuid in waiting):
            self.exit_at = time.monotonic() + ACK_TIMEOUT  # all accepted: give acks a moment

    # -- subscription ------------------------------------------------------------------

    def _subscribe_body(self) -> bytes:
        tasks = [
            task.info
            for task in self.tasks.values()
            if task.pid is not None and not task.terminal and not task.acknowledged
        ]
        call = subscribe_call(
            self.config.framework_id,
            self.config.executor_id,
            tasks,
            list(self.unacked.values()),
        )
        return lean.json_dumps(call).encode("ascii")

    def _try_subscribe(self) -> None:
        self.reconnect_at = None
        sock = None
        try:
            sock = self.agent.connect(5.0)
            sock.sendall(self.agent.request(self._subscribe_body()))
            status, headers, rest = lean.read_head(sock)
            if status != 200:
                body = lean.read_body(sock, status, headers, rest) if status != 503 else b""
                sock.close()
                sock = None
                if status == 503:
                    raise ConnectionError("agent is recovering (503)")
                text = body.decode("utf-8", "replace").strip()
                log(f"SUBSCRIBE rejected with HTTP {status}: {text}")
                self._give_up(1)
                return
        except (OSError, ValueError) as exc:
            if sock is not None:
                sock.close()
            log(f"SUBSCRIBE failed: {exc}")
            self._schedule_reconnect()
            return
        sock.settimeout(None)
        self.stream = sock
        self.stream_fd = sock.fileno()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.chunked = lean.ChunkedDecoder() if chunked else None
        self.records = lean.RecordIODecoder()
        self.poller.register(self.stream_fd, select.POLLIN)
        self.backoff = 0.0
        self.reconnect_deadline = None
        # Everything unacknowledged travelled inside SUBSCRIBE: the agent owns it now.
        self.pending.clear()
        self.retry_at = None
        if rest:
            self._on_stream_data(rest)

    def _schedule_reconnect(self) -> None:
        now = time.monotonic()
        if self.reconnect_deadline is None:
            self.reconnect_deadline = now + self.config.recovery_timeout
        if now >= self.reconnect_deadline:
            log("could not (re)subscribe with the agent in time")
            self._give_up(1)
            return
        limit = max(self.config.backoff_max, 0.01)
        self.backoff = min(max(self.backoff * 2, 0.05), limit)
        jitter = posix.urandom(1)[0] / 255.0
        self.reconnect_at = now + self.backoff * (0.5 + 0.5 * jitter)

    def _give_up(self, code: int) -> None:
        """The agent cannot be reached: kill every task at once and leave."""
        self.agent_gone = True
        for task in self.tasks.values():
            if task.live:
                self._kill_group(task, SIGKILL)
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
            log(f"event stream error: {exc}")
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
            log(f"corrupt event stream: {exc}")
            self._on_disconnected()
            return
        for record in records:
            try:
                event = lean.json_loads(record)
            except (ValueError, UnicodeDecodeError) as exc:
                log(f"undecodable event: {exc}")
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
        log("disconnected from the agent" if was_subscribed else "event stream ended")
        running = any(task.live for task in self.tasks.values())
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
        elif kind == "LAUNCH_GROUP":
            group = (event.get("launch_group") or {}).get("task_group") or {}
            tasks = group.get("tasks") if isinstance(group, dict) else None
            self._launch_group([t for t in tasks or [] if isinstance(t, dict)])
        elif kind == "KILL":
            kill = event.get("kill") or {}
            self._on_kill(_task_id(kill), kill.get("kill_policy"))
        elif kind == "ACKNOWLEDGED":
            acknowledged = event.get("acknowledged") or {}
            self._on_acknowledged(_task_id(acknowledged), acknowledged.get("uuid"))
        elif kind == "SHUTDOWN":
            log("received SHUTDOWN")
            self._shutdown()
        elif kind == "LAUNCH":
            # As in Mesos: a single task never goes to the default executor.
            log("LAUNCH event is not supported; shutting down")
            self._shutdown()
        elif kind == "ERROR":
            log(f"agent error: {(event.get('error') or {}).get('message')}")
        elif kind not in ("HEARTBEAT", "MESSAGE"):
            log(f"ignoring event {kind!r}")

    def _on_subscribed(self, subscribed: Json) -> None:
        self.subscribed = True
        framework = subscribed.get("framework_info") or {}
        self.capabilities = {
            str(capability.get("type"))
            for capability in framework.get("capabilities") or []
            if isinstance(capability, dict)
        }

    def _status(
        self, task: Task, state: str, message: str | None = None, reason: str | None = None
    ) -> Json:
        return lean.make_status(task.task_id, state, self.config.executor_id, message, reason)

    def _launch_group(self, infos: list[Json]) -> None:
        index = len(self.groups)
        members: list[Task] = []
        for info in infos:
            task_id = _task_id(info)
            if task_id in self.tasks:
                log(f"ignoring duplicate launch of task {task_id!r}")
                continue
            task = Task(info, task_id, index)
            self.tasks[task_id] = task
            members.append(task)
        self.groups.append([task.task_id for task in members])
        if not members:
            return
        if self.shutting_down:
            # Mesos ignores such a launch; the tasks must still end somewhere.
            for task in members:
                task.exited = True
                self._finish(
                    task, "TASK_KILLED", "Task launched while the executor was shutting down"
                )
            return
        for task in members:
            self._send_update(self._status(task, "TASK_STARTING"))
        failures: list[tuple[Task, str]] = []
        for task in members:
            try:
                self._spawn(task)
            except (lean.LaunchError, OSError, ValueError, TypeError) as exc:
                log(f"failed to launch task {task.task_id}: {exc}")
                task.exited = True
                failures.append((task, f"Failed to launch command: {exc}"))
                continue
            log(f"started task {task.task_id} as pid {task.pid}")
        for task in members:
            if task.pid is not None:
                self._send_update(self._status(task, "TASK_RUNNING"))
        for task, message in failures:
            self._finish(task, "TASK_FAILED", message)
            self._apply_group_policy(task, "TASK_FAILED")
        self._reap()  # a very short command may be gone already

    def _spawn(self, task: Task) -> None:
        """Start the task's command in its own process group, inside its own sandbox."""
        command = task.info.get("command")
        if not isinstance(command, dict):
            raise lean.LaunchError(f"Expecting task '{task.task_id}' to have a command")
        sandbox = task_sandbox(self.sandbox_root, task.task_id)
        _mkdir(sandbox.rpartition("/")[0])
        _mkdir(sandbox)
        task.sandbox = sandbox
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_APPEND
        out = posix.open(f"{sandbox}/stdout", flags, 0o644)
        try:
            err = posix.open(f"{sandbox}/stderr", flags, 0o644)
            try:
                posix.chdir(sandbox)  # the task's cwd (and relative executables' base)
                try:
                    path, argv, env = task_command(command, self.environ, task.task_id, sandbox)
                    task.pid = posix.posix_spawn(
                        path,
                        argv,
                        env,
                        file_actions=[
                            (posix.POSIX_SPAWN_OPEN, 0, "/dev/null", posix.O_RDONLY, 0),
                            (posix.POSIX_SPAWN_DUP2, out, 1),
                            (posix.POSIX_SPAWN_DUP2, err, 2),
                        ],
                        setpgroup=0,
                        setsigmask=(),
                        setsigdef=lean.TASK_SIGDEF,
                    )
                finally:
                    try:
                        posix.chdir(self.sandbox_root)
                    except OSError:
                        pass
            finally:
                posix.close(err)
        finally:
            posix.close(out)
        self._guard(b"+%d\n" % task.pid)

    def _on_kill(self, task_id: str, kill_policy: object) -> None:
        if self.shutting_down:
            log(f"ignoring kill of task {task_id!r}: the executor is shutting down")
            return
        task = self.tasks.get(task_id)
        if task is None or not task.live:
            log(f"ignoring kill of task {task_id!r}: it is not running")
            return
        if task.killing:
            log(f"ignoring kill of task {task_id!r}: it is being killed already")
            return
        grace = kill_grace(kill_policy, task.info)
        log(f"killing task {task_id} with a grace period of {grace:g}s")
        self._kill(task, grace)

    def _shutdown(self) -> None:
        if self.shutting_down:
            return
        now = time.monotonic()
        self.shutting_down = True
        self.shutdown_deadline = now + max(self.config.shutdown_grace, 0.5)
        # Kill within the agent's shutdown grace period, leaving time for the updates.
        limit = max(0.0, self.config.shutdown_grace - SHUTDOWN_BUFFER)
        for task in self.tasks.values():
            if not task.live:
                continue
            if task.killing:
                if task.escalate_at is not None:
                    task.escalate_at = min(task.escalate_at, task.kill_started + limit)
                continue
            self._kill(task, min(kill_grace(None, task.info), limit))

    def _on_acknowledged(self, task_id: str, uuid: object) -> None:
        if not isinstance(uuid, str) or uuid not in self.unacked:
            log(f"acknowledgement {uuid!r} of an unknown status update")
            return
        del self.unacked[uuid]
        if uuid in self.pending:
            self.pending.remove(uuid)
        task = self.tasks.get(task_id)
        if task is not None:
            task.acknowledged = True

    # -- task processes ----------------------------------------------------------------

    def _kill_group(self, task: Task, signum: int) -> None:
        if task.pid is None:
            return
        try:
            posix.killpg(task.pid, signum)
        except OSError:
            try:
                posix.kill(task.pid, signum)
            except OSError:
                pass

    def _kill(self, task: Task, grace: float) -> None:
        if not task.live or task.killing:
            return
        task.killing = True
        task.kill_started = time.monotonic()
        task.escalate_at = task.kill_started + grace
        if "TASK_KILLING_STATE" in self.capabilities and not self.agent_gone:
            self._send_update(self._status(task, "TASK_KILLING"))
        self._kill_group(task, SIGTERM)
        if grace <= 0:
            self._escalate(task)

    def _escalate(self, task: Task) -> None:
        task.escalate_at = None
        if task.live:
            log(f"task {task.task_id} outlived its kill grace period; sending SIGKILL")
            self._kill_group(task, SIGKILL)

    def _apply_group_policy(self, task: Task, state: str) -> None:
        """Mesos' default policy: a member ending FAILED or KILLED takes its group along."""
        if self.shutting_down or state not in GROUP_KILLING_STATES:
            return
        if task.group in self.groups_killed:
            return
        self.groups_killed.add(task.group)
        others = [self.tasks[tid] for tid in self.groups[task.group] if tid != task.task_id]
        victims = [other for other in others if other.live and not other.killing]
        if victims:
            log(f"task {task.task_id} ended {state}; killing the rest of its group")
        for other in victims:
            self._kill(other, kill_grace(None, other.info))

    def _on_signals(self) -> None:
        try:
            data = posix.read(self.wakeup_r, 512)
        except (BlockingIOError, InterruptedError):
            data = b""
        if any(signum in SHUTDOWN_SIGNALS for signum in data) and not self.shutting_down:
            log("received a termination signal; shutting down")
            self.agent_gone = self.agent_gone or self.stream is None
            self._shutdown()
        self._reap()

    def _reap(self) -> None:
        for task in list(self.tasks.values()):
            if not task.live:
                continue
            assert task.pid is not None
            try:
                pid, status = posix.waitpid(task.pid, posix.WNOHANG)
            except ChildProcessError:
                pid, status = task.pid, -1
            if pid != 0:
                self._on_exit(task, status)
        if self.guard_pid is not None:
            try:
                pid, _status = posix.waitpid(self.guard_pid, posix.WNOHANG)
            except ChildProcessError:
                pid = self.guard_pid
            if pid != 0:
                log("the guard process died; tasks may outlive a killed executor")
                self.guard_pid = None
                self.guard_failed = True
                if self.guard_fd >= 0:
                    posix.close(self.guard_fd)
                    self.guard_fd = -1

    def _on_exit(self, task: Task, status: int) -> None:
        assert task.pid is not None
        task.exited = True
        task.escalate_at = None
        # Leave nothing of the task's process group behind.
        try:
            posix.killpg(task.pid, SIGKILL)
        except OSError:
            pass
        self._guard(b"-%d\n" % task.pid)
        message = exit_message(status)
        state = task_state(status, task.killing)
        log(f"task {task.task_id} ended {state}: {message}")
        self._finish(task, state, message)
        self._apply_group_policy(task, state)

    def _finish(self, task: Task, state: str, message: str) -> None:
        """Issue the task's terminal update (none once the agent is gone)."""
        task.terminal = True
        if self.agent_gone:
            return
        status = self._status(task, state, message)
        task.terminal_uuid = status["uuid"]
        self._send_update(status)

    # -- the guard ---------------------------------------------------------------------

    def _guard(self, record: bytes) -> None:
        """Tell the guard (started on first use) about a task's process group."""
        if self.guard_fd < 0 and not self.guard_failed:
            self._start_guard()
        if self.guard_fd < 0:
            return
        try:
            posix.write(self.guard_fd, record)
        except OSError as exc:
            log(f"cannot reach the guard process: {exc}")
            posix.close(self.guard_fd)
            self.guard_fd = -1
            self.guard_failed = True

    def _start_guard(self) -> None:
        read_fd, write_fd = posix.pipe()
        try:
            pid = posix.fork()
        except OSError as exc:
            log(f"cannot start the guard process: {exc}")
            posix.close(read_fd)
            posix.close(write_fd)
            self.guard_failed = True
            return
        if pid == 0:  # the guard: never returns into the executor
            try:
                posix.close(write_fd)
                _guard_main(read_fd, self.me, self.me if self.session_leader else 0)
            finally:
                posix._exit(0)
        posix.close(read_fd)
        self.guard_pid = pid
        self.guard_fd = write_fd

    # -- status updates ----------------------------------------------------------------

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
                code, body = self.sender.post(lean.json_dumps(call).encode("ascii"))
            except (OSError, ValueError) as exc:
                log(f"UPDATE {status['state']} could not be delivered: {exc}")
                self.retry_at = time.monotonic() + UPDATE_RETRY
                return
            if code == 503:
                self.retry_at = time.monotonic() + UPDATE_RETRY
                return
            self.pending.pop(0)
            if not 200 <= code < 300:
                text = body.decode("utf-8", "replace").strip()
                log(f"UPDATE {status['state']} rejected with HTTP {code}: {text}")
                self.unacked.pop(uuid, None)

    # -- timers ------------------------------------------------------------------------

    def _on_timers(self, now: float) -> None:
        if self.shutdown_deadline is not None and now >= self.shutdown_deadline:
            log("shutdown grace period elapsed; exiting")
            self.exit_code = 1 if self.agent_gone else 0
            return
        if self.exit_at is not None and now >= self.exit_at:
            self.exit_code = 0
            return
        for task in self.tasks.values():
            if task.escalate_at is not None and now >= task.escalate_at:
                self._escalate(task)
        if self.retry_at is not None and now >= self.retry_at:
            self._flush()
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self._try_subscribe()


def _task_id(message: Json) -> str:
    task_id = message.get("task_id") or {}
    value = task_id.get("value") if isinstance(task_id, dict) else None
    return value if isinstance(value, str) else ""


def _mkdir(path: str) -> None:
    try:
        posix.mkdir(path, 0o755)
    except FileExistsError:
        pass


def main() -> int:
    environ = dict(posix.environ)
    try:
        config = lean.Config(environ)
    except ValueError as exc:
        log(str(exc))
        return 1
    return DefaultExecutor(config, environ).run()


if __name__ == "__main__":
    sys.exit(main())
