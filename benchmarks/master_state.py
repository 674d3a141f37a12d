"""``/master/state`` and GET_STATE with 10,000 agents and 100,000 tasks (issue 7).

A real ``mesos-master`` (in-memory registry) and ``--agents`` simulated agents
(:class:`mesos.testing.simagent.SimAgent`: the agent's own master link and SUBSCRIBE,
nothing else), spread over ``--procs`` worker processes so that no single event loop
carries all of their connections. Every agent reports ``--tasks`` running tasks of
``--frameworks`` frameworks when it subscribes, as an agent does when it re-registers
with a new master: the master adopts the tasks and keeps the frameworks as recovered
ones (the shape a master has after a failover until the schedulers come back).

Once the master says every agent is active and every task running, it measures,
client-side:

* ``GET /master/state``: time to the last byte and the body's size, ``--rounds`` times
  (the first is the first call the master answers after the agents re-registered:
  ``--settle`` seconds after the last task was reported);
* ``POST /api/v1`` ``GET_STATE`` (JSON), the same;
* the event loop's stall: from a second connection, ``GET /health`` (and, apart,
  ``GET /metrics/snapshot``) every 10 ms, first with nothing else going on, then while
  one ``/master/state`` (or GET_STATE) is being built and sent; the longest answer
  seen during the build is how long the loop could not answer anything else.

    .venv/bin/python benchmarks/master_state.py [--agents 10000] [--tasks 10] \\
        [--frameworks 5] [--procs 4] [--rounds 5] [--json]

The master runs with ``--agent_ping_timeout=10mins`` so that 10,000 PONGs every 15 s do
not add to what is measured (nor hold 10,000 more sockets open in the master). Every
process it starts is stopped by its PID at the end. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from mesos.resources import Resources
from mesos.testing.cluster import Daemon, free_port
from mesos.testing.simagent import DEFAULT_RESOURCES, SimAgent
from mesos.v1 import codec
from mesos.v1 import mesos as v1

BIN = Path(sys.executable).parent
PROBE_EVERY = 0.01  # seconds between two probes of a cheap endpoint

# ``--registry-copy=shallow``: the master as installed, but with ``Registry.copy`` (run
# by the registrar for every admitted agent: a JSON round trip of the whole registry,
# so admitting N agents costs O(N^2)) replaced by a copy of the registry's containers
# that shares the records (the operations replace records, they do not edit them).
# Without it 10,000 agents take about half an hour to register on 2 cores; what the
# benchmark measures (the state endpoints) does not touch the registry.
# ``--liveness-poll=S`` sets ``mesos.http.streaming``'s poll interval in the master too.
# ``--gc-log`` has the master write every full (generation 2) garbage collection that
# took over 20 ms to its log, with when it ended; the report lists those that fell in
# the measurements.
PATCHED_MASTER = """
import copy, gc, sys, time
import msgspec
from mesos.master import registry
if GCLOG:
    _began = [0.0]
    def _gc(phase, info):
        if phase == "start":
            _began[0] = time.perf_counter()
        elif info["generation"] == 2 and time.perf_counter() - _began[0] > 0.02:
            print(f"FULL-GC {time.time():.3f} {time.perf_counter() - _began[0]:.3f}",
                  file=sys.stderr, flush=True)
    gc.callbacks.append(_gc)
def _copy(self):
    return msgspec.structs.replace(
        self, **{f: copy.copy(getattr(self, f)) for f in self.__struct_fields__})
if COPY == "shallow":
    registry.Registry.copy = _copy
if POLL:
    from mesos.http import streaming
    streaming._LIVENESS_POLL_SECONDS = POLL
from mesos.cli.master import main
sys.argv[0] = "mesos-master"
sys.exit(main())
"""


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- worker


def framework_infos(count: int) -> list[v1.FrameworkInfo]:
    return [v1.FrameworkInfo(user="root", name=f"bench-{n}", id=v1.FrameworkID(value=f"bench-fw-{n}"),
                             failover_timeout=7 * 86400.0, roles=["*"])
            for n in range(count)]


# A few task sizes (the master's views summarise each distinct size once per build, so
# one size for every task would flatter them).
TASK_SIZES = [codec.decode_obj(Resources.parse(f"cpus:{0.1 * (1 + n % 4):.1f};"
                                               f"mem:{32 * (1 + n % 3)}").to_json(),
                               list[v1.Resource])
              for n in range(12)]


def seed(agent: SimAgent, tasks: int, frameworks: list[v1.FrameworkInfo]) -> None:
    """Give a simulated agent ``tasks`` running tasks before its first SUBSCRIBE."""
    for k in range(tasks):
        resources = TASK_SIZES[(agent.index * 7 + k) % len(TASK_SIZES)]
        framework = frameworks[(agent.index + k) % len(frameworks)]
        assert framework.id is not None
        agent.frameworks[framework.id.value] = framework
        task_id = f"task-{agent.index}-{k}"
        agent.tasks[(framework.id.value, task_id)] = v1.Task(
            name=task_id, task_id=v1.TaskID(value=task_id), framework_id=framework.id,
            agent_id=v1.AgentID(value=""), state="TASK_RUNNING", resources=resources)


async def worker(args: argparse.Namespace) -> None:
    """One process of simulated agents, started a batch at a time (a 10,000-strong
    thundering herd only fills the master's listen backlog and the agents' backoff)."""
    frameworks = framework_infos(args.frameworks)
    parsed = Resources.parse(DEFAULT_RESOURCES)
    agents = [SimAgent(args.master, args.first + i, resources=parsed, backoff_factor=1.0)
              for i in range(args.count)]
    for agent in agents:
        seed(agent, args.tasks, frameworks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for start in range(0, len(agents), args.batch):
        for agent in agents[start:start + args.batch]:
            agent.start()
        await asyncio.sleep(args.batch_pause)
        if stop.is_set():
            break
    await stop.wait()
    await asyncio.gather(*(agent.stop() for agent in agents))


# --------------------------------------------------------------------------- measuring


async def timed(http: aiohttp.ClientSession, method: str, url: str,
                body: Any = None) -> tuple[float, int]:
    """(seconds to the last byte, body size in bytes) of one call answered 200."""
    headers = {"Accept": "application/json"}
    started = time.perf_counter()
    async with http.request(method, url, json=body, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=300)) as resp:
        data = await resp.read()
        took = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"{method} {url} answered {resp.status}: {data[:300]!r}")
    return took, len(data)


async def probe(url: str, stop: asyncio.Event) -> list[tuple[float, float]]:
    """GET ``url`` every PROBE_EVERY seconds on a connection of its own until ``stop``;
    (start, latency) of each call."""
    seen: list[tuple[float, float]] = []
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 600
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.perf_counter()
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=300)) as resp:
                await resp.read()
            seen.append((started, time.perf_counter() - started))
            await asyncio.sleep(PROBE_EVERY)
    return seen


async def stall(probe_url: str, build: Callable[[], Awaitable[Any]] | None,
                idle: float = 2.0) -> dict[str, float]:
    """Probe ``probe_url`` while ``build()`` runs (or for ``idle`` seconds without):
    the longest and median probe latency, and how many probes were answered."""
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(probe_url, stop))
    await asyncio.sleep(0.3)  # the prober's connection is open and warm
    begin = time.perf_counter()
    if build is None:
        await asyncio.sleep(idle)
    else:
        await build()
    end = time.perf_counter()
    stop.set()
    seen = await prober
    during = [lat for started, lat in seen if started + lat >= begin and started <= end]
    return {"max_ms": max(during, default=float("nan")) * 1000,
            "p50_ms": (statistics.median(during) if during else float("nan")) * 1000,
            "probes": float(len(during)), "window_s": end - begin}


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "max": max(values), "min": min(values)}


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str,
                daemons: list[Daemon]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for daemon in daemons:
            if not daemon.alive():
                raise RuntimeError(f"{daemon.name} exited:\n{daemon.log()[-3000:]}")
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            if await check():
                return
        await asyncio.sleep(1.0)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ([str(BIN / "mesos-master")]
               if args.registry_copy == "real" and not args.liveness_poll and not args.gc_log
               else [sys.executable, "-c",
                     f"COPY = {args.registry_copy!r}\nPOLL = {args.liveness_poll!r}\n"
                     f"GCLOG = {args.gc_log!r}\n" + PATCHED_MASTER])
    master = Daemon("master", [*command, "--ip=127.0.0.1", f"--port={port}",
                               "--registry=in_memory", "--agent_ping_timeout=10mins",
                               *args.master_flag],
                    work / "master.log")
    per = -(-args.agents // args.procs)
    workers = [
        Daemon(f"simagents-{n}", [sys.executable, __file__, "worker",
                                  f"--master=127.0.0.1:{port}", f"--first={n * per}",
                                  f"--count={min(per, args.agents - n * per)}",
                                  f"--tasks={args.tasks}", f"--frameworks={args.frameworks}",
                                  f"--batch={args.batch}", f"--batch-pause={args.batch_pause}"],
               work / f"simagents-{n}.log")
        for n in range(args.procs) if n * per < args.agents
    ]
    want_tasks = args.agents * args.tasks
    out: dict[str, Any] = {"agents": args.agents, "tasks": want_tasks,
                           "frameworks": args.frameworks, "procs": len(workers),
                           "registry_copy": args.registry_copy,
                           "liveness_poll": args.liveness_poll}
    async with aiohttp.ClientSession() as http:
        last: dict[str, float] = {}

        async def ready() -> bool:
            async with http.get(f"{url}/metrics/snapshot",
                                timeout=aiohttp.ClientTimeout(total=60)) as resp:
                m = await resp.json(content_type=None)
            if (m.get("master/slaves_active"), m.get("master/tasks_running")) != (
                    last.get("master/slaves_active"), last.get("master/tasks_running")):
                progress(f"{m.get('master/slaves_active', 0):.0f}/{args.agents} agents "
                         f"active, {m.get('master/tasks_running', 0):.0f}/{want_tasks} "
                         "tasks running")
            last.update(m)
            return bool(m.get("master/slaves_active") == args.agents
                        and m.get("master/tasks_running") == want_tasks)

        try:
            master.start()
            await until(lambda: _healthy(http, url), 60, "the master", [master])
            progress(f"master on :{port} (pid {master.pid}); starting {args.agents} agents "
                     f"with {want_tasks} tasks in {len(workers)} processes")
            started = time.monotonic()
            for w in workers:
                w.start()
            await until(ready, args.timeout, "every agent and task", [master, *workers])
            out["startup_s"] = time.monotonic() - started
            progress(f"all up in {out['startup_s']:.0f} s; master RSS "
                     f"{rss_mib(master.pid):.0f} MiB; settling {args.settle:.0f} s")
            await asyncio.sleep(args.settle)
            out["master_rss_mib"] = rss_mib(master.pid)
            out["loadavg"] = os.getloadavg()
            measuring = time.time()

            state_url = f"{url}/master/state"
            api_url = f"{url}/api/v1"
            get_state = {"type": "GET_STATE"}
            for name, method, target, body in (
                    ("master_state", "GET", state_url, None),
                    ("get_state", "POST", api_url, get_state)):
                times, sizes, starts = [], [], []
                for n in range(args.rounds):
                    starts.append(time.time() - measuring)
                    took, size = await timed(http, method, target, body)
                    times.append(took)
                    sizes.append(size)
                    progress(f"{name} {n + 1}/{args.rounds}: {took:.3f} s, {size:,} bytes "
                             f"(at {starts[-1]:.1f} s)")
                out[name] = {**summary(times), "bytes": sizes[-1], "times": times,
                             "started_s": starts}

            async def build_state() -> None:
                await timed(http, "GET", state_url)

            async def build_get_state() -> None:
                await timed(http, "POST", api_url, get_state)

            probes: dict[str, dict[str, float]] = {}
            for cheap in ("/health", "/metrics/snapshot"):
                for label, build in (("idle", None), ("master_state", build_state),
                                     ("get_state", build_get_state)):
                    key = f"{cheap} during {label}"
                    probes[key] = await stall(f"{url}{cheap}", build)
                    progress(f"{key}: max {probes[key]['max_ms']:.0f} ms, p50 "
                             f"{probes[key]['p50_ms']:.1f} ms over "
                             f"{probes[key]['probes']:.0f} probes in "
                             f"{probes[key]['window_s']:.2f} s")
            out["probes"] = probes
            if args.gc_log:
                out["full_gcs"] = [
                    {"at_s": float(at) - measuring, "took_s": float(took)}
                    for _, at, took in (line.split() for line in master.log().splitlines()
                                        if line.startswith("FULL-GC "))
                    if float(at) >= measuring]
        finally:
            for w in workers:
                w.stop(timeout=30)
            master.stop(timeout=30)
    return out


async def _healthy(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status == 200


def report(out: dict[str, Any]) -> None:
    print(f"{out['agents']} agents, {out['tasks']} tasks, {out['frameworks']} frameworks "
          f"({out['procs']} agent processes); startup {out['startup_s']:.0f} s; master RSS "
          f"{out['master_rss_mib']:.0f} MiB; load {out['loadavg'][0]:.1f}")
    print(f"{platform.node()} {platform.python_version()} {os.cpu_count()} cpus")
    print("| call | first (cold) | p50 | max | size |")
    print("| --- | --- | --- | --- | --- |")
    for name, label in (("master_state", "GET /master/state"),
                        ("get_state", "POST /api/v1 GET_STATE")):
        r = out[name]
        print(f"| {label} | {r['times'][0]:.3f} s | {r['p50']:.3f} s | {r['max']:.3f} s | "
              f"{r['bytes'] / 1e6:.1f} MB |")
    print()
    print("| probe | longest answer | median | probes |")
    print("| --- | --- | --- | --- |")
    for key, p in out["probes"].items():
        print(f"| {key} | {p['max_ms']:.0f} ms | {p['p50_ms']:.1f} ms | {p['probes']:.0f} |")
    if "full_gcs" in out:
        print()
        print("full garbage collections while measuring (s after it began: took): "
              + (", ".join(f"{g['at_s']:.1f}: {g['took_s'] * 1000:.0f} ms"
                           for g in out["full_gcs"]) or "none"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode")
    w = sub.add_parser("worker", help="(internal) one process of simulated agents")
    w.add_argument("--master", required=True)
    w.add_argument("--first", type=int, required=True)
    w.add_argument("--count", type=int, required=True)
    for p in (parser, w):
        p.add_argument("--tasks", type=int, default=10, help="tasks per agent")
        p.add_argument("--frameworks", type=int, default=5)
        p.add_argument("--batch", type=int, default=100,
                       help="agents started at once in a worker")
        p.add_argument("--batch-pause", type=float, default=0.2)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait after everything is up")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="most seconds for every agent and task to be up")
    parser.add_argument("--master-flag", action="append", default=[],
                        help="an extra flag for the master (repeatable)")
    parser.add_argument("--registry-copy", choices=("shallow", "real"), default="shallow",
                        help="how the master's registrar copies the registry (see "
                             "PATCHED_MASTER); 'real' runs mesos-master untouched")
    parser.add_argument("--liveness-poll", type=float, default=None,
                        help="seconds between two checks, by each event stream, that its "
                             "client is still there (mesos.http.streaming polls every 0.5 s; "
                             "with 10,000 agent streams that alone keeps the loop busy)")
    parser.add_argument("--gc-log", action="store_true",
                        help="log the master's full garbage collections (over 20 ms) and "
                             "report those made while measuring")
    parser.add_argument("--json", action="store_true", help="print the raw figures")
    args = parser.parse_args(argv)
    if args.mode == "worker":
        asyncio.run(worker(args))
        return
    with tempfile.TemporaryDirectory(prefix="master-state-bench-") as tmp:
        out = asyncio.run(bench(args, Path(tmp)))
    if args.json:
        print(json.dumps(out, indent=2))
    report(out)


if __name__ == "__main__":
    main()
