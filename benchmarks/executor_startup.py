"""Start-up time and memory of the command executor, the floor of every task launch.

Spawns the executor the way the agent does (``python -S -I <bytecode>``; and, for
comparison, from its source file) against a listening socket that stands in for the
agent, and measures the time from spawn until its SUBSCRIBE request arrives, and its
peak RSS (VmHWM) once started.

    .venv/bin/python benchmarks/executor_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from mesos.executor import command
from mesos.executor.command import executor_argv


def one_run(argv: list[str], sandbox: str) -> tuple[float, float]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        env = {
            "MESOS_AGENT_ENDPOINT": f"127.0.0.1:{port}",
            "MESOS_FRAMEWORK_ID": "bench-framework",
            "MESOS_EXECUTOR_ID": "bench-executor",
            "MESOS_DIRECTORY": sandbox,
            "MESOS_SANDBOX": sandbox,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            server.settimeout(10)
            conn, _ = server.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                elapsed = (time.perf_counter() - start) * 1000
                time.sleep(0.05)  # let it settle in its wait for the stream
                with open(f"/proc/{proc.pid}/status") as status:
                    line = next(x for x in status if x.startswith("VmHWM"))
                rss = int(line.split()[1]) / 1024
        finally:
            proc.kill()
            proc.wait()
    return elapsed, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as sandbox:
        variants = {
            "bytecode (as the agent starts it)": executor_argv(sys.executable, cache_dir=sandbox),
            "source file": [sys.executable, "-S", "-I", os.path.abspath(command.__file__)],
        }
        for name, argv in variants.items():
            times, rss = [], []
            for i in range(args.runs):
                t, r = one_run(argv, sandbox)
                times.append(t)
                rss.append(r)
                print(f"\r{name}: run {i + 1}/{args.runs}", end="", file=sys.stderr, flush=True)
            print("\r", end="", file=sys.stderr)
            print(f"{name}: spawn -> SUBSCRIBE median {statistics.median(times):.1f} ms "
                  f"(min {min(times):.1f}, max {max(times):.1f}); peak RSS median "
                  f"{statistics.median(rss):.1f} MiB  [{args.runs} runs]")


if __name__ == "__main__":
    main()
