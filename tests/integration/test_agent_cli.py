"""``mesos-agent`` on the command line: --help, and bad flags exit 1 with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run_agent(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}
    base["MESOS_LAUNCHER"] = "posix"  # no cgroups (see tests/conftest.py)
    return subprocess.run(
        [sys.executable, "-m", "mesos.cli.agent", *args],
        capture_output=True, text=True, timeout=30, env={**base, **(env or {})},
    )


def test_help_lists_every_flag_with_its_default() -> None:
    result = run_agent("--help")
    assert result.returncode == 0
    for text in ("--master", "--work_dir", "--resources", "default: 5051",
                 "default: 1mins", "default: posix/cpu,posix/mem", "MESOS_WORK_DIR"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--resources=cpus:x",), "cpus"),
        (("--resources=cpus;mem:1",), "resources"),
        (("--attributes=rack",), "rack"),
        (("--master=zk:///mesos",), "ZooKeeper server"),
        (("--master=zk://h:notaport/mesos",), "notaport"),
        (("--master=nohost",), "host:port"),
        (("--bogus=1",), "bogus"),
        (("--gc_disk_headroom=2",), "gc_disk_headroom"),
        (("--isolation=cgroups/bogus",), "cgroups/bogus"),
        (("--launcher=bogus",), "--launcher"),
    ],
)
def test_bad_flags_exit_1_with_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    flags = {"--master=127.0.0.1:1", f"--work_dir={tmp_path}"}
    given = {a.split("=")[0] for a in args}
    base = [f for f in flags if f.split("=")[0] not in given]
    result = run_agent(*base, *args)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mesos-agent: ") and needle in lines[0]


def test_required_flags_and_environment_fallback(tmp_path: Path) -> None:
    result = run_agent(f"--work_dir={tmp_path}")
    assert result.returncode == 1 and "master" in result.stderr
    result = run_agent(env={"MESOS_MASTER": "127.0.0.1:1", "MESOS_WORK_DIR": str(tmp_path),
                            "MESOS_RESOURCES": "cpus:bad"})
    assert result.returncode == 1 and "cpus" in result.stderr
