"""The Mesos containerizer: a launcher plus isolators (DESIGN.md §3).

Entry point for the agent: ``MesosContainerizer.create(ContainerizerFlags(...))``.
"""

from mesos.agent.containerizer.cgroups import Cgroups, CgroupsError, open_cgroups
from mesos.agent.containerizer.containerizer import (
    ContainerizerError,
    ContainerTermination,
    MesosContainerizer,
)
from mesos.agent.containerizer.isolator import (
    ContainerConfig,
    ContainerizerFlags,
    ContainerState,
    Isolator,
    LaunchInfo,
    Limitation,
)
from mesos.agent.containerizer.isolators import IsolationError
from mesos.agent.containerizer.launcher import LaunchError

__all__ = [
    "Cgroups",
    "CgroupsError",
    "ContainerConfig",
    "ContainerState",
    "ContainerTermination",
    "ContainerizerError",
    "ContainerizerFlags",
    "IsolationError",
    "Isolator",
    "LaunchError",
    "LaunchInfo",
    "Limitation",
    "MesosContainerizer",
    "open_cgroups",
]
