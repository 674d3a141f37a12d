"""``POST /api/v1/scheduler``: decode, check, hand to the master, answer.

The order of checks follows Mesos (ref §2.1), so clients see the same status
codes: method, Content-Type, body, call validation, then framework and stream id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from mesos.errors import MesosError, ValidationError
from mesos.http import responses
from mesos.http.keys import MASTER
from mesos.http.streaming import EventStream
from mesos.master.events import event
from mesos.master.service import Master
from mesos.master.state import Framework
from mesos.v1 import codec
from mesos.v1 import scheduler as sched

log = logging.getLogger("mesos.master.api")

# Calls whose sub-message Mesos requires (ref §2.1 validation rules).
_NEEDS_BODY = {
    "ACCEPT": "accept",
    "DECLINE": "decline",
    "KILL": "kill",
    "SHUTDOWN": "shutdown",
    "ACKNOWLEDGE": "acknowledge",
    "RECONCILE": "reconcile",
    "MESSAGE": "message",
    "REQUEST": "request",
    "UPDATE_FRAMEWORK": "update_framework",
    "ACCEPT_INVERSE_OFFERS": "accept_inverse_offers",
    "DECLINE_INVERSE_OFFERS": "decline_inverse_offers",
    "ACKNOWLEDGE_OPERATION_STATUS": "acknowledge_operation_status",
    "RECONCILE_OPERATIONS": "reconcile_operations",
}


def _validate(call: sched.Call) -> None:
    if call.type == "SUBSCRIBE":
        if call.subscribe is None:
            raise ValidationError("Expecting 'subscribe' to be present")
        info_id = call.subscribe.framework_info.id
        top_id = call.framework_id
        if (info_id is None) != (top_id is None) or (
            info_id is not None and top_id is not None and info_id.value != top_id.value
        ):
            raise ValidationError(
                "'framework_id' differs from 'subscribe.framework_info.id'"
            )
        return
    if call.framework_id is None:
        raise ValidationError("Expecting 'framework_id' to be present")
    key = _NEEDS_BODY.get(call.type)
    if key is not None and getattr(call, key) is None:
        raise ValidationError(f"Expecting '{key}' to be present")


async def scheduler_api(request: web.Request) -> web.StreamResponse:
    refusal = responses.check_post_json(request)
    if refusal is not None:
        return refusal
    master = request.app[MASTER]
    body = await request.read()
    try:
        call = codec.decode(body, sched.Call)
    except ValidationError as exc:
        return responses.bad_request(f"Failed to convert JSON into Call protobuf: {exc}")
    if call.type == "UNKNOWN":
        return responses.text(501, "Received an unexpected 'UNKNOWN' call")
    try:
        _validate(call)
    except ValidationError as exc:
        return responses.bad_request(f"Failed to validate scheduler::Call: {exc}")
    if call.type == "SUBSCRIBE":
        return await _subscribe(request, master, call)
    try:
        framework = master.framework_for_call(call, request.headers.get("Mesos-Stream-Id"))
        if call.type == "TEARDOWN":
            # Written before the framework's stream is closed and the call answered.
            await master.teardown(framework)
            return web.Response(status=202)
        if not _dispatch(master, framework, call):
            return responses.text(501, f"Call type {call.type} is not supported yet")
    except MesosError as exc:
        return responses.from_error(exc)
    if call.type == "UPDATE_FRAMEWORK":
        # The new FrameworkInfo is in the registry before the call is answered.
        await master.registrar.barrier()
    if call.type == "UPDATE_FRAMEWORK":
        return web.Response(status=200)
    return web.Response(status=202)


async def _subscribe(request: web.Request, master: Master, call: sched.Call) -> web.StreamResponse:
    if "Mesos-Stream-Id" in request.headers:
        return responses.bad_request("Subscribe calls should not include the 'Mesos-Stream-Id' header")
    if not responses.accepts_json(request):
        return responses.text(406, "Expecting 'Accept' to allow application/json")
    stream = EventStream(
        request,
        stream_id=str(uuid.uuid4()),
        heartbeat=event("HEARTBEAT"),
        heartbeat_interval=float(master.flags.heartbeat_interval),
    )
    await stream.prepare()
    framework = master.subscribe(stream, call)
    if framework is not None:
        framework_id = framework.id

        def closed(s: EventStream) -> None:
            master.stream_closed(framework_id, s)

        stream._on_close = closed
    return await stream.run()


def _answer_inverse(accepted: bool) -> Callable[[Master, Framework, Any], None]:
    def answer(m: Master, f: Framework, body: Any) -> None:
        m.answer_inverse_offers(f, [o.value for o in body.inverse_offer_ids], accepted,
                                m._refuse_seconds(body.filters))

    return answer


def _ignore(m: Master, f: Framework, body: Any) -> None:
    """REQUEST (as Mesos' allocator does), and operation acknowledgements: no
    operation here takes feedback yet (LAUNCH cannot), so every id is unknown."""


# Calls with a sub-message (checked present by `_validate`, under the key
# `_NEEDS_BODY` names): the master method each one's body goes to.
_WITH_BODY: dict[str, Callable[[Master, Framework, Any], None]] = {
    "ACCEPT": Master.accept,
    "DECLINE": Master.decline,
    "KILL": Master.kill,
    "SHUTDOWN": Master.shutdown_executor,
    "ACKNOWLEDGE": Master.acknowledge,
    "RECONCILE": Master.reconcile,
    "MESSAGE": Master.message,
    "REQUEST": _ignore,
    "UPDATE_FRAMEWORK": Master.update_framework,
    "ACCEPT_INVERSE_OFFERS": _answer_inverse(True),
    "DECLINE_INVERSE_OFFERS": _answer_inverse(False),
    "ACKNOWLEDGE_OPERATION_STATUS": _ignore,
    "RECONCILE_OPERATIONS": Master.reconcile_operations,
}


def _dispatch(master: Master, framework: Framework, call: sched.Call) -> bool:
    """Hand the call to the master; False for a type this master does not handle."""
    if call.type == "REVIVE":
        master.revive(framework, call.revive.roles if call.revive else None)
    elif call.type == "SUPPRESS":
        master.suppress(framework, call.suppress.roles if call.suppress else None)
    elif call.type in _WITH_BODY:
        _WITH_BODY[call.type](master, framework, getattr(call, _NEEDS_BODY[call.type]))
    else:
        return False
    return True
