"""Mesos' built-in default executor: runs task groups (pods) sent with LAUNCH_GROUP.

The agent starts this file as ``[sys.executable, "-S", "-I", "<abs path>/default.py"]`` for
executors of type DEFAULT (docs/dev/contracts.md section 6).  Like the command executor it
is a standalone, stdlib-only script, and it reuses that executor's helpers and machinery
(``command.py`` in this directory, imported as ``lean``): ``DefaultExecutor`` is an
``ExecutorBase`` (poll loop, SUBSCRIBE and events, reconnection, status updates, signals)
that runs task groups.

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
import posix
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mesos.executor import checks
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
    lean.log(message, DefaultExecutor.NAME)


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


# The calls, as the executor machinery (command.py's ExecutorBase) makes them.
subscribe_call = lean.subscribe_call
update_call = lean.update_call


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
        self.env: dict[bytes, bytes] = {}  # of its command (and of its COMMAND checks)
        self.checks: checks.TaskChecks | None = None  # its health check and general check

    @property
    def live(self) -> bool:
        """Whether its process still runs (launched and not yet reaped)."""
        return self.pid is not None and not self.exited


class DefaultExecutor(lean.ExecutorBase):
    """The default executor: task groups from LAUNCH_GROUP, each task a process group."""

    NAME = "default-executor"

    def __init__(self, config: lean.Config, environ: dict[bytes, bytes]) -> None:
        super().__init__(config, environ)
        self.sandbox_root = ""

        # Tasks, in launch order, and the task ids of each group.
        self.tasks: dict[str, Task] = {}
        self.groups: list[list[str]] = []
        self.groups_killed: set[int] = set()

        # The guard process and the write end of its pipe.
        self.guard_pid: int | None = None
        self.guard_fd = -1
        self.guard_failed = False

    # -- hooks of the executor machinery ------------------------------------------------

    def _enter_sandbox(self) -> None:
        super()._enter_sandbox()
        self.sandbox_root = posix.getcwd()

    def _task_deadlines(self) -> tuple[float | None, ...]:
        deadlines = [task.escalate_at for task in self.tasks.values()]
        for task in self.tasks.values():
            if task.checks is not None:
                deadlines += task.checks.deadlines()
        return tuple(deadlines)

    def _on_task_timers(self, now: float) -> None:
        for task in list(self.tasks.values()):
            if task.escalate_at is not None and now >= task.escalate_at:
                self._escalate(task)
            if task.checks is not None:
                task.checks.on_timers(now)

    def _grace_exit_code(self) -> int:
        return 1 if self.agent_gone else 0

    def _cleanup(self) -> None:
        self._abandon_tasks()
        super()._cleanup()
        if self.guard_fd >= 0:
            posix.close(self.guard_fd)  # the guard sweeps up and exits
            self.guard_fd = -1

    def _abandon_tasks(self) -> None:
        for task in self.tasks.values():
            if task.checks is not None:
                task.checks.stop()
            if task.live:
                self._kill_group(task, SIGKILL)

    def _tasks_running(self) -> bool:
        return any(task.live for task in self.tasks.values())

    def _unacknowledged_tasks(self) -> list[Json]:
        return [
            task.info
            for task in self.tasks.values()
            if task.pid is not None and not task.terminal and not task.acknowledged
        ]

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

    # -- events ------------------------------------------------------------------------

    def _on_launch(self, launch: Json) -> None:
        # As in Mesos: a single task never goes to the default executor.
        log("LAUNCH event is not supported; shutting down")
        self._shutdown()

    def _on_launch_group(self, launch_group: Json) -> None:
        group = launch_group.get("task_group") or {}
        tasks = group.get("tasks") if isinstance(group, dict) else None
        self._launch_group([t for t in tasks or [] if isinstance(t, dict)])

    def _launch_group(self, infos: list[Json]) -> None:
        index = len(self.groups)
        members: list[Task] = []
        for info in infos:
            task_id = lean.task_id_of(info)
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
            self._send_update(self._status(task.task_id, "TASK_STARTING"))
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
        now = time.monotonic()
        for task in members:
            if task.pid is None:
                continue
            running = self._status(task.task_id, "TASK_RUNNING")
            if "health_check" in task.info or "check" in task.info:

                def kill(task: Task = task) -> None:
                    self._kill_unhealthy(task)

                try:
                    task.checks = lean.load_checks().TaskChecks(
                        self, task.info, task.task_id, task.env, now, kill, cwd=task.sandbox
                    )
                    running = task.checks.running_status(running)
                except (OSError, ValueError, EOFError, TypeError, SyntaxError, ImportError) as exc:
                    log(f"cannot run the checks of task {task.task_id}: {exc}")
            self._send_update(running)
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
                    task.env = env
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
        if task.checks is not None:
            task.checks.stop()
        task.escalate_at = task.kill_started + grace
        if "TASK_KILLING_STATE" in self.capabilities and not self.agent_gone:
            self._send_update(self._status(task.task_id, "TASK_KILLING"))
        self._kill_group(task, SIGTERM)
        if grace <= 0:
            self._escalate(task)

    def _kill_unhealthy(self, task: Task) -> None:
        """The task failed its health check too often (its group policy follows)."""
        self._kill(task, kill_grace(None, task.info))

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

    def _reap(self) -> None:
        for task in list(self.tasks.values()):
            if task.checks is not None:
                task.checks.reap()
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
        if task.checks is not None:
            task.checks.stop()
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
        status = self._status(task.task_id, state, message)
        if task.checks is not None:
            status = task.checks.terminal_status(status)
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


def _mkdir(path: str) -> None:
    try:
        posix.mkdir(path, 0o755)
    except FileExistsError:
        pass


def main() -> int:
    return DefaultExecutor.main()


if __name__ == "__main__":
    sys.exit(main())
