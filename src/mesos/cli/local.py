"""``mesos-local``: a master and N agents on this machine, in one command.

Each daemon is its own process (the same ``mesos-master`` / ``mesos-agent`` a real
cluster runs), with its own port and work dir under ``--work_dir``. Stopping
``mesos-local`` (Ctrl-C or SIGTERM) stops them all, by PID.

With ``--zk=zk://127.0.0.1:2181/mesos`` (a ZooKeeper you run, e.g. ``python -m
mesos.testing.zk``; ``make run-ha`` does both) it starts ``--num_masters`` masters
that elect a leader there, on ``--port`` and the next free ports, and agents that
follow the leader. It then also acts as their supervisor: a master that exits (as a
leader does when it loses leadership) is started again as a standby.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from mesos.flags import Duration, Flag, exit_with_error, parse_flags, redact_credentials

PROG = "mesos-local"

FLAGS = [
    Flag("num_agents", int, 1, "Number of agents to start.", aliases=("num_slaves",)),
    Flag("num_masters", int, 1, "Number of masters to start (more than one needs --zk)."),
    Flag("zk", str, None,
         "ZooKeeper URL the masters elect their leader in and the agents follow it through "
         "(e.g. 'zk://127.0.0.1:2181/mesos'); the ZooKeeper server is not started here."),
    Flag("zk_session_timeout", Duration, "10secs", "The masters' --zk_session_timeout."),
    Flag("ip", str, "127.0.0.1", "IP address the master and agents listen on."),
    Flag("port", int, 5050, "Port of the master; agents take the next free ports after it."),
    Flag("work_dir", str, "/tmp/mesos-local", "Parent of the master's and agents' work dirs."),
    Flag("resources", str, None, "Resources of each agent (default: detected)."),
    Flag("attributes", str, None, "Attributes of each agent."),
    Flag("allocation_interval", Duration, "1secs", "The master's --allocation_interval."),
    Flag("offer_timeout", Duration, None, "The master's --offer_timeout."),
    Flag("agent_ping_timeout", Duration, "15secs", "The master's --agent_ping_timeout."),
    Flag("max_agent_ping_timeouts", int, 5, "The master's --max_agent_ping_timeouts."),
    Flag("logging_level", str, "INFO", "Log level of every daemon."),
    Flag("start_timeout", Duration, "30secs", "How long to wait for the cluster to come up."),
]


def _port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
    return True


def _agent_ports(ip: str, master_port: int, count: int) -> list[int]:
    ports: list[int] = []
    candidate = master_port + 1
    while len(ports) < count and candidate < 65536:
        if _port_free(ip, candidate):
            ports.append(candidate)
        candidate += 1
    if len(ports) < count:
        exit_with_error(PROG, f"Could not find {count} free ports above {master_port}")
    return ports


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.loads(response.read())


class Cluster:
    def __init__(self, flags: Any) -> None:
        self.flags = flags
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        # name -> (module, args, log path), to start a master again (HA mode).
        self.specs: dict[str, tuple[str, list[str], str]] = {}
        self.master_ports: list[int] = []

    @property
    def ha(self) -> bool:
        return self.flags.zk is not None

    def _spawn(self, name: str, module: str, args: list[str], log_path: str) -> None:
        log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.procs = [(n, p) for n, p in self.procs if n != name] + [(name, proc)]
        self.specs[name] = (module, args, log_path)

    def restart(self, name: str) -> None:
        """Start ``name`` again with the same flags (a supervisor's job)."""
        module, args, log_path = self.specs[name]
        self._spawn(name, module, args, log_path)

    def start(self) -> None:
        f = self.flags
        os.makedirs(f.work_dir, exist_ok=True)
        if not _port_free(f.ip, f.port):
            exit_with_error(PROG, f"Port {f.port} on {f.ip} is already in use (is another master running?)")
        self.master_ports = [f.port, *_agent_ports(f.ip, f.port, f.num_masters - 1)]
        for i, master_port in enumerate(self.master_ports):
            name = "master" if not self.ha else f"master{i + 1}"
            master_dir = os.path.join(f.work_dir, name)
            os.makedirs(master_dir, exist_ok=True)
            master_args = [
                f"--ip={f.ip}", f"--port={master_port}", f"--work_dir={master_dir}",
                f"--allocation_interval={_dur(f.allocation_interval)}",
                f"--agent_ping_timeout={_dur(f.agent_ping_timeout)}",
                f"--max_agent_ping_timeouts={f.max_agent_ping_timeouts}",
                f"--logging_level={f.logging_level}",
            ]
            if f.offer_timeout:
                master_args.append(f"--offer_timeout={_dur(f.offer_timeout)}")
            if self.ha:
                master_args += [f"--zk={f.zk}", f"--quorum={f.num_masters // 2 + 1}",
                                f"--zk_session_timeout={_dur(f.zk_session_timeout)}"]
            self._spawn(name, "mesos.cli.master", master_args,
                        os.path.join(master_dir, "master.log"))
        for master_port in self.master_ports:
            self._wait_http(f"http://{f.ip}:{master_port}/health", "master")
        if self.ha:
            self._wait_leader()
        master = f.zk if self.ha else f"{f.ip}:{f.port}"
        last_master = self.master_ports[-1]
        for i, port in enumerate(_agent_ports(f.ip, last_master, f.num_agents)):
            agent_dir = os.path.join(f.work_dir, f"agent{i + 1}")
            os.makedirs(agent_dir, exist_ok=True)
            args = [
                f"--master={master}", f"--ip={f.ip}", f"--port={port}",
                f"--work_dir={agent_dir}", f"--logging_level={f.logging_level}",
            ]
            if f.resources:
                args.append(f"--resources={f.resources}")
            if f.attributes:
                args.append(f"--attributes={f.attributes}")
            self._spawn(f"agent{i + 1}", "mesos.cli.agent", args, os.path.join(agent_dir, "agent.log"))
        self._wait_agents()

    def _check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                self.stop()
                exit_with_error(PROG, f"{name} exited with status {proc.returncode} during start-up "
                                      f"(see its log under {self.flags.work_dir})")

    def _wait_http(self, url: str, what: str) -> None:
        deadline = time.monotonic() + float(self.flags.start_timeout)
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                urllib.request.urlopen(url, timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        exit_with_error(PROG, f"Timed out waiting for the {what} at {url}")

    def leader(self) -> str | None:
        """``ip:port`` of the leading master, as the masters say (None: none yet)."""
        f = self.flags
        for port in self.master_ports:
            try:
                if _get_json(f"http://{f.ip}:{port}/metrics/snapshot")["master/elected"]:
                    return f"{f.ip}:{port}"
            except (OSError, KeyError, ValueError):
                continue
        return None

    def _wait_leader(self) -> None:
        deadline = time.monotonic() + float(self.flags.start_timeout)
        while time.monotonic() < deadline:
            self._check_alive()
            if self.leader() is not None:
                return
            time.sleep(0.1)
        self.stop()
        exit_with_error(PROG, "No master was elected in time (is ZooKeeper up at "
                        f"{redact_credentials(self.flags.zk or '')}?)")

    def _wait_agents(self) -> None:
        f = self.flags
        deadline = time.monotonic() + float(f.start_timeout)
        registered = 0
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                # A standby redirects (307) to the leader; urllib follows.
                registered = len(_get_json(f"http://{f.ip}:{f.port}/master/slaves")["slaves"])
            except (OSError, KeyError, ValueError):
                registered = 0
            if registered >= f.num_agents:
                return
            time.sleep(0.05)
        self.stop()
        exit_with_error(PROG, f"Only {registered} of {f.num_agents} agents registered in time")

    def stop(self) -> None:
        # Agents get SIGUSR1 (shut every executor down, as Mesos' agent does on it): on
        # SIGTERM they would leave checkpointed executors running for a recovery that a
        # local cluster going away will never do.
        for name, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGUSR1 if name.startswith("agent") else signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def describe(self) -> str:
        f = self.flags
        lines = [f"Mesos local cluster is up ({f.num_agents} agent(s)); Ctrl-C stops it."]
        if self.ha:
            leader = self.leader()
            lines.append(f"  masters elect a leader in {f.zk}; a master that exits is restarted")
            for port in self.master_ports:
                role = "leader" if leader == f"{f.ip}:{port}" else "standby"
                lines.append(f"  master   http://{f.ip}:{port}   ({role})")
        else:
            lines.append(f"  master   http://{f.ip}:{f.port}   (state: http://{f.ip}:{f.port}/master/state)")
        try:
            for agent in _get_json(f"http://{f.ip}:{f.port}/master/slaves")["slaves"]:
                port = agent["pid"].rsplit(":", 1)[-1]
                lines.append(f"  agent    http://{f.ip}:{port}   id {agent['id']}")
        except (OSError, KeyError, ValueError):
            pass
        lines.append(f"  logs and sandboxes under {f.work_dir}")
        execute = os.path.join(os.path.dirname(sys.executable), "mesos-execute")
        master = f.zk if self.ha else f"{f.ip}:{f.port}"
        lines.append(f"  try: {execute} --master={master} --name=hello --command='echo hello'")
        return "\n".join(lines)


def _dur(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def main(argv: list[str] | None = None) -> None:
    flags = parse_flags(PROG, FLAGS, sys.argv[1:] if argv is None else argv, os.environ)
    if flags.num_agents < 0:
        exit_with_error(PROG, "--num_agents must not be negative")
    if flags.num_masters < 1:
        exit_with_error(PROG, "--num_masters must be at least 1")
    if flags.num_masters > 1 and flags.zk is None:
        exit_with_error(PROG, "--num_masters above 1 needs --zk (the masters elect a leader there)")
    cluster = Cluster(flags)
    stopping = False

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster.start()
    print(cluster.describe(), flush=True)
    while not stopping:
        for name, proc in list(cluster.procs):
            if proc.poll() is None:
                continue
            if cluster.ha and name.startswith("master"):
                # A leader that lost leadership exits; bring it back as a standby.
                print(f"{PROG}: {name} exited with status {proc.returncode}; restarting it",
                      file=sys.stderr, flush=True)
                cluster.restart(name)
                continue
            print(f"{PROG}: {name} exited with status {proc.returncode}; stopping", file=sys.stderr)
            cluster.stop()
            sys.exit(1)
        time.sleep(0.2)
    print("Stopping the local cluster", flush=True)
    cluster.stop()


if __name__ == "__main__":
    main()
