"""``POST /api/v1/internal/agent``: the agents' channel into the master."""

from __future__ import annotations

import uuid

from aiohttp import web

from mesos.errors import MesosError, ValidationError
from mesos.http import responses
from mesos.http.keys import MASTER
from mesos.http.streaming import EventStream
from mesos.master.events import event
from mesos.v1 import codec
from mesos.v1.internal import AgentCall


async def agent_api(request: web.Request) -> web.StreamResponse:
    refusal = responses.check_post_json(request)
    if refusal is not None:
        return refusal
    master = request.app[MASTER]
    try:
        call = codec.decode(await request.read(), AgentCall)
    except ValidationError as exc:
        return responses.bad_request(f"Failed to parse agent call: {exc}")
    if call.type == "SUBSCRIBE":
        if call.subscribe is None:
            return responses.bad_request("Expecting 'subscribe' to be present")
        stream = EventStream(
            request,
            stream_id=str(uuid.uuid4()),
            heartbeat=event("HEARTBEAT"),
            heartbeat_interval=float(master.flags.agent_ping_timeout),
        )
        await stream.prepare()
        try:
            agent = master.register_agent(stream, call.subscribe)
        except MesosError as exc:
            stream.send(event("ERROR", {"message": str(exc)}))
            stream.close()
            return await stream.run()
        agent_id = agent.id

        def closed(s: EventStream) -> None:
            master.agent_stream_closed(agent_id, s)

        stream._on_close = closed
        return await stream.run()
    stream_id = request.headers.get("Mesos-Stream-Id")
    try:
        named = call.agent_id.value if call.agent_id is not None else master.agent_of_stream(stream_id)
        agent = master.agent_for_call(named, stream_id)
        if call.type == "STATUS_UPDATE":
            if call.status_update is None:
                raise ValidationError("Expecting 'status_update' to be present")
            master.status_update(agent, call.status_update.framework_id.value, call.status_update.status)
        elif call.type == "EXECUTOR_MESSAGE":
            if call.executor_message is None:
                raise ValidationError("Expecting 'executor_message' to be present")
            master.executor_message(agent, call.executor_message)
        elif call.type == "EXITED_EXECUTOR":
            if call.exited_executor is None:
                raise ValidationError("Expecting 'exited_executor' to be present")
            master.exited_executor(agent, call.exited_executor)
        elif call.type == "PONG":
            master.pong(agent)
    except MesosError as exc:
        return responses.from_error(exc)
    return web.Response(status=202)
