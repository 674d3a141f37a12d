"""``POST /api/v1/executor``: the v1 Executor HTTP API (ref §4).

Decode, validate, hand to the agent, answer with Mesos' status codes:

* 405 not a POST; 400 no Content-Type; 415 not JSON;
* 400 a body that does not parse or validate (the message names the field);
* 406 SUBSCRIBE not accepting JSON (checked before the executor is looked up);
* 400 ``Framework cannot be found``, ``Executor cannot be found``;
* 403 ``Executor is not subscribed`` for any call but SUBSCRIBE before subscribing;
* 200 and an event stream for SUBSCRIBE (a new subscription replaces the old stream;
  an executor being shut down gets SHUTDOWN and the stream ends);
* 202 for UPDATE, MESSAGE and HEARTBEAT.
"""

from __future__ import annotations

from aiohttp import web

from mesos.agent.keys import AGENT
from mesos.errors import ValidationError
from mesos.http import responses
from mesos.http.streaming import EventStream
from mesos.v1 import codec
from mesos.v1 import executor as ev1

__all__ = ["executor_api", "validate_call"]

_HEARTBEAT = codec.encode(ev1.Event(type="HEARTBEAT"))


def validate_call(call: ev1.Call) -> str | None:
    """Mesos' ``executor::call::validate``: the first problem, or None.

    The unacknowledged updates a SUBSCRIBE carries are checked as UPDATE calls: they
    go the same way.
    """
    if call.type == "SUBSCRIBE":
        if call.subscribe is None:
            return "Expecting 'subscribe' to be present"
        return next((p for u in call.subscribe.unacknowledged_updates
                     if (p := _validate_update(call, u)) is not None), None)
    if call.type == "MESSAGE" and call.message is None:
        return "Expecting 'message' to be present"
    if call.type != "UPDATE":
        return None
    if call.update is None:
        return "Expecting 'update' to be present"
    return _validate_update(call, call.update)


def _validate_update(call: ev1.Call, update: ev1.Update) -> str | None:
    status = update.status
    if status.uuid is None:
        return "Expecting 'uuid' to be present"
    if len(status.uuid) != 16:
        return f"Invalid UUID: expecting 16 bytes, got {len(status.uuid)}"
    if status.executor_id is not None and status.executor_id != call.executor_id:
        return (f"ExecutorID in Call: {call.executor_id.value} does not match ExecutorID in "
                f"TaskStatus: {status.executor_id.value}")
    if status.source != "SOURCE_EXECUTOR":
        return (f"Received Call from executor {call.executor_id.value} of framework "
                f"{call.framework_id.value} with invalid source, expecting 'SOURCE_EXECUTOR'")
    if status.state == "TASK_STAGING":
        return (f"Received TASK_STAGING from executor {call.executor_id.value} of framework "
                f"{call.framework_id.value} which is not allowed")
    return None


async def executor_api(request: web.Request) -> web.StreamResponse:
    refusal = responses.check_post_json(request)
    if refusal is not None:
        return refusal
    agent = request.app[AGENT]
    try:
        call = codec.decode(await request.read(), ev1.Call)
    except ValidationError as exc:
        return responses.bad_request(f"Failed to convert JSON into Call protobuf: {exc}")
    problem = validate_call(call)
    if problem is not None:
        return responses.bad_request(f"Failed to validate executor::Call: {problem}")
    if call.type == "UNKNOWN":
        return responses.text(501, "Received 'UNKNOWN' call")
    if call.type == "SUBSCRIBE" and not responses.accepts_json(request):
        return responses.text(406, "Expecting 'Accept' to allow 'application/json'")
    if agent.recovering:  # as Mesos: executors retry until the agent has its state back
        return responses.text(503, "Agent has not finished recovery")
    framework_id = call.framework_id.value
    executor_id = call.executor_id.value
    error = agent.core.executor_call_error(framework_id, executor_id, call.type)
    if error is not None:
        return responses.text(*error)
    if call.type == "SUBSCRIBE":
        assert call.subscribe is not None
        return await _subscribe(request, framework_id, executor_id, call.subscribe)
    if call.type == "UPDATE":
        assert call.update is not None
        agent.executor_update(framework_id, executor_id, call.update.status)
    elif call.type == "MESSAGE":
        assert call.message is not None
        agent.executor_message(framework_id, executor_id, call.message.data)
    return web.Response(status=202)


async def _subscribe(
    request: web.Request, framework_id: str, executor_id: str, subscribe: ev1.Subscribe
) -> web.StreamResponse:
    agent = request.app[AGENT]

    def closed(stream: EventStream) -> None:
        agent.executor_stream_closed(framework_id, executor_id, stream)

    stream = EventStream(
        request,
        heartbeat=_HEARTBEAT,
        heartbeat_interval=agent.executor_heartbeat_interval,
        on_close=closed,
    )
    await stream.prepare()
    # The executor may have been removed while the response headers went out.
    if not agent.executor_subscribed(framework_id, executor_id, stream, subscribe):
        stream.close()
    return await stream.run()
