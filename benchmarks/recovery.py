"""Recovery times: a master restart with 100 agents, an agent restart with 50 executors.

``master`` (the first goal of issue 4's last bullet): a real ``mesos-master`` (registry
in its work dir) and N simulated agents (``mesos.testing.simagent``: one process, one
event loop, the agent's own master link and reconnect backoff) each running K tasks
that a real framework launched through offers. Each round SIGKILLs the master and
starts it again on the same port and work dir, and times, from the new process's
start:

* ``http``: the master answers ``/health`` (interpreter start-up, imports, registry
  recovery);
* ``agents``: ``/metrics/snapshot`` says ``master/slave_reregistrations`` == N and
  ``master/slaves_active`` == N (every agent re-registered *and* admitted: its
  registry write landed and it was sent SUBSCRIBED);
* ``tasks``: ``master/tasks_running`` == N*K (the tasks, rebuilt from the agents'
  reports).

From the simulated agents' own event log it also splits ``agents`` into the agents'
reconnect backoff (master serving -> the agent's successful SUBSCRIBE attempt) and the
master's work (that attempt -> SUBSCRIBED received), and gives how long the agents took
to notice the master was gone (SIGKILL -> stream closed).

``agent``: a real master and one real ``mesos-agent`` (``--recover=reconnect``); a
framework with ``checkpoint: true`` runs M ``sleep 600`` tasks (command executor: one
executor process each). Each round SIGKILLs the agent (the executors live on in their
own sessions), waits until the master sees it disconnected, starts it again with the
same flags and work dir, and times, from the new process's start:

* ``recovering``: the agent's log line "Recovering agent ..." (start-up, imports,
  checkpoints read back);
* ``executors``: the M-th "Executor ... re-subscribed" log line (the executors retry
  with a backoff of 50 ms doubling up to ``--executor_reregistration_timeout``, 2 s);
* ``registered``: the master's ``master/slave_reregistrations`` went up by one,
  ``master/slaves_active`` == 1 and ``master/tasks_running`` == M (the agent
  subscribes only after its recovered executors re-subscribed, as Mesos' does).

    .venv/bin/python benchmarks/recovery.py master [--agents 100] [--tasks 3] [--rounds 5]
    .venv/bin/python benchmarks/recovery.py agent [--executors 50] [--rounds 3]
    .venv/bin/python benchmarks/recovery.py both

Every process it starts (master, agent, the simulated agents' process, the executors
found in the agent's checkpoints) is stopped by its PID, or its session, at the end.
Progress goes to stderr; ``--json`` prints the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from mesos.agent import checkpoint, launcher
from mesos.testing.cluster import Daemon, free_port
from mesos.testing.rawsched import RawScheduler

POLL = 0.01  # seconds between two polls of an endpoint
BIN = Path(sys.executable).parent


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.3f} s, max {max(values):.3f} s"


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as resp:
        resp.raise_for_status()
        return await resp.json(content_type=None)


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str,
                daemons: tuple[Daemon, ...] = ()) -> tuple[float, Any]:
    """Poll ``check`` until it returns something truthy: (time.time() then, value).
    Bounded by ``timeout``; a daemon that died ends the wait at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        for daemon in daemons:
            if not daemon.alive():
                raise RuntimeError(f"{daemon.name} exited:\n{daemon.log()[-3000:]}")
        try:
            value = await check()
            if value:
                return time.time(), value
            last = value
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            last = exc
        await asyncio.sleep(POLL)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


async def healthy(http: aiohttp.ClientSession, url: str) -> bool:
    async with http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
        return resp.status == 200


def master_daemon(work: Path, port: int, extra: list[str] | None = None) -> Daemon:
    (work / "master").mkdir(parents=True, exist_ok=True)
    return Daemon("master", [str(BIN / "mesos-master"), "--ip=127.0.0.1", f"--port={port}",
                             f"--work_dir={work / 'master'}", *(extra or [])],
                  work / "master" / "master.log")


def restarted(daemon: Daemon) -> Daemon:
    """SIGKILL ``daemon`` (by PID) and give back an unstarted copy of it."""
    daemon.kill()
    return Daemon(daemon.name, daemon.args, daemon.log_path, daemon.env)


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


async def ack(s: RawScheduler, status: dict[str, Any]) -> None:
    if "uuid" in status:
        await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"],
            "uuid": status["uuid"]}})


async def launch(s: RawScheduler, per_agent: int, agents: int, command: str,
                 cpus: float, mem: float, timeout: float) -> int:
    """Launch ``per_agent`` tasks on each of ``agents`` agents through offers, acking
    every update, until all of them are TASK_RUNNING; returns how many were launched."""
    want = per_agent * agents
    launched: dict[str, int] = {}
    running: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(running) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"only {len(running)} of {want} tasks running")
        event = await s.next_event("*", timeout=left)
        if event["type"] == "OFFERS":
            for offer in event["offers"]["offers"]:
                agent_id = offer["agent_id"]["value"]
                count = min(per_agent - launched.get(agent_id, 0),
                            want - sum(launched.values()))
                if len(launched) >= agents and agent_id not in launched:
                    count = 0
                tasks: list[dict[str, Any]] = []
                for _ in range(max(count, 0)):
                    n = sum(launched.values()) + len(tasks)
                    tasks.append({"name": f"t{n}", "task_id": {"value": f"t{n}"},
                                  "agent_id": offer["agent_id"],
                                  "command": {"value": command},
                                  "resources": [scalar("cpus", cpus), scalar("mem", mem)]})
                if tasks:
                    launched[agent_id] = launched.get(agent_id, 0) + len(tasks)
                ops = [{"type": "LAUNCH", "launch": {"task_infos": tasks}}] if tasks else []
                code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                    "offer_ids": [offer["id"]], "operations": ops,
                    "filters": {"refuse_seconds": 3600}}})
                if code != 202:
                    raise RuntimeError(f"ACCEPT answered {code}: {text}")
        elif event["type"] == "UPDATE":
            status = event["update"]["status"]
            await ack(s, status)
            if status["state"] == "TASK_RUNNING":
                running.add(status["task_id"]["value"])
            elif status["state"] != "TASK_STARTING":
                raise RuntimeError(f"task {status['task_id']['value']}: {status['state']}")
        elif event["type"] in ("__CLOSED__", "ERROR"):
            raise RuntimeError(f"scheduler stream ended: {event}")
    return len(running)


# --------------------------------------------------------------------------- master


def read_events(path: Path, offset: int) -> tuple[list[dict[str, Any]], int]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].decode().splitlines()
    return [json.loads(line) for line in lines if line], offset + end


def agent_side(events: list[dict[str, Any]], killed: float, started: float,
               serving: float) -> dict[str, float]:
    """Per agent: SIGKILL -> disconnected, and of the SUBSCRIBE that worked, master
    serving -> attempt (backoff) and attempt -> SUBSCRIBED (the master's part)."""
    by_agent: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        by_agent.setdefault(e["agent"], []).append(e)
    notice, backoff, master_part, attempts = [], [], [], []
    last_subscribed = 0.0
    for seq in by_agent.values():
        lost = [e["time"] for e in seq if e["event"] == "disconnected"]
        if lost:
            notice.append(lost[0] - killed)
        subscribed = [i for i, e in enumerate(seq) if e["event"] == "subscribed"]
        if not subscribed:
            continue
        i = subscribed[-1]
        tried = [e["time"] for e in seq[:i] if e["event"] == "attempt"]
        attempts.append(len(tried))
        if tried:
            backoff.append(tried[-1] - serving)
            master_part.append(seq[i]["time"] - tried[-1])
        last_subscribed = max(last_subscribed, seq[i]["time"])
    return {
        "notice_max": max(notice, default=float("nan")),
        "backoff_p50": statistics.median(backoff) if backoff else float("nan"),
        "backoff_max": max(backoff, default=float("nan")),
        "master_part_p50": statistics.median(master_part) if master_part else float("nan"),
        "master_part_max": max(master_part, default=float("nan")),
        "attempts_max": float(max(attempts, default=0)),
        "last_subscribed": last_subscribed - started,
        "agents_seen": float(len(attempts)),
    }


async def bench_master(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    work.mkdir(parents=True, exist_ok=True)
    events = work / "simagents.jsonl"
    events.touch()
    master = master_daemon(work, port)
    sim = Daemon("simagents", [sys.executable, "-m", "mesos.testing.simagent",
                               f"--master=127.0.0.1:{port}", f"--agents={args.agents}",
                               f"--backoff={args.backoff}", f"--events={events}"],
                 work / "simagents.log")
    want_tasks = args.agents * args.tasks
    rounds: list[dict[str, float]] = []
    async with aiohttp.ClientSession() as http:
        async def metrics() -> dict[str, float]:
            out: dict[str, float] = await get_json(http, f"{url}/metrics/snapshot")
            return out

        try:
            master.start()
            await until(lambda: healthy(http, url), 30, "the master", (master,))
            sim.start()
            progress(f"master on :{port}; starting {args.agents} simulated agents")
            await until(lambda: _gauge(metrics, "master/slaves_active", args.agents), 120,
                        f"{args.agents} agents", (master, sim))
            s = RawScheduler(f"127.0.0.1:{port}")
            try:
                await s.subscribe({"user": "root", "name": "recovery-bench",
                                   "failover_timeout": 7 * 86400.0})
                progress(f"framework {s.framework_id}; launching {want_tasks} tasks")
                await launch(s, args.tasks, args.agents, "sleep 600", 0.1, 16, 300)
            finally:
                await s.close()
            await until(lambda: _gauge(metrics, "master/tasks_running", want_tasks), 60,
                        f"{want_tasks} running tasks", (master,))
            offset = events.stat().st_size
            total = args.rounds or 5
            for n in range(total):
                await asyncio.sleep(args.settle)
                killed = time.time()
                master = restarted(master)
                started = time.time()
                master.start()
                serving, _ = await until(lambda: healthy(http, url), 60,
                                         "the restarted master", (master,))
                agents_t, _ = await until(
                    lambda: _all(metrics, {"master/slave_reregistrations": args.agents,
                                           "master/slaves_active": args.agents}),
                    args.timeout, "every agent to re-register", (master, sim))
                tasks_t, m = await until(
                    lambda: _gauge(metrics, "master/tasks_running", want_tasks),
                    args.timeout, "every task to be back", (master, sim))
                if m.get("master/slave_registrations", 0.0) != 0.0:
                    raise RuntimeError("an agent registered afresh instead of re-registering")
                await asyncio.sleep(0.2)  # let the agents' last event lines land
                got, offset = read_events(events, offset)
                side = agent_side(got, killed, started, serving)
                if side["agents_seen"] != args.agents:
                    progress(f"warning: the agents' log shows {side['agents_seen']:.0f} of "
                             f"{args.agents} subscribing this round")
                row = {"http": serving - started, "agents": agents_t - started,
                       "tasks": tasks_t - started, **side}
                rounds.append(row)
                progress(f"round {n + 1}/{total}: http {row['http']:.3f} s, agents "
                         f"{row['agents']:.3f} s, tasks {row['tasks']:.3f} s (agents noticed in "
                         f"<= {side['notice_max'] * 1000:.0f} ms; backoff after the master "
                         f"was serving p50 {side['backoff_p50']:.3f} s, max "
                         f"{side['backoff_max']:.3f} s; master's part p50 "
                         f"{side['master_part_p50'] * 1000:.0f} ms, max "
                         f"{side['master_part_max'] * 1000:.0f} ms; most attempts "
                         f"{side['attempts_max']:.0f})")
        finally:
            sim.stop()
            master.stop()
    return {"agents": args.agents, "tasks_per_agent": args.tasks, "backoff": args.backoff,
            "rounds": rounds}


async def _gauge(metrics: Callable[[], Awaitable[dict[str, float]]], name: str,
                 want: float) -> dict[str, float] | None:
    m = await metrics()
    return m if m.get(name) == want else None


async def _all(metrics: Callable[[], Awaitable[dict[str, float]]],
               want: dict[str, float]) -> dict[str, float] | None:
    m = await metrics()
    return m if all(m.get(k) == v for k, v in want.items()) else None


# --------------------------------------------------------------------------- agent


def log_lines_after(path: Path, offset: int) -> list[str]:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read().decode(errors="replace").splitlines()


def log_time(line: str) -> float:
    """The ``%(asctime)s`` at the start of a daemon's log line, as time.time()."""
    stamp = " ".join(line.split(" ", 2)[:2])
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def executor_sessions(agent_dir: Path) -> list[int]:
    """PIDs (session leaders) of the executors the agent checkpointed and that still
    run as the same processes."""
    pids = []
    for path in glob.glob(str(agent_dir / "meta" / "**" / "forked.pid"), recursive=True):
        parts = Path(path).read_text().split()
        pid, start = int(parts[0]), int(parts[1]) if len(parts) > 1 else None
        if checkpoint.same_process(pid, start):
            pids.append(pid)
    return pids


async def bench_agent(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    agent_port = free_port()
    agent_dir = work / "agent"
    agent_dir.mkdir(parents=True, exist_ok=True)  # and ``work`` with it
    master = master_daemon(work, port)
    agent = Daemon("agent", [
        str(BIN / "mesos-agent"), f"--master=127.0.0.1:{port}", "--ip=127.0.0.1",
        f"--port={agent_port}", f"--work_dir={agent_dir}", "--recover=reconnect",
        "--resources=cpus:64;mem:65536;disk:65536",
        # Orphaned executors (should this run die) give up on the agent after this.
        "--recovery_timeout=2mins",
    ], agent_dir / "agent.log")
    rounds: list[dict[str, float]] = []
    s = RawScheduler(f"127.0.0.1:{port}")
    acker: asyncio.Task[None] | None = None
    async with aiohttp.ClientSession() as http:
        async def metrics() -> dict[str, float]:
            out: dict[str, float] = await get_json(http, f"{url}/metrics/snapshot")
            return out

        try:
            master.start()
            await until(lambda: healthy(http, url), 30, "the master", (master,))
            agent.start()
            await until(lambda: _gauge(metrics, "master/slaves_active", 1), 60, "the agent",
                        (master, agent))
            await s.subscribe({"user": "root", "name": "recovery-bench", "checkpoint": True,
                               "failover_timeout": 7 * 86400.0})
            progress(f"framework {s.framework_id}; launching {args.executors} tasks "
                     "(one command executor each)")
            await launch(s, args.executors, 1, "sleep 600", 0.01, 8, 300)

            async def ack_forever() -> None:
                while True:
                    event = await s.next_event("*", timeout=3600)
                    if event["type"] == "UPDATE":
                        await ack(s, event["update"]["status"])

            acker = asyncio.get_running_loop().create_task(ack_forever())
            total = args.rounds or 3
            for n in range(total):
                await asyncio.sleep(args.settle)
                before = (await metrics())["master/slave_reregistrations"]
                offset = agent.log_path.stat().st_size
                agent = restarted(agent)
                await until(lambda: _gauge(metrics, "master/slaves_active", 0), 60,
                            "the master to see the agent gone", (master,))
                started = time.time()
                agent.start()
                back = {"master/slave_reregistrations": before + 1,
                        "master/slaves_active": 1, "master/tasks_running": args.executors}
                registered_t, _ = await until(
                    lambda: _all(metrics, back),  # noqa: B023 - awaited in this iteration
                    args.timeout, "the agent to re-register with its tasks", (master, agent))
                lines = log_lines_after(agent.log_path, offset)
                resub = [log_time(x) for x in lines if "re-subscribed" in x]
                recovering = [log_time(x) for x in lines if "] Recovering agent" in x]
                lost = [x for x in lines if "did not re-subscribe" in x
                        or "Terminating recovered executor" in x]
                if len(resub) != args.executors or lost:
                    raise RuntimeError(f"{len(resub)} of {args.executors} executors "
                                       f"re-subscribed; {lost[:3]}")
                row = {"recovering": recovering[0] - started if recovering else float("nan"),
                       "executors": max(resub) - started,
                       "first_executor": min(resub) - started,
                       "registered": registered_t - started}
                rounds.append(row)
                progress(f"round {n + 1}/{total}: recovering at {row['recovering']:.3f} s, "
                         f"first executor {row['first_executor']:.3f} s, all {args.executors} "
                         f"executors {row['executors']:.3f} s, re-registered with "
                         f"{args.executors} running tasks {row['registered']:.3f} s")
        finally:
            if acker is not None:
                acker.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await acker
            if s.framework_id is not None:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    await s.call({"type": "TEARDOWN", "framework_id": s.fw()})
                # The teardown shuts the executors down (grace period 5 s); stopping the
                # agent meanwhile would leave them for a next agent to recover.
                deadline = time.monotonic() + 20
                while executor_sessions(agent_dir) and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
            await s.close()
            agent.stop(timeout=30)  # SIGTERM: it shuts its executors down first
            master.stop()
            leftover = executor_sessions(agent_dir)
            for pid in leftover:
                launcher.kill_session(pid)
            if leftover:
                progress(f"{len(leftover)} executor session(s) outlived the agent; "
                         "killed by session")
    return {"executors": args.executors, "rounds": rounds}


# --------------------------------------------------------------------------- main


def report(kind: str, result: dict[str, Any]) -> None:
    rows = result["rounds"]
    if kind == "master":
        print(f"master restart, {result['agents']} simulated agents x "
              f"{result['tasks_per_agent']} tasks, agent backoff factor {result['backoff']} s, "
              f"{len(rows)} rounds:")
        keys = [("http", "restart -> serving HTTP"),
                ("agents", "restart -> all agents re-registered"),
                ("tasks", "restart -> all tasks running again"),
                ("notice_max", "SIGKILL -> last agent saw its stream close"),
                ("backoff_max", "serving -> last agent's successful SUBSCRIBE sent"),
                ("master_part_max", "slowest SUBSCRIBE sent -> SUBSCRIBED back")]
    else:
        print(f"agent restart, {result['executors']} command executors, {len(rows)} rounds:")
        keys = [("recovering", "restart -> recovery starts (log)"),
                ("first_executor", "restart -> first executor re-subscribed"),
                ("executors", "restart -> all executors re-subscribed"),
                ("registered", "restart -> re-registered, all tasks running")]
    for key, label in keys:
        print(f"  {label:52s} {summary([r[key] for r in rows])}")


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(),
                           "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    with contextlib.ExitStack() as stack:
        if args.work_dir:
            tmp = os.path.abspath(tempfile.mkdtemp(prefix="mesos-recovery-", dir=args.work_dir))
            progress(f"work dirs and logs kept in {tmp}")
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="mesos-recovery-"))
        if args.which in ("master", "both"):
            out["master"] = await bench_master(args, Path(tmp) / "m")
            report("master", out["master"])
        if args.which in ("agent", "both"):
            out["agent"] = await bench_agent(args, Path(tmp) / "a")
            report("agent", out["agent"])
    out["load_after"] = os.getloadavg()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("which", choices=("master", "agent", "both"), nargs="?", default="both")
    parser.add_argument("--agents", type=int, default=100, help="simulated agents")
    parser.add_argument("--tasks", type=int, default=3, help="tasks per simulated agent")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="the simulated agents' registration backoff factor, seconds "
                             "(the agent's --registration_backoff_factor; default 1 s)")
    parser.add_argument("--executors", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=None,
                        help="restarts to time (default 5 for master, 3 for agent)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="quiet seconds before each SIGKILL")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="bound of each wait within a round, seconds")
    parser.add_argument("--work-dir", default=None,
                        help="keep work dirs and logs in a new directory under this one")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    out = asyncio.run(amain(args))
    if args.json:
        print(json.dumps(out, indent=2))

if __name__ == "__main__":
    main()
