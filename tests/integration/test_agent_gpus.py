"""GPUs as a resource, end to end: an agent with ``gpu/nvidia`` isolation advertises
the GPUs ``nvidia-smi`` lists, and the master offers that agent only to frameworks with
the GPU_RESOURCES capability.

This host has no Nvidia GPU: the test puts a FAKE ``nvidia-smi`` (two GPUs) first on
the agent's PATH. Nothing is launched on the GPUs (the containerizer tests check the
devices cgroup with stand-in device nodes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, wait_for
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_containerizer_isolators import FAKE_NVIDIA_SMI

pytestmark = pytest.mark.slow



@pytest.fixture
def gpu_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/cgroup/devices"):
        pytest.fail("gpu/nvidia isolation needs root and the cgroups v1 devices controller "
                    "(/sys/fs/cgroup/devices)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(FAKE_NVIDIA_SMI)
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    root = f"mesos-test-{os.getpid()}-gpus"
    flags = ["--isolation=cgroups/devices,gpu/nvidia", "--launcher=linux",
             f"--cgroups_root={root}"]
    try:
        with Cluster(tmp_path, agents=1, agent_flags=flags) as cluster:
            yield cluster
    finally:
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                (hierarchy / root).rmdir()  # empty by now: nothing was launched


def scalar(resources: list[dict[str, Any]], name: str) -> float:
    return sum(r["scalar"]["value"] for r in resources if r["name"] == name)


async def test_gpus_are_advertised_and_offered_only_to_gpu_frameworks(
        gpu_cluster: Cluster) -> None:
    agents = wait_for(lambda: gpu_cluster.get("/master/slaves")["slaves"], 20, "the agent")
    assert agents[0]["resources"]["gpus"] == 2  # from the fake nvidia-smi, not --resources

    plain = RawScheduler(gpu_cluster.master_url)
    gpu = RawScheduler(gpu_cluster.master_url)
    try:
        await plain.subscribe({"user": "root", "name": "plain"})
        with pytest.raises(TimeoutError):
            # Allocation runs every second: three cycles pass without an offer.
            await plain.next_event("OFFERS", timeout=3.5)
        await gpu.subscribe({"user": "root", "name": "gpu",
                             "capabilities": [{"type": "GPU_RESOURCES"}]})
        offers = (await gpu.next_event("OFFERS", timeout=15))["offers"]["offers"]
        assert scalar(offers[0]["resources"], "gpus") == 2
    finally:
        await plain.close()
        await gpu.close()
