"""End-to-end task-launch throughput, the number to compare with Slurm's (~50 jobs/s).

Launches N trivial tasks (``true`` by default) through the v1 Scheduler API as fast
as offers allow, packing as many tasks into each offer as fit, and measures:

* throughput: tasks finished per second, from the first ACCEPT sent to the last
  TASK_FINISHED received (the analogue of Slurm's first sbatch -> last completion);
* launch latency per task: ACCEPT sent -> TASK_RUNNING received (p50/p99), and
  ACCEPT -> TASK_FINISHED.

Against a running cluster::

    .venv/bin/python benchmarks/launch_throughput.py --master=127.0.0.1:5050 -n 500

Or let it start (and afterwards stop, by PID) a local cluster of its own::

    .venv/bin/python benchmarks/launch_throughput.py --local -n 500 [--agents 2] [--json]

``--agent-flag=--isolation=cgroups/cpu,cgroups/mem`` (repeatable) sets a flag of
the local cluster's agents (as ``MESOS_<NAME>`` in their environment: mesos-local
does not pass agent flags on). A local cluster's agents get a ``--cgroups_root`` of
their own (``mesos-bench-<pid>``, removed afterwards) unless one is given, so the
run never touches another agent's containers.

The run is bounded by ``--timeout``; the exit status is 0 only when every task
finished.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesos.scheduler import (
    Scheduler,
    SchedulerDriver,
    SchedulerError,
    command_info,
    fit_tasks,
    is_terminal,
    task_info,
)

# --------------------------------------------------------------------------- measuring


@dataclass
class TaskTimes:
    accepted: float
    running: float | None = None
    terminal: float | None = None
    state: str | None = None


@dataclass
class Result:
    tasks: int
    finished: int
    failed: int
    elapsed_s: float | None
    tasks_per_s: float | None
    latency_running_ms: dict[str, float]
    latency_finished_ms: dict[str, float]
    accepts: int
    first_offer_s: float | None
    timed_out: bool
    error: str | None
    failed_states: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.finished == self.tasks and not self.timed_out and self.error is None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ms = [s * 1000 for s in samples]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(max(ms), 2),
    }


class LaunchBench(Scheduler):
    """Launches ``count`` tasks as offers allow and timestamps their updates."""

    def __init__(
        self, count: int, wants: dict[str, float], command: str, max_in_flight: int = 0
    ) -> None:
        self.count = count
        self.max_in_flight = max_in_flight
        self.wants = wants
        self.command = command_info(command)
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.launched = 0
        self.accepts = 0
        self.times: dict[str, TaskTimes] = {}
        self.start = time.perf_counter()
        self.first_offer: float | None = None
        self.first_accept: float | None = None
        self.terminal = 0
        self.error: str | None = None
        self.done = asyncio.Event()
        self._suppressed = False
        self._acks: set[asyncio.Task[None]] = set()

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        if self.first_offer is None:
            self.first_offer = time.perf_counter()
        sends = []
        for offer in offers:
            room = self.count - self.launched
            if self.max_in_flight:
                room = min(room, self.max_in_flight - (self.launched - self.terminal))
            if room <= 0 and self.launched < self.count:
                # At the in-flight cap: hand the offer back for the next allocation.
                sends.append(driver.decline([offer["id"]], {"refuse_seconds": 0.0}))
                continue
            pieces = fit_tasks(offer.get("resources", []), self.wants, max(room, 0))
            if not pieces:
                # Too small (a filter only hides offers it contains) or nothing left to launch.
                sends.append(driver.decline([offer["id"]], {"refuse_seconds": 3600.0}))
                continue
            tasks = []
            for resources in pieces:
                name = f"{self.prefix}-{self.launched:06d}"
                self.launched += 1
                tasks.append(task_info(name, offer["agent_id"], resources, command=self.command))
            sends.append(self._launch(driver, offer["id"], tasks))
        await asyncio.gather(*sends)
        if self.launched >= self.count and not self._suppressed:
            self._suppressed = True
            await driver.suppress()

    async def _launch(
        self, driver: SchedulerDriver, offer_id: dict[str, Any], tasks: list[dict[str, Any]]
    ) -> None:
        now = time.perf_counter()
        if self.first_accept is None:
            self.first_accept = now
        for task in tasks:
            self.times[task["task_id"]["value"]] = TaskTimes(accepted=now)
        self.accepts += 1
        # Leftover resources come back in the next allocation: no decline filter.
        await driver.launch([offer_id], tasks, {"refuse_seconds": 0.0})

    async def on_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        now = time.perf_counter()
        if status.get("uuid"):
            ack = asyncio.create_task(driver.acknowledge_update(status))
            self._acks.add(ack)
            ack.add_done_callback(self._acks.discard)
        times = self.times.get(status.get("task_id", {}).get("value", ""))
        if times is None or times.terminal is not None:
            return
        state = str(status.get("state"))
        if state == "TASK_RUNNING" and times.running is None:
            times.running = now
        if is_terminal(state):
            times.terminal = now
            times.state = state
            self.terminal += 1
            if self.terminal >= self.count:
                self.done.set()

    async def on_error(self, driver: SchedulerDriver, message: str) -> None:
        self.error = f"master sent ERROR: {message}"
        self.done.set()

    def progress(self) -> str:
        finished = sum(1 for t in self.times.values() if t.state == "TASK_FINISHED")
        running = sum(1 for t in self.times.values() if t.running and t.terminal is None)
        rate = ""
        if self.first_accept is not None and finished:
            rate = f", {finished / (time.perf_counter() - self.first_accept):.1f} tasks/s"
        return (
            f"launched {self.launched}/{self.count}, running {running}, "
            f"finished {finished}, failed {self.terminal - finished}{rate}"
        )

    def result(self, timed_out: bool) -> Result:
        done = [t for t in self.times.values() if t.state == "TASK_FINISHED"]
        failed_states: dict[str, int] = {}
        for t in self.times.values():
            if t.state is not None and t.state != "TASK_FINISHED":
                failed_states[t.state] = failed_states.get(t.state, 0) + 1
        elapsed = None
        rate = None
        if done and self.first_accept is not None:
            last = max(t.terminal for t in done if t.terminal is not None)
            elapsed = last - self.first_accept
            rate = len(done) / elapsed if elapsed > 0 else None
        return Result(
            tasks=self.count,
            finished=len(done),
            failed=sum(failed_states.values()),
            elapsed_s=None if elapsed is None else round(elapsed, 4),
            tasks_per_s=None if rate is None else round(rate, 2),
            latency_running_ms=summarize(
                [t.running - t.accepted for t in self.times.values() if t.running is not None]
            ),
            latency_finished_ms=summarize(
                [t.terminal - t.accepted for t in done if t.terminal is not None]
            ),
            accepts=self.accepts,
            first_offer_s=None
            if self.first_offer is None
            else round(self.first_offer - self.start, 4),
            timed_out=timed_out,
            error=self.error,
            failed_states=failed_states,
        )


async def _report_progress(bench: LaunchBench, interval: float) -> None:
    tty = sys.stderr.isatty()
    while True:
        await asyncio.sleep(interval if tty else max(interval, 2.0))
        line = bench.progress()
        if tty:
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


async def run_benchmark(
    master: str,
    count: int,
    wants: dict[str, float],
    command: str = "true",
    timeout: float = 120.0,
    progress: float | None = 0.5,
    max_in_flight: int = 0,
) -> Result:
    """Launch ``count`` tasks on the cluster at ``master`` and measure them."""
    bench = LaunchBench(count, wants, command, max_in_flight)
    framework = {"name": "launch-throughput benchmark", "failover_timeout": 0.0}
    driver = SchedulerDriver(
        master, framework, bench, implicit_acknowledgements=False, max_reconnects=3
    )
    reporter = asyncio.create_task(_report_progress(bench, progress)) if progress else None
    run = driver.start()
    finished = asyncio.ensure_future(bench.done.wait())
    timed_out = False
    try:
        await asyncio.wait({run, finished}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if run.done() and run.exception() is not None:
            bench.error = f"driver stopped: {run.exception()}"
        elif not finished.done():
            timed_out = True
    finally:
        finished.cancel()
        if reporter is not None:
            reporter.cancel()
            if sys.stderr.isatty():
                print(f"\r\033[K{bench.progress()}", file=sys.stderr, flush=True)
        if driver.subscribed:
            with contextlib.suppress(SchedulerError, OSError, TimeoutError):
                await asyncio.wait_for(driver.teardown(), 10)
        await driver.stop()
    return bench.result(timed_out)


# --------------------------------------------------------------------------- local cluster


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


def _mesos_local_command() -> list[str]:
    script = Path(sys.executable).with_name("mesos-local")
    if script.exists():
        return [str(script)]
    found = shutil.which("mesos-local")
    if found:
        return [found]
    return [sys.executable, "-m", "mesos.cli.local"]


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def agent_environment(agent_flags: Sequence[str]) -> dict[str, str]:
    """``MESOS_<NAME>=value`` for each ``--name=value`` (a bare ``--name`` is true)."""
    env: dict[str, str] = {}
    for flag in agent_flags:
        name, sep, value = flag.removeprefix("--").partition("=")
        if not name or not flag.startswith("--"):
            raise ValueError(f"--agent-flag wants '--name=value', not {flag!r}")
        env[f"MESOS_{name.upper()}"] = value if sep else "true"
    env.setdefault("MESOS_CGROUPS_ROOT", f"mesos-bench-{os.getpid()}")
    return env


def _remove_cgroups_root(root: str) -> None:
    """Remove the (by now empty) cgroups the local agents made under ``root``."""
    if os.geteuid() != 0:
        return
    from mesos.agent.containerizer import CgroupsError, open_cgroups

    with contextlib.suppress(CgroupsError, OSError):
        asyncio.run(open_cgroups(root).remove_root())


@contextlib.contextmanager
def local_cluster(
    agents: int, extra: Sequence[str], keep: bool, start_timeout: float = 60.0,
    agent_flags: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``mesos-local`` with ``agents`` agents; yield its master; stop it by PID."""
    agent_env = agent_environment(agent_flags)
    work_dir = Path(tempfile.mkdtemp(prefix="mesos-bench-"))
    port = _free_port()
    log_path = work_dir / "mesos-local.log"
    argv = [
        *_mesos_local_command(),
        f"--num_agents={agents}",
        f"--port={port}",
        f"--work_dir={work_dir}",
        *extra,
    ]
    shown = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(agent_env.items()))
    print(f"starting: {shown} {shlex.join(argv)}", file=sys.stderr, flush=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **agent_env})
    master = f"127.0.0.1:{port}"
    ok = False
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mesos-local exited with status {proc.returncode}:\n{_log_tail(log_path)}"
                )
            try:
                if len(_get_json(f"http://{master}/master/slaves")["slaves"]) >= agents:
                    break
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"local cluster not up after {start_timeout:g}s:\n{_log_tail(log_path)}"
                )
            time.sleep(0.1)
        yield master
        ok = True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        _remove_cgroups_root(agent_env["MESOS_CGROUPS_ROOT"])
        if ok and not keep:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            print(f"local cluster files kept in {work_dir}", file=sys.stderr)


# --------------------------------------------------------------------------- reporting


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    with contextlib.suppress(OSError):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def count_agents(master: str) -> int | None:
    try:
        return len(_get_json(f"http://{master}/master/slaves")["slaves"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _ms(summary: dict[str, float]) -> str:
    if not summary.get("n"):
        return "n/a"
    return f"p50 {summary['p50']:.1f} ms, p99 {summary['p99']:.1f} ms (max {summary['max']:.1f}, n={summary['n']:g})"


def print_text(result: Result, report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(
        f"launch throughput: {result.tasks} tasks (command {cfg['command']!r}, "
        f"cpus {cfg['cpus']:g}, mem {cfg['mem']:g}"
        f"{', max in flight ' + str(cfg['max_in_flight']) if cfg['max_in_flight'] else ''}) "
        f"on {report['agents'] or '?'} agent(s) "
        f"at {report['master']}{' (local)' if report['local'] else ''}"
    )
    if result.tasks_per_s is not None:
        print(
            f"  finished {result.finished}/{result.tasks} in {result.elapsed_s:.2f} s = "
            f"{result.tasks_per_s:.2f} tasks/s (first ACCEPT to last TASK_FINISHED)"
        )
    else:
        print(f"  finished {result.finished}/{result.tasks}")
    print(f"  launch latency ACCEPT -> TASK_RUNNING:  {_ms(result.latency_running_ms)}")
    print(f"  ACCEPT -> TASK_FINISHED:                {_ms(result.latency_finished_ms)}")
    first = "n/a" if result.first_offer_s is None else f"{result.first_offer_s:.2f} s"
    print(f"  accepts: {result.accepts}, first offer after {first}")
    if result.failed:
        print(f"  FAILED: {result.failed} tasks {result.failed_states}")
    if result.timed_out:
        print(f"  TIMED OUT after {cfg['timeout']:g} s")
    if result.error:
        print(f"  ERROR: {result.error}")
    m = report["machine"]
    print(
        f"machine: {m['host']}, {m['platform']}, {m['cpus']} cpus"
        f"{', ' + m['cpu_model'] if 'cpu_model' in m else ''}"
        f"{', ' + str(m['mem_gib']) + ' GiB' if 'mem_gib' in m else ''}, "
        f"python {m['python']}, load before {m.get('loadavg')}"
    )
    print(f"command: {report['command_line']}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure end-to-end task launch throughput and latency."
    )
    parser.add_argument("--master", default="127.0.0.1:5050", help="master host:port")
    parser.add_argument(
        "--local", action="store_true", help="start a mesos-local cluster for the run"
    )
    parser.add_argument("--agents", type=int, default=2, help="agents for --local (default 2)")
    parser.add_argument(
        "--local-arg",
        action="append",
        default=[],
        metavar="FLAG",
        help="extra flag for mesos-local, e.g. --local-arg=--allocation_interval=100ms",
    )
    parser.add_argument(
        "--agent-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="flag for the --local cluster's agents, e.g. "
        "--agent-flag=--isolation=cgroups/cpu,cgroups/mem (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the --local work dir")
    parser.add_argument("-n", "--tasks", type=int, default=100, help="tasks to launch")
    parser.add_argument("--cpus", type=float, default=0.05, help="cpus per task")
    parser.add_argument("--mem", type=float, default=16.0, help="mem (MB) per task")
    parser.add_argument("--command", default="true", help="shell command of each task")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=0,
        metavar="K",
        help="launch at most K tasks not yet terminal at a time (default 0: as offers allow)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the run")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.cpus <= 0 or args.mem <= 0 or args.timeout <= 0:
        parser.error("--tasks, --cpus, --mem and --timeout must be positive")
    if args.max_in_flight < 0:
        parser.error("--max-in-flight must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    machine = machine_info()
    wants = {"cpus": args.cpus, "mem": args.mem}
    progress = None if args.quiet else 0.5

    def measure(master: str) -> tuple[Result, int | None]:
        agents = count_agents(master)
        result = asyncio.run(
            run_benchmark(
                master,
                args.tasks,
                wants,
                args.command,
                args.timeout,
                progress,
                args.max_in_flight,
            )
        )
        return result, agents

    try:
        if args.local:
            with local_cluster(args.agents, args.local_arg, args.keep,
                               agent_flags=args.agent_flag) as master:
                result, agents = measure(master)
        else:
            master = args.master
            result, agents = measure(master)
    except (RuntimeError, ValueError) as exc:
        print(f"launch_throughput: {exc}", file=sys.stderr)
        return 2
    report: dict[str, Any] = {
        "benchmark": "launch_throughput",
        "master": master,
        "local": args.local,
        "agents": agents,
        "config": {
            "tasks": args.tasks,
            "cpus": args.cpus,
            "mem": args.mem,
            "command": args.command,
            "max_in_flight": args.max_in_flight,
            "timeout": args.timeout,
            "local_args": args.local_arg,
            "agent_flags": args.agent_flag,
        },
        "result": dict(vars(result)),
        "machine": machine,
        "command_line": shlex.join([sys.executable, sys.argv[0], *argv]),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_text(result, report)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
