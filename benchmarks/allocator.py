"""Allocator benchmark, modelled on Mesos' `hierarchical_allocator_benchmarks.cpp`.

For every (agents, frameworks, mode) it builds a cluster in a fresh child process
and measures:

* **full cycle**: `allocate(now)` right after every agent and framework was added,
  when every agent is free (the first cycle; then twice more after recovering
  everything, the best of the three is reported next to the first);
* **incremental**: one agent's resources are recovered and `allocate(now)` runs
  again (median of 50, a different agent each time);
* **peak RSS** of the child, and the allocator's own memory (tracemalloc: the state
  after setup, and the extra peak during one full cycle, measured in a second,
  traced pass so that tracing does not slow the timed one).

With `--repeat N` every configuration runs in N fresh children: the table shows the
median first cycle, the best cycle of all, the median incremental cycle and the
largest memory figures (a shared 2-core VM is noisy; medians say more than one run).

Modes:

* `plain`: no quota; frameworks spread round-robin over `min(50, frameworks)` roles;
* `quota`: as plain, plus guarantees for half of the roles (together half of the
  cluster), limits (1.5x the guarantee) on every other quota role, and one role
  without frameworks guaranteed a tenth of the cluster, so headroom is held back
  through the whole fair-share stage;
* `declines`: every framework declines every offer of the first cycle with
  `refuse_seconds=3600`; the timed cycle re-offers every agent past the filter.

Agents are `cpus:24;mem:4096;disk:4096;ports:[31000-32000]` as in Mesos' benchmarks.

    .venv/bin/python benchmarks/allocator.py                 # the full table
    .venv/bin/python benchmarks/allocator.py --agents 1000 --frameworks 10 --modes plain
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from mesos.allocator import HierarchicalAllocator
from mesos.resources import Resources

AGENT = "cpus:24;mem:4096;disk:4096;ports:[31000-32000]"
MODES = ("plain", "quota", "declines")


def build(agents: int, frameworks: int, mode: str) -> HierarchicalAllocator:
    allocator = HierarchicalAllocator()
    total = Resources.parse(AGENT)
    for i in range(agents):
        allocator.add_agent(f"agent-{i:05d}", total)
    roles = [f"role-{i:02d}" for i in range(min(50, frameworks))]
    for j in range(frameworks):
        allocator.add_framework(f"framework-{j:04d}", [roles[j % len(roles)]])
    if mode == "quota":
        quota_roles = roles[: max(1, len(roles) // 2)]
        cpus = 24 * agents * 0.5 / len(quota_roles)
        mem = 4096 * agents * 0.5 / len(quota_roles)
        for k, role in enumerate(quota_roles):
            guarantees = {"cpus": cpus, "mem": mem}
            limits = {"cpus": cpus * 1.5, "mem": mem * 1.5} if k % 2 else None
            allocator.update_quota(role, guarantees, limits)
        allocator.update_quota("idle", {"cpus": 2.4 * agents, "mem": 409.6 * agents})
    return allocator


def recover_all(allocator: HierarchicalAllocator, offers: list[Any], now: float) -> None:
    for offer in offers:
        allocator.recover_resources(
            offer.framework_id, offer.agent_id, offer.resources, None, now, role=offer.role
        )


def timed_cycles(allocator: HierarchicalAllocator, mode: str) -> dict[str, Any]:
    now = 0.0
    start = time.perf_counter()
    offers = allocator.allocate(now)
    first = time.perf_counter() - start
    cycles = [first]
    if mode == "declines":
        for offer in offers:
            allocator.recover_resources(
                offer.framework_id, offer.agent_id, offer.resources, 3600.0, now, role=offer.role
            )
        now += 1.0
        start = time.perf_counter()
        offers = allocator.allocate(now)
        first = time.perf_counter() - start
        cycles = [first]
    for _ in range(2):
        recover_all(allocator, offers, now)
        now += 1.0
        start = time.perf_counter()
        offers = allocator.allocate(now)
        cycles.append(time.perf_counter() - start)
    incremental = []
    for offer in offers[:50]:
        recover_all(allocator, [offer], now)
        start = time.perf_counter()
        allocator.allocate(now)
        incremental.append(time.perf_counter() - start)
    return {
        "offers": len(offers),
        "first_s": first,
        "best_s": min(cycles),
        "incremental_ms": statistics.median(incremental) * 1000 if incremental else 0.0,
    }


def traced(agents: int, frameworks: int, mode: str) -> dict[str, float]:
    gc.collect()
    tracemalloc.start()
    allocator = build(agents, frameworks, mode)
    state, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    allocator.allocate(0.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"state_mib": state / 2**20, "cycle_peak_mib": (peak - state) / 2**20}


def one(agents: int, frameworks: int, mode: str, memory: bool) -> dict[str, Any]:
    start = time.perf_counter()
    allocator = build(agents, frameworks, mode)
    setup = time.perf_counter() - start
    result = timed_cycles(allocator, mode)
    result["setup_s"] = setup
    result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del allocator
    if memory:
        result.update(traced(agents, frameworks, mode))
    return result


def run_child(agents: int, frameworks: int, mode: str, memory: bool) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", f"{agents},{frameworks},{mode}"]
    if not memory:
        argv.append("--no-memory")
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=os.environ)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median first / incremental, best cycle, largest memory over repeated runs."""
    result = dict(runs[0])
    result["first_s"] = statistics.median(r["first_s"] for r in runs)
    result["best_s"] = min(r["best_s"] for r in runs)
    result["incremental_ms"] = statistics.median(r["incremental_ms"] for r in runs)
    for key in ("rss_mib", "state_mib", "cycle_peak_mib"):
        if key in result:
            result[key] = max(r[key] for r in runs)
    return result


def table(rows: list[tuple[int, int, str, dict[str, Any]]]) -> str:
    lines = [
        "| agents | frameworks | mode | full cycle (first) | full cycle (best) "
        "| incremental (median) | offers | allocator state | cycle peak | peak RSS |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for agents, frameworks, mode, r in rows:
        memory = (
            f"{r['state_mib']:.1f} MiB | {r['cycle_peak_mib']:.1f} MiB"
            if "state_mib" in r
            else "- | -"
        )
        lines.append(
            f"| {agents:,} | {frameworks:,} | {mode} | {r['first_s'] * 1000:.1f} ms"
            f" | {r['best_s'] * 1000:.1f} ms | {r['incremental_ms']:.3f} ms | {r['offers']:,}"
            f" | {memory} | {r['rss_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--frameworks", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--no-memory", action="store_true", help="skip the traced pass")
    parser.add_argument("--repeat", type=int, default=1, help="fresh runs per configuration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        agents, frameworks, mode = args.child.split(",")
        print(json.dumps(one(int(agents), int(frameworks), mode, not args.no_memory)))
        return
    configs = [(a, f, m) for a in args.agents for f in args.frameworks for m in args.modes]
    rows = []
    for i, (agents, frameworks, mode) in enumerate(configs, 1):
        print(
            f"\r[{i}/{len(configs)}] {agents} agents x {frameworks} frameworks, {mode} ...   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        runs = [
            run_child(agents, frameworks, mode, not args.no_memory)
            for _ in range(max(1, args.repeat))
        ]
        rows.append((agents, frameworks, mode, combine(runs)))
    print(file=sys.stderr)
    print(table(rows))


if __name__ == "__main__":
    main()
