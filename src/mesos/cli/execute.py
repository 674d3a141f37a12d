"""``mesos-execute``: run one command as a task and report its state changes.

Like Mesos' own tool: subscribe as a framework, wait for an offer that fits
``--resources``, launch one task named (and identified by) ``--name``, print every
status update as it arrives, acknowledge it, and tear the framework down when the
task reaches a terminal state. Exits 0 on ``TASK_FINISHED`` and 1 otherwise.

``--master`` may name the masters' ZooKeeper group (``zk://...``): the driver then
follows the leader and re-subscribes, with the framework id, when it changes.
The final TEARDOWN is best effort and never changes the exit status: the task's
state decides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from mesos.flags import JSON, Duration, Flag, Flags, format_duration, parse_flags
from mesos.resources import Resources
from mesos.scheduler import (
    DisconnectedError,
    Scheduler,
    SchedulerDriver,
    SchedulerError,
    command_info,
    current_user,
    is_terminal,
    take,
    task_info,
)

PROG = "mesos-execute"

FLAGS = [
    Flag(
        "master",
        str,
        None,
        "Mesos master: IP:PORT, zk://host1:port1,host2:port2,.../path (the leader in\n"
        "ZooKeeper) or file:///path/to/file holding either.",
        required=True,
    ),
    Flag("name", str, None, "Name for the command; also the task id.", required=True),
    Flag("command", str, None, "Command to launch (required with --shell)."),
    Flag(
        "shell",
        bool,
        True,
        "Run the command with 'sh -c'. With --no-shell the command is split like a\n"
        "shell would and executed directly (its first word is the program).",
    ),
    Flag(
        "env",
        JSON,
        None,
        "Environment variables for the command, as a JSON object\n"
        '(i.e., {"name1": "value1"}) or a path of the form file:///path/to/file.',
    ),
    Flag("resources", str, "cpus:0.1;mem:32", "Resources for the command."),
    Flag("role", str, "*", "Role to use when registering."),
    Flag("framework_name", str, "mesos-execute instance", "Name of the framework."),
    Flag("checkpoint", bool, False, "Enable checkpointing for the framework."),
    Flag("principal", str, None, "The principal to use for framework authentication."),
    Flag("secret", str, None, "The secret to use for framework authentication.",
         secret=True),
    Flag("logging_level", str, "ERROR",
         "Level of the driver's own log lines on stderr (state changes always print)."),
    Flag(
        "kill_after",
        Duration,
        None,
        "Kill the task this long after it is running (e.g., 10secs, 2mins).",
    ),
    Flag(
        "timeout",
        Duration,
        "1mins",
        "Give up (tearing the framework down) if the task has not finished by then.",
    ),
]


log = logging.getLogger("mesos.execute")

# How a call fails when the master is away (the driver re-subscribes by itself).
_CALL_ERRORS = (SchedulerError, aiohttp.ClientError, OSError, TimeoutError)


class _Failed(Exception):
    """A condition that ends the run with one line on stderr and exit status 1."""


def _print(line: str) -> None:
    print(line, flush=True)


def _wanted_scalars(text: str) -> dict[str, float]:
    """The ``--resources`` text as scalar amounts; raises ``_Failed`` on bad input."""
    try:
        parsed = Resources.parse(text)
    except ValueError as exc:
        raise _Failed(f"Failed to parse resources '{text}': {exc}") from None
    wants: dict[str, float] = {}
    for resource in parsed.to_json():
        if resource.get("type", "SCALAR") != "SCALAR":
            raise _Failed(
                f"Only scalar resources are supported in --resources, got '{resource['name']}'"
            )
        name = str(resource["name"])
        wants[name] = wants.get(name, 0.0) + float(resource["scalar"]["value"])
    if not wants:
        raise _Failed(f"No resources requested in '{text}'")
    return wants


def _environment(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise _Failed('--env must be a JSON object of strings, e.g. {"NAME": "value"}')
    return {str(k): v for k, v in value.items()}


def _command(flags: Flags) -> dict[str, Any]:
    environment = _environment(flags.env)
    if flags.command is None:
        raise _Failed("Missing required option --command")
    if flags.shell:
        return command_info(flags.command, shell=True, environment=environment)
    try:
        argv = shlex.split(flags.command)
    except ValueError as exc:
        raise _Failed(f"Cannot split --command: {exc}") from None
    if not argv:
        raise _Failed("--command is empty")
    return command_info(argv[0], shell=False, arguments=argv, environment=environment)


def _describe_status(status: Mapping[str, Any]) -> list[str]:
    task_id = status.get("task_id", {}).get("value", "")
    lines = [f"Received status update {status.get('state')} for task '{task_id}'"]
    if "message" in status:
        lines.append(f"  message: '{status['message']}'")
    if "source" in status:
        lines.append(f"  source: {status['source']}")
    if "reason" in status:
        lines.append(f"  reason: {status['reason']}")
    if "healthy" in status:
        lines.append(f"  healthy?: {'true' if status['healthy'] else 'false'}")
    return lines


class CommandScheduler(Scheduler):
    """Launches one command task and records how it ended."""

    def __init__(
        self,
        name: str,
        wants: Mapping[str, float],
        command: Mapping[str, Any],
        kill_after: float | None = None,
    ) -> None:
        self.name = name
        self.wants = dict(wants)
        self.command = dict(command)
        self.kill_after = kill_after
        self.launched = False
        self.offers_seen = 0
        self.last_state: str | None = None
        self.error: str | None = None
        self.done = asyncio.Event()
        self._kill_timer: asyncio.TimerHandle | None = None
        self._kill_task: asyncio.Task[None] | None = None

    async def on_subscribed(self, driver: SchedulerDriver, subscribed: dict[str, Any]) -> None:
        _print(f"Subscribed with ID {driver.framework_id}")

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        self.offers_seen += len(offers)
        for offer in offers:
            carved = None if self.launched else take(offer.get("resources", []), self.wants)
            if carved is None:
                # Nothing more to launch from it: keep it away for a while.
                refuse = 3600.0 if self.launched else 1.0
                await driver.decline([offer["id"]], {"refuse_seconds": refuse})
                continue
            task = task_info(self.name, offer["agent_id"], carved[0], command=self.command)
            await driver.launch([offer["id"]], [task])
            self.launched = True
            _print(f"Submitted task '{self.name}' to agent '{offer['agent_id']['value']}'")
            await driver.suppress()

    async def on_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        # Acknowledge here, before anything else sees the update, as Mesos' tool does.
        await driver.acknowledge_update(status)
        if status.get("task_id", {}).get("value") != self.name:
            return
        for line in _describe_status(status):
            _print(line)
        state = str(status.get("state"))
        self.last_state = state
        if state == "TASK_RUNNING" and self.kill_after is not None and self._kill_timer is None:
            agent_id = status.get("agent_id")
            self._kill_timer = asyncio.get_running_loop().call_later(
                self.kill_after, self._start_kill, driver, agent_id
            )
        if is_terminal(state):
            self._finish()

    def _start_kill(self, driver: SchedulerDriver, agent_id: Any) -> None:
        self._kill_task = asyncio.create_task(self._kill(driver, agent_id))

    async def _kill(self, driver: SchedulerDriver, agent_id: Any) -> None:
        agent = (agent_id or {}).get("value", "")
        _print(f"Asked to kill task '{self.name}' on agent '{agent}'")
        with contextlib.suppress(*_CALL_ERRORS):
            await driver.kill(self.name, agent_id)

    async def on_error(self, driver: SchedulerDriver, message: str) -> None:
        self.error = f"Received an ERROR event: {message}"
        self._finish()

    def _finish(self) -> None:
        if self._kill_timer is not None:
            self._kill_timer.cancel()
        self.done.set()


async def _teardown(driver: SchedulerDriver) -> None:
    """Best effort: remove the framework (and so the task) from the master.

    Whatever goes wrong here (the master dropping the connection, a leader change)
    is logged, never raised: the exit status is the task's, as in Mesos' tool.
    """
    if driver.subscribed:
        try:
            await asyncio.wait_for(driver.teardown(), 5.0)
        except _CALL_ERRORS as exc:
            log.warning("Could not tear down framework %s: %s", driver.framework_id,
                        str(exc) or type(exc).__name__)
    await driver.stop()


async def _execute(flags: Flags, scheduler: CommandScheduler) -> int:
    framework_info: dict[str, Any] = {
        "user": current_user(),
        "name": flags.framework_name,
        "role": flags.role,
        "checkpoint": flags.checkpoint,
        "capabilities": [{"type": "TASK_KILLING_STATE"}],
    }
    credentials = None
    if flags.principal is not None:
        framework_info["principal"] = flags.principal
        if flags.secret is not None:
            credentials = (flags.principal, flags.secret)
    try:
        driver = SchedulerDriver(
            flags.master,
            framework_info,
            scheduler,
            implicit_acknowledgements=False,
            credentials=credentials,
            max_reconnects=3,
            backoff=0.25,
            connect_timeout=min(10.0, flags.timeout),
        )
    except ValueError as exc:
        raise _Failed(str(exc)) from None
    run = driver.start()
    done = asyncio.ensure_future(scheduler.done.wait())
    try:
        await asyncio.wait({run, done}, timeout=flags.timeout, return_when=asyncio.FIRST_COMPLETED)
        if run.done():
            error = run.exception()
            if isinstance(error, DisconnectedError):
                raise _Failed(f"Cannot reach master {error.master}: {error.reason}")
            if error is not None:
                raise _Failed(str(error))
        if scheduler.error is not None:
            raise _Failed(scheduler.error)
        if not done.done():
            state = scheduler.last_state or "none"
            if not scheduler.launched:
                state = "not launched"
                if scheduler.offers_seen:
                    state += f"; none of {scheduler.offers_seen} offers fit '{flags.resources}'"
            raise _Failed(
                f"Timed out after {format_duration(flags.timeout)} waiting for task "
                f"'{scheduler.name}' (last state: {state})"
            )
    finally:
        done.cancel()
        await _teardown(driver)
        if run.done() and not run.cancelled():
            run.exception()  # reported above, or irrelevant once the task ended
    return 0 if scheduler.last_state == "TASK_FINISHED" else 1


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of ``mesos-execute``; returns the exit status."""
    flags = parse_flags(
        PROG,
        FLAGS,
        list(sys.argv[1:] if argv is None else argv),
        os.environ if environ is None else environ,
    )
    level = getattr(logging, str(flags.logging_level).upper(), None)
    if not isinstance(level, int):
        print(f"{PROG}: Invalid --logging_level '{flags.logging_level}'", file=sys.stderr)
        return 1
    logging.basicConfig(level=level, format="%(asctime)s %(levelname).1s %(name)s] %(message)s")
    try:
        wants = _wanted_scalars(flags.resources)
        command = _command(flags)
        if flags.timeout <= 0:
            raise _Failed("--timeout must be positive")
        scheduler = CommandScheduler(flags.name, wants, command, flags.kill_after)
        return asyncio.run(_execute(flags, scheduler))
    except _Failed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
