"""Common Mesos v1 messages (``mesos/v1/mesos.proto``) as msgspec Structs.

Class names are the proto message names (nested messages are flattened, e.g.
``Offer.Operation`` is :class:`Operation`, ``Resource.ReservationInfo`` is
:class:`ReservationInfo`); field names are the proto field names, so encoding gives
exactly Mesos' JSON. Required proto fields have no default (a missing one is a decode
error naming the field); optional fields default to ``None`` (or to their explicit
proto default); repeated fields default to ``[]``. Enums are ``Literal`` unions of the
Mesos value names. ``bytes`` fields travel as base64.
"""

from __future__ import annotations

from typing import Any

import msgspec

# Re-exported: the enum name sets live in mesos.v1.enums.
from mesos.v1.enums import (
    FRAMEWORK_CAPABILITIES as FRAMEWORK_CAPABILITIES,
)
from mesos.v1.enums import (
    MASTER_CAPABILITIES as MASTER_CAPABILITIES,
)
from mesos.v1.enums import (
    OPERATION_STATES as OPERATION_STATES,
)
from mesos.v1.enums import (
    OPERATION_TYPES as OPERATION_TYPES,
)
from mesos.v1.enums import (
    REASONS as REASONS,
)
from mesos.v1.enums import (
    SOURCES as SOURCES,
)
from mesos.v1.enums import (
    TASK_STATE_NUMBERS as TASK_STATE_NUMBERS,
)
from mesos.v1.enums import (
    TASK_STATES as TASK_STATES,
)
from mesos.v1.enums import (
    TERMINAL_OPERATION_STATES as TERMINAL_OPERATION_STATES,
)
from mesos.v1.enums import (
    TERMINAL_STATES as TERMINAL_STATES,
)
from mesos.v1.enums import (
    CheckType,
    ContainerType,
    DiscoveryVisibility,
    DiskSourceType,
    DockerNetwork,
    ExecutorType,
    FrameworkCapabilityType,
    HealthCheckType,
    ImageType,
    MasterCapabilityType,
    NetworkProtocol,
    OperationState,
    OperationType,
    ReservationType,
    SecretType,
    TaskState,
    TaskStatusReason,
    TaskStatusSource,
    ValueType,
    VariableType,
    VolumeMode,
)


class MesosStruct(msgspec.Struct, kw_only=True, omit_defaults=True, repr_omit_defaults=True):
    """Base of every wire type: keyword-only, defaults left off the wire.

    msgspec omits a field only when it holds ``None``, an empty collection, or the very
    default object (so ``Filters()`` encodes as ``{}``, ``Filters(refuse_seconds=5.0)``
    as ``{"refuse_seconds":5.0}``); decoding restores the default either way.

    (mypy does not see ``kw_only`` through inheritance, so classes with a required
    field after a defaulted one repeat ``kw_only=True``.)
    """


class MesosID(
    msgspec.Struct, kw_only=True, omit_defaults=True, repr_omit_defaults=True, frozen=True
):
    """Base of the ID messages: frozen, hence hashable (usable as dict keys)."""


def _list() -> Any:
    return msgspec.field(default_factory=list)


# --------------------------------------------------------------------------- IDs


class FrameworkID(MesosID, frozen=True):
    value: str


class AgentID(MesosID, frozen=True):
    value: str


class OfferID(MesosID, frozen=True):
    value: str


class TaskID(MesosID, frozen=True):
    value: str


class ExecutorID(MesosID, frozen=True):
    value: str


class OperationID(MesosID, frozen=True):
    value: str


class ResourceProviderID(MesosID, frozen=True):
    value: str


class ContainerID(MesosID, frozen=True):
    value: str
    parent: ContainerID | None = None


class UUID(MesosID, frozen=True):
    """``{"value": b64}``, as in ``OperationStatus.uuid``."""

    value: bytes


# --------------------------------------------------------------------------- misc


class DurationInfo(MesosStruct):
    nanoseconds: int


class TimeInfo(MesosStruct):
    nanoseconds: int


class Label(MesosStruct):
    key: str
    value: str | None = None


class Labels(MesosStruct):
    labels: list[Label] = _list()


class Parameter(MesosStruct):
    key: str
    value: str


class Parameters(MesosStruct):
    parameter: list[Parameter] = _list()


class Address(MesosStruct, kw_only=True):
    hostname: str | None = None
    ip: str | None = None
    port: int


class URL(MesosStruct):
    scheme: str
    address: Address
    path: str | None = None
    query: list[Parameter] = _list()
    fragment: str | None = None


class Unavailability(MesosStruct):
    start: TimeInfo
    duration: DurationInfo | None = None


class DomainName(MesosStruct):
    """``DomainInfo.FaultDomain.RegionInfo`` / ``ZoneInfo``."""

    name: str


class FaultDomain(MesosStruct):
    region: DomainName
    zone: DomainName


class DomainInfo(MesosStruct):
    fault_domain: FaultDomain | None = None


# --------------------------------------------------------------------------- values


class Scalar(MesosStruct):
    value: float


class Range(MesosStruct):
    begin: int
    end: int


class Ranges(MesosStruct):
    range: list[Range] = _list()


class Set(MesosStruct):
    item: list[str] = _list()


class Text(MesosStruct):
    value: str


class Value(MesosStruct):
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: Set | None = None
    text: Text | None = None


# --------------------------------------------------------------------------- resources


class AllocationInfo(MesosStruct):
    role: str | None = None


class ReservationInfo(MesosStruct):
    """``Resource.ReservationInfo``: one entry of ``reservations`` (or the old ``reservation``)."""

    type: ReservationType | None = None
    role: str | None = None
    principal: str | None = None
    labels: Labels | None = None


class Secret(MesosStruct):
    """``Secret``: a reference to a secret store entry or an inline value."""

    type: SecretType | None = None
    reference: dict[str, Any] | None = None
    value: dict[str, Any] | None = None


class Persistence(MesosStruct):
    """``Resource.DiskInfo.Persistence``."""

    id: str
    principal: str | None = None


class Volume(MesosStruct, kw_only=True):
    mode: VolumeMode | None = None
    container_path: str
    host_path: str | None = None
    image: Image | None = None
    source: dict[str, Any] | None = None


class DiskSourcePath(MesosStruct):
    root: str | None = None


class DiskSource(MesosStruct):
    """``Resource.DiskInfo.Source``."""

    type: DiskSourceType
    path: DiskSourcePath | None = None
    mount: DiskSourcePath | None = None
    vendor: str | None = None
    id: str | None = None
    metadata: Labels | None = None
    profile: str | None = None


class DiskInfo(MesosStruct):
    """``Resource.DiskInfo``."""

    persistence: Persistence | None = None
    volume: Volume | None = None
    source: DiskSource | None = None


class RevocableInfo(MesosStruct):
    pass


class SharedInfo(MesosStruct):
    pass


class Resource(MesosStruct):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: Set | None = None
    role: str | None = None  # deprecated (pre-refinement format)
    allocation_info: AllocationInfo | None = None
    reservation: ReservationInfo | None = None  # deprecated (pre-refinement format)
    reservations: list[ReservationInfo] = _list()
    disk: DiskInfo | None = None
    revocable: RevocableInfo | None = None
    shared: SharedInfo | None = None
    provider_id: ResourceProviderID | None = None


class Attribute(MesosStruct):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: Set | None = None
    text: Text | None = None


# --------------------------------------------------------------------------- agents, masters


class AgentCapability(MesosStruct):
    type: str | None = None


class AgentInfo(MesosStruct):
    hostname: str
    port: int = 5051
    resources: list[Resource] = _list()
    attributes: list[Attribute] = _list()
    id: AgentID | None = None
    domain: DomainInfo | None = None


class MasterCapability(MesosStruct):
    """``MasterInfo.Capability``."""

    type: MasterCapabilityType | None = None


class MasterInfo(MesosStruct):
    id: str
    ip: int  # IPv4 packed in network byte order, read as a host-endian int (deprecated)
    port: int  # required in the proto (Mesos' default is 5050)
    pid: str | None = None
    hostname: str | None = None
    version: str | None = None
    address: Address | None = None
    domain: DomainInfo | None = None
    capabilities: list[MasterCapability] = _list()


# --------------------------------------------------------------------------- frameworks


class FrameworkCapability(MesosStruct):
    """``FrameworkInfo.Capability``; an unknown type decodes as ``None``."""

    type: FrameworkCapabilityType | None = None


class FrameworkInfo(MesosStruct):
    user: str
    name: str
    id: FrameworkID | None = None
    failover_timeout: float = 0.0
    checkpoint: bool = False
    role: str | None = None  # deprecated; Mesos' default is "*"
    roles: list[str] = _list()
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: list[FrameworkCapability] = _list()
    labels: Labels | None = None
    # map<role, OfferFilters>, kept as plain JSON.
    offer_filters: dict[str, Any] = msgspec.field(default_factory=dict)

    def capability_names(self) -> set[str]:
        return {c.type for c in self.capabilities if c.type is not None}


# --------------------------------------------------------------------------- commands


class URI(MesosStruct):
    """``CommandInfo.URI``."""

    value: str
    executable: bool | None = None
    extract: bool = True
    cache: bool | None = None
    output_file: str | None = None


class Variable(MesosStruct):
    """``Environment.Variable``."""

    name: str
    type: VariableType | None = None
    value: str | None = None
    secret: Secret | None = None


class Environment(MesosStruct):
    variables: list[Variable] = _list()


class CommandInfo(MesosStruct):
    uris: list[URI] = _list()
    environment: Environment | None = None
    shell: bool = True
    value: str | None = None
    arguments: list[str] = _list()
    user: str | None = None


# --------------------------------------------------------------------------- containers


class ImageAppc(MesosStruct):
    """``Image.Appc``."""

    name: str
    id: str | None = None
    labels: Labels | None = None


class ImageDocker(MesosStruct):
    """``Image.Docker``."""

    name: str
    credential: dict[str, Any] | None = None
    config: Secret | None = None


class Image(MesosStruct):
    type: ImageType
    appc: ImageAppc | None = None
    docker: ImageDocker | None = None
    cached: bool = True


class PortMapping(MesosStruct):
    """``ContainerInfo.DockerInfo.PortMapping`` / ``NetworkInfo.PortMapping``."""

    host_port: int
    container_port: int
    protocol: str | None = None


class DockerInfo(MesosStruct):
    """``ContainerInfo.DockerInfo``."""

    image: str
    network: DockerNetwork = "HOST"
    port_mappings: list[PortMapping] = _list()
    privileged: bool = False
    parameters: list[Parameter] = _list()
    force_pull_image: bool | None = None
    volume_driver: str | None = None


class MesosInfo(MesosStruct):
    """``ContainerInfo.MesosInfo``."""

    image: Image | None = None


class IPAddress(MesosStruct):
    """``NetworkInfo.IPAddress``."""

    protocol: NetworkProtocol | None = None
    ip_address: str | None = None


class NetworkInfo(MesosStruct):
    ip_addresses: list[IPAddress] = _list()
    name: str | None = None
    groups: list[str] = _list()
    labels: Labels | None = None
    port_mappings: list[PortMapping] = _list()


class ContainerInfo(MesosStruct):
    type: ContainerType
    volumes: list[Volume] = _list()
    hostname: str | None = None
    docker: DockerInfo | None = None
    mesos: MesosInfo | None = None
    network_infos: list[NetworkInfo] = _list()
    linux_info: dict[str, Any] | None = None
    rlimit_info: dict[str, Any] | None = None
    tty_info: dict[str, Any] | None = None


class ContainerStatus(MesosStruct):
    container_id: ContainerID | None = None
    network_infos: list[NetworkInfo] = _list()
    cgroup_info: dict[str, Any] | None = None
    executor_pid: int | None = None


# --------------------------------------------------------------------------- checks


class HTTPCheckInfo(MesosStruct):
    """``HealthCheck.HTTPCheckInfo`` / ``CheckInfo.Http``."""

    port: int
    path: str | None = None
    scheme: str | None = None
    protocol: NetworkProtocol | None = None
    statuses: list[int] = _list()


class TCPCheckInfo(MesosStruct):
    """``HealthCheck.TCPCheckInfo`` / ``CheckInfo.Tcp``."""

    port: int
    protocol: NetworkProtocol | None = None


class HealthCheck(MesosStruct):
    type: HealthCheckType | None = None
    command: CommandInfo | None = None
    http: HTTPCheckInfo | None = None
    tcp: TCPCheckInfo | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0
    consecutive_failures: int = 3
    grace_period_seconds: float = 10.0


class CheckCommand(MesosStruct):
    """``CheckInfo.Command``."""

    command: CommandInfo


class CheckInfo(MesosStruct):
    type: CheckType | None = None
    command: CheckCommand | None = None
    http: HTTPCheckInfo | None = None
    tcp: TCPCheckInfo | None = None
    delay_seconds: float = 15.0
    interval_seconds: float = 10.0
    timeout_seconds: float = 20.0


class CheckStatusInfo(MesosStruct):
    type: CheckType | None = None
    command: dict[str, Any] | None = None  # {exit_code?}
    http: dict[str, Any] | None = None  # {status_code?}
    tcp: dict[str, Any] | None = None  # {succeeded?}


class KillPolicy(MesosStruct):
    grace_period: DurationInfo | None = None


class Port(MesosStruct):
    number: int
    name: str | None = None
    protocol: str | None = None
    visibility: DiscoveryVisibility | None = None
    labels: Labels | None = None


class Ports(MesosStruct):
    ports: list[Port] = _list()


class DiscoveryInfo(MesosStruct):
    visibility: DiscoveryVisibility
    name: str | None = None
    environment: str | None = None
    location: str | None = None
    version: str | None = None
    ports: Ports | None = None
    labels: Labels | None = None


# --------------------------------------------------------------------------- executors, tasks


class ExecutorInfo(MesosStruct, kw_only=True):
    type: ExecutorType | None = None
    executor_id: ExecutorID
    framework_id: FrameworkID | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    resources: list[Resource] = _list()
    name: str | None = None
    source: str | None = None  # deprecated
    data: bytes | None = None
    discovery: DiscoveryInfo | None = None
    shutdown_grace_period: DurationInfo | None = None
    labels: Labels | None = None


class TaskInfo(MesosStruct):
    """A task to launch. A legacy ``slave_id`` key is read as ``agent_id`` (codec)."""

    name: str
    task_id: TaskID
    agent_id: AgentID
    resources: list[Resource] = _list()
    executor: ExecutorInfo | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    kill_policy: KillPolicy | None = None
    data: bytes | None = None
    labels: Labels | None = None
    discovery: DiscoveryInfo | None = None
    max_completion_time: DurationInfo | None = None
    limits: dict[str, Scalar] = msgspec.field(default_factory=dict)


class TaskGroupInfo(MesosStruct):
    tasks: list[TaskInfo] = _list()


class TaskResourceLimitation(MesosStruct):
    resources: list[Resource] = _list()


class TaskStatus(MesosStruct):
    task_id: TaskID
    state: TaskState
    message: str | None = None
    source: TaskStatusSource | None = None
    reason: TaskStatusReason | None = None
    data: bytes | None = None
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    timestamp: float | None = None
    uuid: bytes | None = None
    healthy: bool | None = None
    check_status: CheckStatusInfo | None = None
    labels: Labels | None = None
    container_status: ContainerStatus | None = None
    unreachable_time: TimeInfo | None = None
    limitation: TaskResourceLimitation | None = None


class Task(MesosStruct, kw_only=True):
    """A task as the master/agent describe it (operator API, agent re-registration)."""

    name: str
    task_id: TaskID
    framework_id: FrameworkID
    executor_id: ExecutorID | None = None
    agent_id: AgentID
    state: TaskState
    resources: list[Resource] = _list()
    statuses: list[TaskStatus] = _list()
    status_update_state: TaskState | None = None
    status_update_uuid: bytes | None = None
    labels: Labels | None = None
    discovery: DiscoveryInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: CheckInfo | None = None
    kill_policy: KillPolicy | None = None
    user: str | None = None
    limits: dict[str, Scalar] = msgspec.field(default_factory=dict)


# --------------------------------------------------------------------------- operations


class OperationStatus(MesosStruct, kw_only=True):
    operation_id: OperationID | None = None
    state: OperationState
    message: str | None = None
    converted_resources: list[Resource] = _list()
    uuid: UUID | None = None
    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None


class Launch(MesosStruct):
    """``Offer.Operation.Launch``."""

    task_infos: list[TaskInfo] = _list()


class LaunchGroup(MesosStruct):
    """``Offer.Operation.LaunchGroup``."""

    executor: ExecutorInfo
    task_group: TaskGroupInfo


class Reserve(MesosStruct):
    """``Offer.Operation.Reserve``."""

    source: list[Resource] = _list()
    resources: list[Resource] = _list()


class Unreserve(MesosStruct):
    """``Offer.Operation.Unreserve``."""

    resources: list[Resource] = _list()


class Create(MesosStruct):
    """``Offer.Operation.Create``."""

    volumes: list[Resource] = _list()


class Destroy(MesosStruct):
    """``Offer.Operation.Destroy``."""

    volumes: list[Resource] = _list()


class GrowVolume(MesosStruct):
    """``Offer.Operation.GrowVolume``."""

    volume: Resource
    addition: Resource


class ShrinkVolume(MesosStruct):
    """``Offer.Operation.ShrinkVolume``."""

    volume: Resource
    subtract: Scalar


class CreateDisk(MesosStruct):
    """``Offer.Operation.CreateDisk``."""

    source: Resource
    target_type: DiskSourceType
    target_profile: str | None = None


class DestroyDisk(MesosStruct):
    """``Offer.Operation.DestroyDisk``."""

    source: Resource


class Operation(MesosStruct):
    """``Offer.Operation``: ``{"type": T, "id"?: ID, "<t>": {...}}``."""

    type: OperationType | None = None
    id: OperationID | None = None
    launch: Launch | None = None
    launch_group: LaunchGroup | None = None
    reserve: Reserve | None = None
    unreserve: Unreserve | None = None
    create: Create | None = None
    destroy: Destroy | None = None
    grow_volume: GrowVolume | None = None
    shrink_volume: ShrinkVolume | None = None
    create_disk: CreateDisk | None = None
    destroy_disk: DestroyDisk | None = None


# --------------------------------------------------------------------------- offers


class Offer(MesosStruct):
    id: OfferID
    framework_id: FrameworkID
    agent_id: AgentID
    hostname: str
    url: URL | None = None
    domain: DomainInfo | None = None
    resources: list[Resource] = _list()
    attributes: list[Attribute] = _list()
    executor_ids: list[ExecutorID] = _list()
    unavailability: Unavailability | None = None
    allocation_info: AllocationInfo | None = None


class InverseOffer(MesosStruct, kw_only=True):
    id: OfferID
    url: URL | None = None
    framework_id: FrameworkID
    agent_id: AgentID | None = None
    unavailability: Unavailability
    resources: list[Resource] = _list()


class Filters(MesosStruct):
    refuse_seconds: float = 5.0


class Request(MesosStruct):
    agent_id: AgentID | None = None
    resources: list[Resource] = _list()
