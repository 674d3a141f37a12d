"""A real-process cluster for tests: free ports, temporary work dirs, cleanup by PID.

    with Cluster(tmp_path, agents=2) as cluster:
        cluster.master_url   # "127.0.0.1:PORT"
        cluster.state()      # /master/state as a dict

Every process is started in its own session and stopped by its PID (SIGTERM, then
SIGKILL), even when the test body raises.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any


def _die_with_parent() -> None:
    """In the child: be SIGKILLed if the test process dies before it can clean up
    (a killed pytest never reaches the ``with Cluster`` exit). Linux only."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, KeyError, ValueError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"Timed out after {timeout}s waiting for {what} (last error: {last_error!r})")


class Daemon:
    def __init__(self, name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env, preexec_fn=_die_with_parent,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0, sig: int | None = None) -> None:
        """``sig`` (SIGTERM by default), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM if sig is None else sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def reap_executors(agent_args: list[str]) -> int:
    """SIGKILL the sessions of executors an agent started that outlived it (the agent
    was SIGKILLed, or stopped with SIGTERM) and still run. They are found from the
    agent's checkpointed pids; a pid whose start time differs was reused by someone
    else and is left alone. Returns how many sessions were killed."""
    from mesos.agent.checkpoint import same_process
    from mesos.agent.launcher import kill_session

    work_dir = next((a.split("=", 1)[1] for a in agent_args if a.startswith("--work_dir=")), None)
    if work_dir is None:
        return 0
    killed = 0
    for pid_file in Path(work_dir, "meta").glob(
            "slaves/*/frameworks/*/executors/*/runs/*/pids/forked.pid"):
        try:
            fields = pid_file.read_text().split()
            pid = int(fields[0])
            start = int(fields[1]) if len(fields) > 1 else None
        except (OSError, ValueError, IndexError):
            continue
        if start is not None and same_process(pid, start):
            kill_session(pid)
            killed += 1
    return killed


class Cluster:
    """A master and ``agents`` agents as real processes on 127.0.0.1.

    ``master_ip`` moves the master to another local address (the host end of a
    test's veth pair, say), so that an agent started with :meth:`add_agent`'s
    ``prefix``/``ip`` inside a network namespace can reach it.
    """

    def __init__(
        self,
        work_dir: Path,
        agents: int = 1,
        *,
        agent_resources: str | None = "cpus:4;mem:4096;disk:4096;ports:[31000-32000]",
        master_flags: list[str] | None = None,
        agent_flags: list[str] | None = None,
        master_ip: str = "127.0.0.1",
    ) -> None:
        self.work_dir = Path(work_dir)
        self.num_agents = agents
        self.agent_resources = agent_resources
        self.master_flags = master_flags or []
        self.agent_flags = agent_flags or []
        self.master_ip = master_ip
        self.master_port = free_port(master_ip)
        self.master: Daemon | None = None
        self.agents: list[Daemon] = []
        self.agent_ports: list[int] = []
        self.agent_ips: list[str] = []

    @property
    def master_url(self) -> str:
        return f"{self.master_ip}:{self.master_port}"

    def agent_url(self, index: int) -> str:
        """``http://ip:port`` of agent ``index`` (for its /state and friends)."""
        return f"http://{self.agent_ips[index]}:{self.agent_ports[index]}"

    def start(self) -> Cluster:
        master_dir = self.work_dir / "master"
        master_dir.mkdir(parents=True, exist_ok=True)
        self.master = Daemon(
            "master",
            [sys.executable, "-m", "mesos.cli.master", f"--ip={self.master_ip}",
             f"--port={self.master_port}", f"--work_dir={master_dir}",
             "--allocation_interval=100ms", *self.master_flags],
            master_dir / "master.log",
        )
        self.master.start()
        wait_for(lambda: self._health(), 20, "the master to answer /health")
        for _ in range(self.num_agents):
            self.add_agent()
        self.wait_agents(self.num_agents)
        return self

    def restart_master(self, extra_flags: list[str] | None = None) -> Daemon:
        """SIGKILL the master (as a crash would) and start a new one on the same port
        and work dir, so it recovers from the registry there."""
        assert self.master is not None
        old = self.master
        old.kill()
        self.master = Daemon(old.name, [*old.args, *(extra_flags or [])], old.log_path, old.env)
        self.master.start()
        wait_for(lambda: self._health(), 20, "the restarted master to answer /health")
        return self.master

    def _health(self) -> bool:
        if self.master is not None and not self.master.alive():
            raise RuntimeError(f"master exited:\n{self.master.log()[-3000:]}")
        urllib.request.urlopen(f"http://{self.master_url}/health", timeout=1).close()
        return True

    def add_agent(
        self, extra_flags: list[str] | None = None, *, ip: str = "127.0.0.1",
        prefix: list[str] | None = None,
    ) -> Daemon:
        """Start one more agent listening on (and advertising) ``ip``. ``prefix`` runs
        it under a wrapper that must exec it, such as ``nsenter --net=...``, so that
        the PID held is the agent's own; restarts keep the prefix."""
        index = len(self.agents)
        port = free_port()  # in a fresh namespace any port is free
        agent_dir = self.work_dir / f"agent{index}"
        agent_dir.mkdir(parents=True, exist_ok=True)
        args = [*(prefix or []), sys.executable, "-m", "mesos.cli.agent",
                f"--master={self.master_url}", f"--ip={ip}", f"--port={port}",
                f"--work_dir={agent_dir}",
                "--registration_backoff_factor=100ms", *self.agent_flags, *(extra_flags or [])]
        if ip != "127.0.0.1":
            args.append(f"--advertise_ip={ip}")
        if self.agent_resources:
            args.append(f"--resources={self.agent_resources}")
        agent = Daemon(f"agent{index}", args, agent_dir / "agent.log")
        agent.start()
        self.agents.append(agent)
        self.agent_ports.append(port)
        self.agent_ips.append(ip)
        return agent

    def restart_agent(self, index: int, extra_flags: list[str] | None = None) -> Daemon:
        """Start agent ``index`` again with the same flags (plus ``extra_flags``), port
        and work dir. An agent still running is SIGKILLed first (by its PID), as a
        crash would.
        """
        old = self.agents[index]
        old.kill()
        agent = Daemon(old.name, [*old.args, *(extra_flags or [])], old.log_path, old.env)
        agent.start()
        self.agents[index] = agent
        return agent

    def wait_agents(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        if count == 0:
            return []
        def registered() -> list[dict[str, Any]] | None:
            for agent in self.agents:
                if not agent.alive():
                    raise RuntimeError(f"{agent.name} exited:\n{agent.log()[-3000:]}")
            slaves = self.get("/master/slaves")["slaves"]
            active = [s for s in slaves if s["active"]]
            return active if len(active) >= count else None

        result: list[dict[str, Any]] = wait_for(registered, timeout, f"{count} agent(s) to register")
        return result

    def get(self, path: str) -> Any:
        return http_json(f"http://{self.master_url}{path}")

    def state(self) -> Any:
        return self.get("/master/state")

    def stop(self) -> None:
        # SIGUSR1, not SIGTERM: an agent leaves checkpointed executors running on SIGTERM
        # (for the next agent to recover), and no agent will come after this one.
        for agent in self.agents:
            agent.stop(sig=signal.SIGUSR1)
        for agent in self.agents:
            reap_executors(agent.args)
        if self.master is not None:
            self.master.stop()

    def logs(self) -> str:
        parts = []
        for daemon in ([self.master] if self.master else []) + self.agents:
            parts.append(f"==== {daemon.name} ====\n{daemon.log()[-4000:]}")
        return "\n".join(parts)

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and os.environ.get("MESOS_TEST_SHOW_LOGS", "1") == "1":
            sys.stderr.write(self.logs())
        self.stop()
