"""Enum value names of the Mesos v1 protos, as ``Literal`` unions and name sets.

Mesos' JSON carries enums as their value names (``"TASK_RUNNING"``); these aliases are
what the wire Structs in :mod:`mesos.v1.mesos` use, re-exported from there.
"""

from __future__ import annotations

from typing import Literal, get_args

TaskState = Literal[
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
]
TASK_STATES: frozenset[str] = frozenset(get_args(TaskState))
TERMINAL_STATES: frozenset[str] = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_LOST",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)

# Enum number of each task state (for the protobuf-ish places that need it).
TASK_STATE_NUMBERS: dict[str, int] = {
    "TASK_STARTING": 0,
    "TASK_RUNNING": 1,
    "TASK_FINISHED": 2,
    "TASK_FAILED": 3,
    "TASK_KILLED": 4,
    "TASK_LOST": 5,
    "TASK_STAGING": 6,
    "TASK_ERROR": 7,
    "TASK_KILLING": 8,
    "TASK_DROPPED": 9,
    "TASK_UNREACHABLE": 10,
    "TASK_GONE": 11,
    "TASK_GONE_BY_OPERATOR": 12,
    "TASK_UNKNOWN": 13,
}

TaskStatusSource = Literal["SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR"]
SOURCES: frozenset[str] = frozenset(get_args(TaskStatusSource))

TaskStatusReason = Literal[
    "REASON_COMMAND_EXECUTOR_FAILED",
    "REASON_EXECUTOR_TERMINATED",
    "REASON_EXECUTOR_UNREGISTERED",
    "REASON_FRAMEWORK_REMOVED",
    "REASON_GC_ERROR",
    "REASON_INVALID_FRAMEWORKID",
    "REASON_INVALID_OFFERS",
    "REASON_MASTER_DISCONNECTED",
    "REASON_CONTAINER_LIMITATION_MEMORY",
    "REASON_RECONCILIATION",
    "REASON_AGENT_DISCONNECTED",
    "REASON_AGENT_REMOVED",
    "REASON_AGENT_RESTARTED",
    "REASON_AGENT_UNKNOWN",
    "REASON_TASK_INVALID",
    "REASON_TASK_UNAUTHORIZED",
    "REASON_TASK_UNKNOWN",
    "REASON_CONTAINER_PREEMPTED",
    "REASON_RESOURCES_UNKNOWN",
    "REASON_CONTAINER_LIMITATION",
    "REASON_CONTAINER_LIMITATION_DISK",
    "REASON_CONTAINER_LAUNCH_FAILED",
    "REASON_CONTAINER_UPDATE_FAILED",
    "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
    "REASON_EXECUTOR_REREGISTRATION_TIMEOUT",
    "REASON_TASK_GROUP_INVALID",
    "REASON_TASK_GROUP_UNAUTHORIZED",
    "REASON_IO_SWITCHBOARD_EXITED",
    "REASON_TASK_CHECK_STATUS_UPDATED",
    "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED",
    "REASON_TASK_KILLED_DURING_LAUNCH",
    "REASON_AGENT_REMOVED_BY_OPERATOR",
    "REASON_AGENT_REREGISTERED",
    "REASON_MAX_COMPLETION_TIME_REACHED",
    "REASON_AGENT_DRAINING",
]
REASONS: frozenset[str] = frozenset(get_args(TaskStatusReason))

FrameworkCapabilityType = Literal[
    "UNKNOWN",
    "REVOCABLE_RESOURCES",
    "TASK_KILLING_STATE",
    "GPU_RESOURCES",
    "SHARED_RESOURCES",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "RESERVATION_REFINEMENT",
    "REGION_AWARE",
]
FRAMEWORK_CAPABILITIES: frozenset[str] = frozenset(get_args(FrameworkCapabilityType))

MasterCapabilityType = Literal["UNKNOWN", "AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"]
MASTER_CAPABILITIES: frozenset[str] = frozenset(get_args(MasterCapabilityType))

ValueType = Literal["SCALAR", "RANGES", "SET", "TEXT"]
ReservationType = Literal["UNKNOWN", "STATIC", "DYNAMIC"]
DiskSourceType = Literal["UNKNOWN", "PATH", "MOUNT", "BLOCK", "RAW"]
VolumeMode = Literal["RW", "RO"]
ContainerType = Literal["DOCKER", "MESOS"]
DockerNetwork = Literal["HOST", "BRIDGE", "NONE", "USER"]
ImageType = Literal["APPC", "DOCKER"]
NetworkProtocol = Literal["IPv4", "IPv6"]
ExecutorType = Literal["UNKNOWN", "DEFAULT", "CUSTOM"]
VariableType = Literal["UNKNOWN", "VALUE", "SECRET"]
SecretType = Literal["UNKNOWN", "REFERENCE", "VALUE"]
HealthCheckType = Literal["UNKNOWN", "COMMAND", "HTTP", "TCP"]
CheckType = Literal["UNKNOWN", "COMMAND", "HTTP", "TCP"]
DiscoveryVisibility = Literal["FRAMEWORK", "CLUSTER", "EXTERNAL"]
OperationType = Literal[
    "UNKNOWN",
    "LAUNCH",
    "LAUNCH_GROUP",
    "RESERVE",
    "UNRESERVE",
    "CREATE",
    "DESTROY",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "CREATE_DISK",
    "DESTROY_DISK",
    "CREATE_VOLUME",
    "DESTROY_VOLUME",
    "CREATE_BLOCK",
    "DESTROY_BLOCK",
]
OPERATION_TYPES: frozenset[str] = frozenset(get_args(OperationType))
OperationState = Literal[
    "OPERATION_UNSUPPORTED",
    "OPERATION_PENDING",
    "OPERATION_FINISHED",
    "OPERATION_FAILED",
    "OPERATION_ERROR",
    "OPERATION_DROPPED",
    "OPERATION_UNREACHABLE",
    "OPERATION_GONE_BY_OPERATOR",
    "OPERATION_RECOVERING",
    "OPERATION_UNKNOWN",
]
OPERATION_STATES: frozenset[str] = frozenset(get_args(OperationState))
TERMINAL_OPERATION_STATES: frozenset[str] = frozenset(
    {
        "OPERATION_FINISHED",
        "OPERATION_FAILED",
        "OPERATION_ERROR",
        "OPERATION_DROPPED",
        "OPERATION_GONE_BY_OPERATOR",
    }
)

# What every agent of this implementation can do, as Mesos' AgentInfo.Capability
# names it: one list for the agent's /state and the master's views. Not listed:
# RESOURCE_PROVIDER, AGENT_OPERATION_FEEDBACK and TASK_RESOURCE_LIMITS, which these
# agents do not have.
AGENT_CAPABILITIES: tuple[str, ...] = (
    "MULTI_ROLE",
    "HIERARCHICAL_ROLE",
    "RESERVATION_REFINEMENT",
    "RESIZE_VOLUME",
    "AGENT_DRAINING",
)
