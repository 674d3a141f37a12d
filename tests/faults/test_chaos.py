"""Chaos: a seeded injector kills agents, executors and the master at random while a
scheduler keeps 50 tasks running; at the end nothing the scheduler was told about is
lost or contradicted.

One master and three agents (checkpointing framework, ``--recover=reconnect``) run as
real processes. The scheduler, driven by ``mesos.scheduler.SchedulerDriver`` (which
re-subscribes with its framework id after a master restart), keeps ``TARGET``
``sleep`` tasks alive: it launches a replacement for every task that ends, reconciles
tasks it launched but has not heard from (an ACCEPT lost with a dying master), and
kills any task that comes back after it was told the task had ended. The injector,
every few seconds, picks one of: SIGKILL an agent and start it again, SIGKILL one
executor, SIGKILL the master and start it again.

After ``MESOS_CHAOS_SECONDS`` (default 120) of faults, and a bounded wait for things
to settle:

- every task the scheduler launched has a last state it was told about that is
  terminal or TASK_RUNNING;
- the tasks the scheduler believes RUNNING are exactly the master's running tasks
  and exactly the union of the agents' running tasks, and there are ``TARGET``.

The seed is printed (and kept as a user property) so a failure can be replayed with
``MESOS_CHAOS_SEED=<seed>`` (the same faults in the same order; the timing is the
machine's); so are the faults survived, per kind. ``MESOS_CHAOS_GAP="1,3"`` makes the
faults come faster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mesos.agent import checkpoint
from mesos.scheduler import Scheduler, SchedulerDriver, SchedulerError, is_terminal, scalars
from mesos.testing.cluster import Cluster, http_json

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(900)]

TARGET = 50
AGENTS = 3
PER_AGENT = -(-TARGET // AGENTS) + 2  # spread the tasks: at most this many per agent
CPUS, MEM = 0.1, 32.0
FW = {"user": "root", "name": "chaos", "checkpoint": True, "failover_timeout": 3600}
MASTER_FLAGS = ["--heartbeat_interval=5secs"]
AGENT_FLAGS = ["--recover=reconnect", "--status_update_retry_interval=2secs"]
# Relative odds of each fault.
FAULTS = {"agent": 3, "executor": 4, "master": 2}
# Seconds between faults, drawn from the seeded generator (MESOS_CHAOS_GAP="lo,hi").
FAULT_GAP = (3.0, 7.0)
SETTLE_SECONDS = 180.0
RECONCILE_AFTER = 8.0  # seconds without news before a launched task is reconciled
# What a driver call can meet while the master is away.
CALL_ERRORS = (SchedulerError, aiohttp.ClientError, OSError, TimeoutError)


def out(message: str) -> None:
    """Progress on stdout (shown with -s, and in the report when the test fails)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Launched:
    """One task the scheduler launched, and everything it was told about it."""

    task_id: str
    agent_id: str
    launched_at: float
    states: list[str] = field(default_factory=list)
    wanted: bool = True  # False once it was told the task ended (or chose to kill it)

    @property
    def last(self) -> str | None:
        return self.states[-1] if self.states else None


class Keeper(Scheduler):
    """Keeps ``target`` tasks running, whatever happens to them."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.tasks: dict[str, Launched] = {}
        self.subscriptions: list[str] = []
        self.launch_errors = 0
        self.revived: list[str] = []  # told RUNNING after being told it ended
        self._next = 0

    def active(self) -> list[Launched]:
        return [t for t in self.tasks.values()
                if t.wanted and (t.last is None or not is_terminal(t.last))]

    def running(self) -> set[str]:
        return {t.task_id for t in self.tasks.values() if t.last == "TASK_RUNNING"}

    def unsettled(self) -> list[Launched]:
        """Tasks whose last known state is neither terminal nor TASK_RUNNING."""
        return [t for t in self.tasks.values()
                if t.last is None or (t.last != "TASK_RUNNING" and not is_terminal(t.last))]

    async def on_subscribed(self, driver: SchedulerDriver, subscribed: dict[str, Any]) -> None:
        self.subscriptions.append(subscribed["framework_id"]["value"])
        out(f"subscribed ({len(self.subscriptions)}) as {self.subscriptions[-1]}")

    async def on_offers(self, driver: SchedulerDriver, offers: list[dict[str, Any]]) -> None:
        for offer in offers:
            agent_id = offer["agent_id"]["value"]
            active = self.active()
            on_agent = sum(1 for t in active if t.agent_id == agent_id)
            have = scalars(offer.get("resources") or [])
            fit = int(min(have.get("cpus", 0.0) / CPUS, have.get("mem", 0.0) / MEM) + 1e-6)
            count = max(0, min(self.target - len(active), PER_AGENT - on_agent, fit))
            try:
                if count == 0:
                    await driver.decline([offer["id"]], {"refuse_seconds": 1})
                    continue
                infos = []
                now = asyncio.get_running_loop().time()
                for _ in range(count):
                    task_id = f"chaos-{self._next}"
                    self._next += 1
                    self.tasks[task_id] = Launched(task_id, agent_id, now)
                    infos.append(task_info_for(task_id, offer["agent_id"]))
                await driver.launch([offer["id"]], infos)
            except CALL_ERRORS as exc:
                # The launch may or may not have reached the master: reconciliation
                # (see reconcile_stragglers) finds out which.
                self.launch_errors += 1
                out(f"offer on {agent_id} not answered: {exc!r}")

    async def on_update(self, driver: SchedulerDriver, status: dict[str, Any]) -> None:
        task_id = status["task_id"]["value"]
        state = status["state"]
        task = self.tasks.get(task_id)
        if task is None:  # never launched by us: cannot happen, but must not go unseen
            agent = (status.get("agent_id") or {}).get("value", "")
            task = self.tasks[task_id] = Launched(task_id, agent, 0.0, wanted=False)
        was_over = task.last is not None and is_terminal(task.last)
        task.states.append(state)
        if is_terminal(state):
            task.wanted = False
            return
        if was_over or not task.wanted:
            if state == "TASK_RUNNING" and task_id not in self.revived:
                self.revived.append(task_id)
                out(f"{task_id} is {state} again after {task.states[:-1]}; killing it")
            task.wanted = False
            await self.kill(driver, task)

    async def kill(self, driver: SchedulerDriver, task: Launched) -> None:
        try:
            await driver.kill(task.task_id, task.agent_id)
        except CALL_ERRORS as exc:
            out(f"kill of {task.task_id} not answered: {exc!r}")

    async def reconcile_stragglers(self, driver: SchedulerDriver) -> None:
        """Ask about tasks launched a while ago with no news yet (their ACCEPT may have
        died with the master), and kill again unwanted tasks still alive."""
        now = asyncio.get_running_loop().time()
        quiet = [t for t in self.unsettled() if now - t.launched_at > RECONCILE_AFTER]
        if quiet and driver.subscribed:
            try:
                await driver.reconcile([(t.task_id, t.agent_id) for t in quiet])
            except CALL_ERRORS as exc:
                out(f"reconcile not answered: {exc!r}")
        for task in self.tasks.values():
            if not task.wanted and task.last is not None and not is_terminal(task.last) \
                    and driver.subscribed:
                await self.kill(driver, task)


def task_info_for(task_id: str, agent_id: dict[str, Any]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
            "command": {"value": "sleep 3600"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": CPUS}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": MEM}}]}


# ------------------------------------------------------------------ the clusters' views


def master_running(cluster: Cluster, framework_id: str) -> set[str]:
    return {t["id"] for f in cluster.state()["frameworks"] if f["id"] == framework_id
            for t in f["tasks"] if t["state"] == "TASK_RUNNING"}


def agents_running(cluster: Cluster, framework_id: str) -> set[str]:
    running: set[str] = set()
    for index in range(len(cluster.agents)):
        state = http_json(f"{cluster.agent_url(index)}/state")
        for framework in state["frameworks"]:
            if framework["id"] != framework_id:
                continue
            for executor in framework["executors"]:
                running |= {t["id"] for t in executor["tasks"] if t["state"] == "TASK_RUNNING"}
    return running


def active_agents(cluster: Cluster) -> int:
    return sum(1 for s in cluster.get("/master/slaves")["slaves"] if s["active"])


def check_alive(cluster: Cluster) -> None:
    """Fail at once, with its log, if the master or an agent died on its own (a
    crash on restart would otherwise only show as a cluster that never settles)."""
    for daemon in [cluster.master, *cluster.agents]:
        if daemon is not None and not daemon.alive():
            code = daemon.proc.returncode if daemon.proc is not None else None
            raise AssertionError(f"{daemon.name} exited by itself (status {code}):\n"
                                 f"{daemon.log()[-3000:]}")


def executor_pids(work_dir: Path) -> list[int]:
    """Live executors, from every agent's checkpointed pids (start time checked)."""
    pids = []
    for path in sorted(work_dir.glob(
            "agent*/meta/slaves/*/frameworks/*/executors/*/runs/*/pids/forked.pid")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parts = path.read_text().split()
            pid, start = int(parts[0]), int(parts[1]) if len(parts) > 1 else None
            if checkpoint.same_process(pid, start):
                pids.append(pid)
    return sorted(set(pids))


def kill_everything_under(root: Path) -> int:
    """SIGKILL every process whose working directory lies under ``root``: executors
    and their tasks run in sandboxes there, so they are ours, checkpointed or not."""
    killed = 0
    resolved = str(root.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == resolved or cwd.startswith(resolved + "/"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


async def poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a blocking predicate off the event loop (the driver runs on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while loop.time() < deadline:
        try:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        except (OSError, KeyError, ValueError) as exc:
            last = exc
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


# ------------------------------------------------------------------ the injector


class Injector:
    """Seeded random faults; ``survived`` counts them per kind."""

    def __init__(self, cluster: Cluster, seed: int, gap: tuple[float, float] = FAULT_GAP) -> None:
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.gap = gap
        self.survived: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()

    async def run(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        started = loop.time()
        while True:
            await asyncio.sleep(self.rng.uniform(*self.gap))  # the schedule, not a sync
            check_alive(self.cluster)
            if loop.time() >= deadline:
                return
            kind = self.rng.choices(list(FAULTS), weights=list(FAULTS.values()))[0]
            what = await self.inject(kind)
            out(f"t+{loop.time() - started:5.1f}s fault {kind}: {what}")

    async def inject(self, kind: str) -> str:
        cluster = self.cluster
        if kind == "agent":
            index = self.rng.randrange(len(cluster.agents))
            old = cluster.agents[index].pid
            await asyncio.to_thread(cluster.restart_agent, index)
            self.survived[kind] += 1
            return f"SIGKILLed agent{index} (pid {old}), restarted as {cluster.agents[index].pid}"
        if kind == "executor":
            pids = executor_pids(cluster.work_dir)
            if not pids:
                self.skipped[kind] += 1
                return "no live executor to kill"
            pid = self.rng.choice(pids)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self.survived[kind] += 1
            return f"SIGKILLed executor pid {pid} (of {len(pids)})"
        assert cluster.master is not None
        old = cluster.master.pid
        await asyncio.to_thread(cluster.restart_master)
        self.survived[kind] += 1
        return f"SIGKILLed master (pid {old}), restarted as {cluster.master.pid}"


async def keep_reconciling(keeper: Keeper, driver: SchedulerDriver) -> None:
    while True:
        await asyncio.sleep(3)
        await keeper.reconcile_stragglers(driver)


# ------------------------------------------------------------------ the test


async def test_chaos_keeps_every_acknowledged_task(
    tmp_path: Path, record_property: Callable[[str, object], None],
) -> None:
    seed = int(os.environ.get("MESOS_CHAOS_SEED") or random.SystemRandom().randrange(10**9))
    seconds = float(os.environ.get("MESOS_CHAOS_SECONDS") or 120)
    low, high = (float(x) for x in (os.environ.get("MESOS_CHAOS_GAP") or "3,7").split(","))
    record_property("chaos_seed", seed)
    out(f"seed {seed} (replay with MESOS_CHAOS_SEED={seed}), {seconds:g}s of faults "
        f"every {low:g}-{high:g}s")
    injector: Injector | None = None
    reconciler: asyncio.Task[None] | None = None
    began = time.monotonic()
    try:
        with Cluster(tmp_path, agents=AGENTS, master_flags=MASTER_FLAGS,
                     agent_flags=AGENT_FLAGS) as cluster:
            keeper = Keeper(TARGET)
            driver = SchedulerDriver(cluster.master_url, FW, keeper, backoff=0.2,
                                     backoff_max=2.0, max_reconnects=1000)
            async with driver:
                framework_id = await driver.wait_subscribed(timeout=30)
                reconciler = asyncio.create_task(keep_reconciling(keeper, driver))
                await poll(lambda: len(keeper.running()) >= TARGET, 180,
                           f"{TARGET} tasks to run before the chaos")
                out(f"{TARGET} tasks running after {time.monotonic() - began:.0f}s; chaos begins")

                injector = Injector(cluster, seed, (low, high))
                chaos_began = time.monotonic()
                await injector.run(seconds)
                out(f"faults stop after {time.monotonic() - chaos_began:.0f}s: "
                    f"{dict(injector.survived)}; settling")

                settle_began = time.monotonic()
                views: dict[str, Any] = {}

                def settled() -> bool:
                    views.clear()
                    check_alive(cluster)
                    views["scheduler"] = keeper.running()
                    views["unsettled"] = [(t.task_id, t.states) for t in keeper.unsettled()]
                    views["active_agents"] = active_agents(cluster)
                    views["master"] = master_running(cluster, framework_id)
                    views["agents"] = agents_running(cluster, framework_id)
                    return (views["active_agents"] == AGENTS and driver.subscribed
                            and not views["unsettled"]
                            and views["scheduler"] == views["master"] == views["agents"]
                            and len(views["scheduler"]) == TARGET)

                try:
                    await poll(settled, SETTLE_SECONDS, "the cluster to settle")
                except AssertionError:
                    out(f"did not settle; last views: {describe(views)}")
                    raise
                out(f"settled after {time.monotonic() - settle_began:.0f}s")

                # What the test promises, each spelled out.
                for task in keeper.tasks.values():
                    assert task.last is not None, f"{task.task_id}: never heard of"
                    assert task.last == "TASK_RUNNING" or is_terminal(task.last), task
                running = keeper.running()
                assert running == master_running(cluster, framework_id)
                assert running == agents_running(cluster, framework_id)
                assert len(running) == TARGET
                # Always the same framework, re-subscribed (with its id) to the master
                # now running, which knows it as active. (Two quick master restarts
                # can fall within one reconnection backoff: no count to compare.)
                assert set(keeper.subscriptions) == {framework_id}
                assert len(keeper.subscriptions) >= 1 + min(1, injector.survived["master"])
                frameworks = {f["id"]: f["active"] for f in cluster.state()["frameworks"]}
                assert frameworks == {framework_id: True}
                final = Counter(t.last for t in keeper.tasks.values())
                out(f"{len(keeper.tasks)} tasks launched; last states {dict(final)}; "
                    f"{len(keeper.subscriptions)} subscriptions; {keeper.launch_errors} "
                    f"launch(es) unanswered; revived and killed: {keeper.revived}")
                reconciler.cancel()
                await teardown(driver)
    finally:
        if reconciler is not None:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
        killed = kill_everything_under(tmp_path)
        if injector is not None:
            summary = {"seed": seed, "survived": dict(injector.survived),
                       "skipped": dict(injector.skipped),
                       "wall_seconds": round(time.monotonic() - began, 1)}
            record_property("chaos_faults_survived", json.dumps(summary))
            out(f"faults survived per kind: {json.dumps(summary)}; "
                f"{killed} leftover process(es) killed")
            sys.stdout.flush()


async def teardown(driver: SchedulerDriver) -> None:
    """TEARDOWN, to kill the tasks: cleanup only, so a failure is reported, not
    raised (the finally block SIGKILLs whatever is left)."""
    try:
        await driver.teardown()
    except CALL_ERRORS as exc:
        out(f"teardown: {exc!r}")


def describe(views: dict[str, Any]) -> str:
    if not views:
        return "(none gathered)"
    missing = [k for k in ("scheduler", "active_agents", "master", "agents") if k not in views]
    sched, master, agents = (views.get(k, set()) for k in ("scheduler", "master", "agents"))
    return json.dumps({
        "not_gathered": missing,
        "active_agents": views.get("active_agents"),
        "scheduler_running": len(sched), "master_running": len(master),
        "agents_running": len(agents),
        "only_scheduler": sorted(sched - master - agents),
        "only_master": sorted(master - sched), "only_agents": sorted(agents - sched),
        "scheduler_not_master": sorted(sched - master),
        "scheduler_not_agents": sorted(sched - agents),
        "unsettled": views.get("unsettled", [])[:20],
    })
