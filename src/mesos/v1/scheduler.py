"""v1 Scheduler API messages (``mesos/v1/scheduler/scheduler.proto``).

``Call`` is what a scheduler POSTs to ``/api/v1/scheduler``; ``Event`` is one record
of the SUBSCRIBE stream. Both are envelopes: ``{"type": T, "<lower t>": {...}}``.
Nested proto messages are flattened into module-level classes (``Call.Subscribe`` is
:class:`Subscribe`, ``Event.Offers`` is :class:`Offers`, ...).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

from mesos.v1.mesos import (
    AgentID,
    ExecutorID,
    Filters,
    FrameworkID,
    FrameworkInfo,
    InverseOffer,
    KillPolicy,
    MasterInfo,
    MesosStruct,
    Offer,
    OfferID,
    Operation,
    OperationID,
    OperationStatus,
    ResourceProviderID,
    TaskID,
    TaskStatus,
)
from mesos.v1.mesos import (
    Request as ResourceRequest,
)

CallType = Literal[
    "UNKNOWN",
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "SUPPRESS",
    "UPDATE_FRAMEWORK",
]
CALL_TYPES: frozenset[str] = frozenset(get_args(CallType))

EventType = Literal[
    "UNKNOWN",
    "SUBSCRIBED",
    "OFFERS",
    "INVERSE_OFFERS",
    "RESCIND",
    "RESCIND_INVERSE_OFFER",
    "UPDATE",
    "UPDATE_OPERATION_STATUS",
    "MESSAGE",
    "FAILURE",
    "ERROR",
    "HEARTBEAT",
]
EVENT_TYPES: frozenset[str] = frozenset(get_args(EventType))


def _list() -> Any:
    return msgspec.field(default_factory=list)


# --------------------------------------------------------------------------- call bodies


class Subscribe(MesosStruct):
    """``Call.Subscribe``. ``offer_constraints`` is kept as plain JSON."""

    framework_info: FrameworkInfo
    suppressed_roles: list[str] = _list()
    offer_constraints: dict[str, Any] | None = None


class Accept(MesosStruct):
    offer_ids: list[OfferID] = _list()
    operations: list[Operation] = _list()
    filters: Filters | None = None


class Decline(MesosStruct):
    offer_ids: list[OfferID] = _list()
    filters: Filters | None = None


class AcceptInverseOffers(MesosStruct):
    inverse_offer_ids: list[OfferID] = _list()
    filters: Filters | None = None


class DeclineInverseOffers(MesosStruct):
    inverse_offer_ids: list[OfferID] = _list()
    filters: Filters | None = None


class Revive(MesosStruct):
    roles: list[str] = _list()


class Suppress(MesosStruct):
    roles: list[str] = _list()


class Kill(MesosStruct):
    task_id: TaskID
    agent_id: AgentID | None = None
    kill_policy: KillPolicy | None = None


class Shutdown(MesosStruct):
    executor_id: ExecutorID
    agent_id: AgentID


class Acknowledge(MesosStruct):
    agent_id: AgentID
    task_id: TaskID
    uuid: bytes


class AcknowledgeOperationStatus(MesosStruct, kw_only=True):
    """``uuid`` is plain bytes here; ``{"value": b64}`` is unwrapped by the codec."""

    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None
    uuid: bytes
    operation_id: OperationID


class ReconcileTask(MesosStruct):
    """``Call.Reconcile.Task``."""

    task_id: TaskID
    agent_id: AgentID | None = None


class Reconcile(MesosStruct):
    tasks: list[ReconcileTask] = _list()


class ReconcileOperation(MesosStruct):
    """``Call.ReconcileOperations.Operation``."""

    operation_id: OperationID
    agent_id: AgentID | None = None
    resource_provider_id: ResourceProviderID | None = None


class ReconcileOperations(MesosStruct):
    operations: list[ReconcileOperation] = _list()


class Message(MesosStruct):
    """``Call.Message``: framework message to an executor."""

    agent_id: AgentID
    executor_id: ExecutorID
    data: bytes


class Request(MesosStruct):
    requests: list[ResourceRequest] = _list()


class UpdateFramework(MesosStruct):
    framework_info: FrameworkInfo
    suppressed_roles: list[str] = _list()
    offer_constraints: dict[str, Any] | None = None


class Call(MesosStruct):
    type: CallType
    framework_id: FrameworkID | None = None
    subscribe: Subscribe | None = None
    accept: Accept | None = None
    decline: Decline | None = None
    accept_inverse_offers: AcceptInverseOffers | None = None
    decline_inverse_offers: DeclineInverseOffers | None = None
    revive: Revive | None = None
    suppress: Suppress | None = None
    kill: Kill | None = None
    shutdown: Shutdown | None = None
    acknowledge: Acknowledge | None = None
    acknowledge_operation_status: AcknowledgeOperationStatus | None = None
    reconcile: Reconcile | None = None
    reconcile_operations: ReconcileOperations | None = None
    message: Message | None = None
    request: Request | None = None
    update_framework: UpdateFramework | None = None


# --------------------------------------------------------------------------- event bodies


class Subscribed(MesosStruct):
    framework_id: FrameworkID
    heartbeat_interval_seconds: float | None = None
    master_info: MasterInfo | None = None


class Offers(MesosStruct):
    offers: list[Offer] = _list()


class InverseOffers(MesosStruct):
    inverse_offers: list[InverseOffer] = _list()


class Rescind(MesosStruct):
    offer_id: OfferID


class RescindInverseOffer(MesosStruct):
    inverse_offer_id: OfferID


class Update(MesosStruct):
    status: TaskStatus


class UpdateOperationStatus(MesosStruct):
    status: OperationStatus


class EventMessage(MesosStruct):
    """``Event.Message``: executor message to the framework."""

    agent_id: AgentID
    executor_id: ExecutorID
    data: bytes


class Failure(MesosStruct):
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    status: int | None = None


class Error(MesosStruct):
    message: str


class Event(MesosStruct):
    type: EventType
    subscribed: Subscribed | None = None
    offers: Offers | None = None
    inverse_offers: InverseOffers | None = None
    rescind: Rescind | None = None
    rescind_inverse_offer: RescindInverseOffer | None = None
    update: Update | None = None
    update_operation_status: UpdateOperationStatus | None = None
    message: EventMessage | None = None
    failure: Failure | None = None
    error: Error | None = None
