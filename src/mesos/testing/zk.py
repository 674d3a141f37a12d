"""A real standalone ZooKeeper server for tests and ``make run-ha``.

    with ZooKeeperServer(tmp_path) as zk:
        zk.hosts          # "127.0.0.1:PORT"
        zk.url("/mesos")  # "zk://127.0.0.1:PORT/mesos"
        zk.stop(); zk.start()   # an outage; data and sessions survive the restart

``python -m mesos.testing.zk --port 2181 --dir /tmp/zk`` runs one in the foreground
(``make run-ha``) until Ctrl-C.

It runs Debian's ``zookeeper`` package jars with the system Java, listening on a free
loopback port with its data in the given directory, the admin server off and a short
tick (so sessions of one to a few seconds are allowed). It is stopped by its PID,
and killed if the thread that started it dies first (start it from a long-lived
thread, not an ``asyncio.to_thread`` worker).
When the package is missing, :class:`ZooKeeperNotInstalled` says how to install it:
tests must fail on it, never skip.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from mesos.testing.cluster import _die_with_parent, free_port

ZOOKEEPER_JARS = "/usr/share/java/zookeeper.jar"
# The jar's manifest names its dependencies; add a logger binding so errors reach the log.
_LOGGER_JAR = "/usr/share/java/slf4j-simple.jar"
_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
TICK_MS = 250  # sessions may last 2 ticks .. maxSessionTimeout


class ZooKeeperNotInstalled(RuntimeError):
    def __init__(self, missing: str) -> None:
        super().__init__(
            f"ZooKeeper is not installed ({missing} not found): "
            "run scripts/install-zookeeper.sh as root (or `make test`, which runs it)"
        )


def java_command() -> list[str]:
    """The JVM command line prefix for the packaged server, or ZooKeeperNotInstalled."""
    java = shutil.which("java")
    if java is None:
        raise ZooKeeperNotInstalled("java")
    if not glob.glob(ZOOKEEPER_JARS):
        raise ZooKeeperNotInstalled(ZOOKEEPER_JARS)
    classpath = ZOOKEEPER_JARS + (f":{_LOGGER_JAR}" if os.path.exists(_LOGGER_JAR) else "")
    return [
        java, "-Xms32m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-Dzookeeper.admin.enableServer=false", "-cp", classpath, _MAIN,
    ]


class ZooKeeperServer:
    def __init__(self, work_dir: Path, port: int | None = None,
                 max_session_timeout: float = 60.0) -> None:
        self.work_dir = Path(work_dir)
        self.port = port or free_port()
        self.max_session_timeout = max_session_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.work_dir / "zookeeper.log"

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/mesos") -> str:
        return f"zk://{self.hosts}{path}"

    def _write_config(self) -> Path:
        data = self.work_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "zoo.cfg"
        config.write_text(
            f"tickTime={TICK_MS}\n"
            f"dataDir={data}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            f"minSessionTimeout={2 * TICK_MS}\n"
            f"maxSessionTimeout={int(self.max_session_timeout * 1000)}\n"
            "4lw.commands.whitelist=ruok,srvr\n"
            # Tests write small data; don't let fsync stalls on a busy disk slow them.
            "forceSync=no\n"
            "autopurge.purgeInterval=0\n"
        )
        return config

    def start(self, timeout: float = 60.0) -> ZooKeeperServer:
        """Start the server and return once it answers ``ruok`` with ``imok``."""
        command = [*java_command(), str(self._write_config())]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"ZooKeeper exited with {self.proc.returncode} on port {self.port}:\n"
                    + self.log()[-3000:])
            if self.ok():
                return self
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"ZooKeeper did not answer on {self.hosts} within {timeout}s:\n"
                           + self.log()[-3000:])

    def ok(self) -> bool:
        """Whether the server answers the ``ruok`` four-letter command."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as s:
                s.sendall(b"ruok")
                return s.recv(4) == b"imok"
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (then SIGKILL) the server by its PID; the data directory stays."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: an abrupt outage, clients see their connections drop."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> ZooKeeperServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Run a server in the foreground until SIGINT/SIGTERM, for a local HA cluster."""
    parser = argparse.ArgumentParser(prog="python -m mesos.testing.zk", description=main.__doc__)
    parser.add_argument("--port", type=int, default=2181, help="loopback port (default 2181)")
    parser.add_argument("--dir", default="/tmp/mesos-zookeeper", help="data and log directory")
    args = parser.parse_args(argv)
    server = ZooKeeperServer(Path(args.dir), port=args.port)
    try:
        server.start()
    except (ZooKeeperNotInstalled, RuntimeError, TimeoutError) as exc:
        print(f"zookeeper: {exc}", file=sys.stderr)
        return 1
    print(f"zookeeper: serving on {server.hosts} (data in {args.dir}); Ctrl-C stops it",
          flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if server.proc is None or server.proc.poll() is not None:
                print("zookeeper: the server exited; see " + str(server.log_path), file=sys.stderr)
                return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
