"""Leader failover: SIGKILL the leading master, time the new leader and the agents.

A real ZooKeeper (:mod:`mesos.testing.zk`), three real ``mesos-master`` processes
electing a leader there (``--zk``, registry in ZooKeeper) and N simulated agents
(``mesos.testing.simagent``, one process: the agent's own master link, which follows
the leader through ZooKeeper with its own detector). Each round SIGKILLs the leader
and times, from the kill:

* ``serving``: a standby says ``master/elected`` 1 on ``/metrics/snapshot`` (served by
  its leading app, so its registry is recovered and the API is up). ZooKeeper only
  lets it lead once the dead leader's session has expired: a session timeout after
  the last packet ZooKeeper had from it (a ping up to a third of a timeout before the
  kill), so this is a little under or over the session timeout; the goal is session
  timeout + 2 s.
* ``agents``: every agent got SUBSCRIBED from the new leader (each detected the new
  leader, re-subscribed with its id and was admitted), by the agents' own event log,
  after the poll saw the new leader's ``master/slaves_active`` reach N. Reported as
  time after ``serving``; the goal is 3 s. ``serving`` is the earlier of the first
  poll that saw ``master/elected`` 1 and the new leader's log line "Leading master
  ... serving": either can come late while the new leader's loop is busy with
  re-registrations. The agents wait a random delay of up to
  their backoff factor (``--backoff``, Mesos' default 1 s) before re-subscribing to a
  new leader, as Mesos' agents do.

The killed master is started again (as a standby) before the next round.

    .venv/bin/python benchmarks/leader_failover.py [--agents 20] [--rounds 3]
        [--session-timeout 10]

Every process it starts is stopped by its PID at the end. Progress goes to stderr;
``--json`` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mesos.testing.cluster import Daemon, free_port
from mesos.testing.zk import ZooKeeperServer

POLL = 0.01  # seconds between two polls
BIN = Path(sys.executable).parent


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics/snapshot", timeout=2) as r:
        out: dict[str, float] = json.loads(r.read())
        return out


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something truthy (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
            last = value
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(POLL)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


class Bench:
    def __init__(self, work: Path, agents: int, session_timeout: float, backoff: float) -> None:
        self.work = work
        self.agents = agents
        self.session_timeout = session_timeout
        self.backoff = backoff
        self.zk = ZooKeeperServer(work / "zookeeper")
        self.masters: list[Daemon] = []
        self.ports: list[int] = []
        self.sim: Daemon | None = None

    @property
    def url(self) -> str:
        return self.zk.url("/mesos")

    def master(self, index: int) -> Daemon:
        work = self.work / f"master{index}"
        work.mkdir(parents=True, exist_ok=True)
        return Daemon(f"master{index}", [
            str(BIN / "mesos-master"), "--ip=127.0.0.1", f"--port={self.ports[index]}",
            f"--work_dir={work}", f"--zk={self.url}", "--quorum=2",
            f"--zk_session_timeout={self.session_timeout}secs", "--logging_level=INFO",
        ], work / "master.log")

    def start(self) -> None:
        self.zk.start()
        self.ports = [free_port() for _ in range(3)]
        for index in range(3):
            self.masters.append(self.master(index))
            self.masters[index].start()
        leader = self.leader(timeout=120)
        progress(f"master{leader} leads; starting {self.agents} simulated agents")
        self.sim = Daemon("simagents", [
            sys.executable, "-m", "mesos.testing.simagent", f"--master={self.url}",
            f"--agents={self.agents}", f"--backoff={self.backoff}",
            f"--events={self.work / 'events.jsonl'}",
        ], self.work / "simagents.log")
        self.sim.start()
        until(lambda: metrics(self.ports[leader])["master/slaves_active"] == self.agents,
              120, f"{self.agents} agents registered")

    def leader(self, exclude: int | None = None, timeout: float = 120) -> int:
        def find() -> tuple[int] | None:
            for index, daemon in enumerate(self.masters):
                if index == exclude or not daemon.alive():
                    continue
                try:
                    if metrics(self.ports[index])["master/elected"] == 1.0:
                        return (index,)
                except OSError:
                    continue
            return None

        found: tuple[int] = until(find, timeout, "a leading master")
        return found[0]

    def round(self) -> dict[str, float]:
        leader = self.leader()
        killed_at = time.time()
        self.masters[leader].kill()
        new = self.leader(exclude=leader, timeout=self.session_timeout * 6 + 60)
        polled_at = time.time()
        until(lambda: metrics(self.ports[new])["master/slaves_active"] == self.agents,
              120, f"{self.agents} agents re-registered with master{new}")
        # The poll and the new leader's "serving" log line are both upper bounds on
        # when it started serving: a poll can land late on a loop busy with
        # re-registrations, and the line is written only when the coroutine that
        # started the server gets the loop back. The earlier of the two is taken.
        logged_at = self.serving_time(new, killed_at)
        serving_at = min(polled_at, logged_at) if logged_at is not None else polled_at
        agents_at = self.last_subscribed(killed_at)
        # Back as a standby for the next round.
        self.masters[leader] = self.master(leader)
        self.masters[leader].start()
        until(lambda: metrics(self.ports[leader])["master/elected"] == 0.0, 120,
              f"master{leader} back as a standby")
        return {"serving": serving_at - killed_at, "agents": agents_at - serving_at,
                "polled_serving": polled_at - killed_at}

    def serving_time(self, index: int, after: float) -> float | None:
        """When master ``index`` logged that it serves as leader (after ``after``)."""
        for line in self.masters[index].log().splitlines():
            if "Leading master" in line and "serving on" in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                if stamp >= after:
                    return stamp
        return None

    def last_subscribed(self, after: float) -> float:
        """When the last agent got SUBSCRIBED again after ``after`` (its events file)."""
        first: dict[int, float] = {}
        with open(self.work / "events.jsonl", encoding="utf-8") as fh:
            for line in fh:
                event = json.loads(line)
                if event["event"] == "subscribed" and event["time"] >= after:
                    first.setdefault(event["agent"], event["time"])
        if len(first) < self.agents:
            raise RuntimeError(f"only {len(first)} agents re-subscribed after the kill")
        return max(first.values())

    def stop(self) -> None:
        for daemon in ([self.sim] if self.sim else []) + self.masters:
            daemon.stop()
        self.zk.stop()


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--session-timeout", type=float, default=10.0,
                        help="the masters' --zk_session_timeout in seconds (Mesos: 10)")
    parser.add_argument("--backoff", type=float, default=1.0,
                        help="the agents' registration backoff factor in seconds")
    parser.add_argument("--json", action="store_true", help="print the raw figures")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="leader-failover-") as tmp:
        bench = Bench(Path(tmp), args.agents, args.session_timeout, args.backoff)
        rounds: list[dict[str, float]] = []
        try:
            bench.start()
            for n in range(args.rounds):
                result = bench.round()
                rounds.append(result)
                progress(f"round {n + 1}: new leader serving {result['serving']:.2f} s after "
                         f"the kill, {args.agents} agents re-registered "
                         f"{result['agents']:.2f} s after that")
        except BaseException:
            for daemon in bench.masters + ([bench.sim] if bench.sim else []):
                sys.stderr.write(f"==== {daemon.name} ====\n{daemon.log()[-2000:]}\n")
            raise
        finally:
            bench.stop()
    serving = [r["serving"] for r in rounds]
    agents = [r["agents"] for r in rounds]
    print(f"date: {datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"setup: 3 masters, {args.agents} simulated agents, --zk_session_timeout="
          f"{args.session_timeout:g}secs, agent backoff {args.backoff:g} s, "
          f"{args.rounds} round(s)")
    print(f"new leader serving after SIGKILL: {summary(serving)} "
          f"(goal: session timeout + 2 s = {args.session_timeout + 2:g} s)")
    print(f"all agents re-registered after that: {summary(agents)} (goal: 3 s)")
    print("first poll seeing the new leader, after SIGKILL: "
          + ", ".join(f"{r['polled_serving']:.2f}" for r in rounds) + " s")
    if args.json:
        print(json.dumps({"rounds": rounds, "agents": args.agents,
                          "session_timeout": args.session_timeout}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
