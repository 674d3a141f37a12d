"""v1 wire types and the JSON codec: shapes, leniency, errors that name the field."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import msgspec
import pytest

from mesos.errors import ValidationError
from mesos.v1 import codec, executor, scheduler
from mesos.v1.mesos import (
    TASK_STATES,
    TERMINAL_STATES,
    AgentID,
    ContainerID,
    Filters,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    Offer,
    OfferID,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    TaskStatus,
)


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


PYMESOS_SUBSCRIBE: dict[str, Any] = {
    "type": "SUBSCRIBE",
    "subscribe": {
        "framework_info": {
            "user": "root",
            "name": "pymesos-test",
            "hostname": "host1",
            "failover_timeout": 100.0,
            "capabilities": [{"type": "GPU_RESOURCES"}],
            "roles": ["*"],
            "labels": {"labels": [{"key": "k", "value": "v"}]},
        },
        "suppressed_roles": [],
    },
}

PYMESOS_ACCEPT: dict[str, Any] = {
    "type": "ACCEPT",
    "framework_id": {"value": "m1-0000"},
    "accept": {
        "offer_ids": [{"value": "m1-O1"}],
        "operations": [
            {
                "type": "LAUNCH",
                "launch": {
                    "task_infos": [
                        {
                            "name": "task-1",
                            "task_id": {"value": "1"},
                            "agent_id": {"value": "m1-S0"},
                            "resources": [
                                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                                {"name": "mem", "type": "SCALAR", "scalar": {"value": 32.0}},
                                {
                                    "name": "ports",
                                    "type": "RANGES",
                                    "ranges": {"range": [{"begin": 31000, "end": 31001}]},
                                },
                            ],
                            "command": {
                                "value": "echo hi",
                                "environment": {"variables": [{"name": "A", "value": "1"}]},
                                "uris": [{"value": "http://x/y.tgz", "extract": False}],
                            },
                            "data": base64.b64encode(b"payload").decode(),
                        }
                    ]
                },
            }
        ],
        "filters": {"refuse_seconds": 10.0},
    },
}


def test_subscribe_round_trip() -> None:
    call = codec.decode(_j(PYMESOS_SUBSCRIBE), scheduler.Call)
    assert call.type == "SUBSCRIBE"
    assert call.subscribe is not None
    info = call.subscribe.framework_info
    assert info.user == "root" and info.failover_timeout == 100.0
    assert info.capability_names() == {"GPU_RESOURCES"}
    expected = json.loads(json.dumps(PYMESOS_SUBSCRIBE))
    del expected["subscribe"]["suppressed_roles"]  # empty repeated: omitted
    assert json.loads(codec.encode(call)) == expected
    assert codec.to_builtins(call) == expected


def test_accept_round_trip() -> None:
    call = codec.decode(_j(PYMESOS_ACCEPT), scheduler.Call)
    assert call.accept is not None
    op = call.accept.operations[0]
    assert op.type == "LAUNCH" and op.launch is not None
    task = op.launch.task_infos[0]
    assert task.agent_id == AgentID(value="m1-S0")
    assert task.data == b"payload"
    assert task.command is not None and task.command.shell is True
    assert task.command.uris[0].extract is False
    assert call.accept.filters == Filters(refuse_seconds=10.0)
    assert json.loads(codec.encode(call)) == PYMESOS_ACCEPT


def test_missing_required_field_names_path() -> None:
    body = json.loads(json.dumps(PYMESOS_SUBSCRIBE))
    del body["subscribe"]["framework_info"]["name"]
    with pytest.raises(ValidationError) as err:
        codec.decode(_j(body), scheduler.Call)
    assert "`name`" in str(err.value)
    assert "$.subscribe.framework_info" in str(err.value)


def test_bad_type_names_path() -> None:
    body = json.loads(json.dumps(PYMESOS_SUBSCRIBE))
    body["subscribe"]["framework_info"]["name"] = 5
    with pytest.raises(ValidationError, match=r"\$\.subscribe\.framework_info\.name"):
        codec.decode(_j(body), scheduler.Call)


def test_missing_call_type_and_bad_call_type() -> None:
    with pytest.raises(ValidationError, match="type"):
        codec.decode(b"{}", scheduler.Call)
    with pytest.raises(ValidationError, match="type"):
        codec.decode(b'{"type":"FROBNICATE"}', scheduler.Call)


def test_malformed_json() -> None:
    with pytest.raises(ValidationError, match="Malformed JSON"):
        codec.decode(b'{"type":', scheduler.Call)


def test_numeric_strings_and_unknown_keys() -> None:
    body = {
        "type": "DECLINE",
        "framework_id": {"value": "f"},
        "decline": {"offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": "7.5"}},
        "credentials": {"principal": "x"},
    }
    call = codec.decode(_j(body), scheduler.Call)
    assert call.decline is not None and call.decline.filters == Filters(refuse_seconds=7.5)
    status = codec.decode(
        b'{"task_id":{"value":"t"},"state":"TASK_RUNNING","timestamp":"12","healthy":"true"}',
        TaskStatus,
    )
    assert status.timestamp == 12.0 and status.healthy is True


def test_lenient_calls_without_sub_objects() -> None:
    for t in ("REVIVE", "SUPPRESS", "TEARDOWN"):
        call = codec.decode(_j({"type": t, "framework_id": {"value": "f"}}), scheduler.Call)
        assert call.type == t
    kill = codec.decode(
        b'{"type":"KILL","framework_id":{"value":"f"},"kill":{"task_id":{"value":"t"}}}',
        scheduler.Call,
    )
    assert kill.kill is not None and kill.kill.agent_id is None
    rec = codec.decode(
        b'{"type":"RECONCILE","framework_id":{"value":"f"},'
        b'"reconcile":{"tasks":[{"task_id":{"value":"t"}}]}}',
        scheduler.Call,
    )
    assert rec.reconcile is not None and rec.reconcile.tasks[0].agent_id is None


def test_null_is_unset() -> None:
    body = json.loads(json.dumps(PYMESOS_SUBSCRIBE))
    body["framework_id"] = None
    body["subscribe"]["framework_info"]["roles"] = None
    body["subscribe"]["framework_info"]["principal"] = None
    call = codec.decode(_j(body), scheduler.Call)
    assert call.framework_id is None
    assert call.subscribe is not None and call.subscribe.framework_info.roles == []


def test_unknown_optional_enum_dropped_required_enum_error() -> None:
    body = json.loads(json.dumps(PYMESOS_SUBSCRIBE))
    body["subscribe"]["framework_info"]["capabilities"].append({"type": "FUTURE_CAP"})
    call = codec.decode(_j(body), scheduler.Call)
    assert call.subscribe is not None
    caps = call.subscribe.framework_info.capabilities
    assert [c.type for c in caps] == ["GPU_RESOURCES", None]
    status = codec.decode(
        b'{"task_id":{"value":"t"},"state":"TASK_RUNNING","reason":"REASON_NEW"}', TaskStatus
    )
    assert status.reason is None
    with pytest.raises(ValidationError, match="state"):
        codec.decode(b'{"task_id":{"value":"t"},"state":"TASK_WEIRD"}', TaskStatus)


def test_slave_id_alias_for_agent_id() -> None:
    task = codec.decode(b'{"name":"n","task_id":{"value":"t"},"slave_id":{"value":"S1"}}', TaskInfo)
    assert task.agent_id == AgentID(value="S1")
    with pytest.raises(ValidationError, match="agent_id"):
        codec.decode(b'{"name":"n","task_id":{"value":"t"}}', TaskInfo)


def test_ack_operation_status_uuid_wrapped() -> None:
    raw = uuid.uuid4().bytes
    b64 = base64.b64encode(raw).decode()
    call = codec.decode(
        _j(
            {
                "type": "ACKNOWLEDGE_OPERATION_STATUS",
                "framework_id": {"value": "f"},
                "acknowledge_operation_status": {
                    "agent_id": {"value": "a"},
                    "operation_id": {"value": "op"},
                    "uuid": {"value": b64},
                },
            }
        ),
        scheduler.Call,
    )
    assert call.acknowledge_operation_status is not None
    assert call.acknowledge_operation_status.uuid == raw


def test_non_ascii_escaped_no_raw_newline() -> None:
    info = FrameworkInfo(user="r\u00f6ot", name="caf\u00e9\n\u2028\U0001f600")
    out = codec.encode(info)
    assert out.isascii()
    assert b"\n" not in out and b"\r" not in out
    assert b"\\u00f6" in out and b"\\ud83d\\ude00" in out
    assert codec.decode(out, FrameworkInfo) == info
    assert json.loads(out)["name"] == info.name
    assert codec.encode({"k": ["\u00e9"]}) == b'{"k":["\\u00e9"]}'
    assert codec.encode_str([1, "x"]) == '[1,"x"]'


def test_uuid_bytes_base64() -> None:
    raw = uuid.uuid4().bytes
    status = TaskStatus(
        task_id=TaskID(value="t"),
        state="TASK_RUNNING",
        source="SOURCE_EXECUTOR",
        uuid=raw,
        agent_id=AgentID(value="a"),
    )
    wire = json.loads(codec.encode(status))
    assert wire["uuid"] == base64.b64encode(raw).decode()
    assert len(wire["uuid"]) == 24
    assert codec.decode(codec.encode(status), TaskStatus).uuid == raw
    assert codec.decode_obj(wire, TaskStatus) == status


def test_decode_obj_lenient_and_errors() -> None:
    call = codec.decode_obj(json.loads(json.dumps(PYMESOS_ACCEPT)), scheduler.Call)
    assert call.accept is not None and call.accept.offer_ids == [OfferID(value="m1-O1")]
    original = {"name": "n", "task_id": {"value": "t"}, "slave_id": {"value": "S"}}
    task = codec.decode_obj(original, TaskInfo)
    assert task.agent_id.value == "S"
    assert "slave_id" in original  # the caller's object is not modified
    with pytest.raises(ValidationError, match=r"\$\.task_id"):
        codec.decode_obj({"name": "n", "task_id": {}, "agent_id": {"value": "a"}}, TaskInfo)


def _offer() -> Offer:
    return Offer(
        id=OfferID(value="m-O1"),
        framework_id=FrameworkID(value="m-0000"),
        agent_id=AgentID(value="m-S0"),
        hostname="h",
        resources=[Resource(name="cpus", type="SCALAR", scalar=Scalar(value=2.0))],
    )


def test_scheduler_event_shapes() -> None:
    ev = scheduler.Event(type="OFFERS", offers=scheduler.Offers(offers=[_offer()]))
    wire = json.loads(codec.encode(ev))
    assert list(wire) == ["type", "offers"]
    assert wire["offers"]["offers"][0]["id"] == {"value": "m-O1"}
    assert wire["offers"]["offers"][0]["resources"][0] == {
        "name": "cpus",
        "type": "SCALAR",
        "scalar": {"value": 2.0},
    }
    assert codec.encode(scheduler.Event(type="HEARTBEAT")) == b'{"type":"HEARTBEAT"}'
    sub = scheduler.Event(
        type="SUBSCRIBED",
        subscribed=scheduler.Subscribed(
            framework_id=FrameworkID(value="m-0000"),
            heartbeat_interval_seconds=15.0,
            master_info=MasterInfo(id="m", ip=16777343, port=5050, version="1.11.0"),
        ),
    )
    assert json.loads(codec.encode(sub)) == {
        "type": "SUBSCRIBED",
        "subscribed": {
            "framework_id": {"value": "m-0000"},
            "heartbeat_interval_seconds": 15.0,
            "master_info": {"id": "m", "ip": 16777343, "port": 5050, "version": "1.11.0"},
        },
    }
    err = scheduler.Event(type="ERROR", error=scheduler.Error(message="Framework failed over"))
    assert codec.encode(err) == b'{"type":"ERROR","error":{"message":"Framework failed over"}}'
    fail = scheduler.Event(
        type="FAILURE",
        failure=scheduler.Failure(agent_id=AgentID(value="a"), status=-1),
    )
    assert json.loads(codec.encode(fail)) == {
        "type": "FAILURE",
        "failure": {"agent_id": {"value": "a"}, "status": -1},
    }
    resc = scheduler.Event(type="RESCIND", rescind=scheduler.Rescind(offer_id=OfferID(value="o")))
    assert codec.encode(resc) == b'{"type":"RESCIND","rescind":{"offer_id":{"value":"o"}}}'
    upd = scheduler.Event(
        type="UPDATE",
        update=scheduler.Update(status=TaskStatus(task_id=TaskID(value="t"), state="TASK_LOST")),
    )
    assert codec.encode(upd) == (
        b'{"type":"UPDATE","update":{"status":{"task_id":{"value":"t"},"state":"TASK_LOST"}}}'
    )


def test_executor_messages() -> None:
    body = {
        "type": "SUBSCRIBE",
        "framework_id": {"value": "f"},
        "executor_id": {"value": "e"},
        "subscribe": {
            "unacknowledged_tasks": [],
            "unacknowledged_updates": [
                {
                    "framework_id": {"value": "f"},
                    "status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING"},
                }
            ],
        },
    }
    call = codec.decode(_j(body), executor.Call)
    assert call.subscribe is not None
    assert call.subscribe.unacknowledged_updates[0].status.state == "TASK_RUNNING"
    with pytest.raises(ValidationError, match="executor_id"):
        codec.decode(b'{"type":"HEARTBEAT","framework_id":{"value":"f"}}', executor.Call)
    raw = uuid.uuid4().bytes
    ack = executor.Event(
        type="ACKNOWLEDGED",
        acknowledged=executor.Acknowledged(task_id=TaskID(value="t"), uuid=raw),
    )
    wire = json.loads(codec.encode(ack))
    assert wire == {
        "type": "ACKNOWLEDGED",
        "acknowledged": {"task_id": {"value": "t"}, "uuid": base64.b64encode(raw).decode()},
    }
    assert codec.encode(executor.Event(type="SHUTDOWN")) == b'{"type":"SHUTDOWN"}'


def test_constants_and_ids() -> None:
    assert "TASK_RUNNING" in TASK_STATES and len(TASK_STATES) == 14
    assert TERMINAL_STATES < TASK_STATES
    assert "TASK_KILLING" not in TERMINAL_STATES and "TASK_GONE" in TERMINAL_STATES
    assert "UPDATE_FRAMEWORK" in scheduler.CALL_TYPES
    assert {TaskID(value="a"): 1}[TaskID(value="a")] == 1
    child = ContainerID(value="c", parent=ContainerID(value="p"))
    assert codec.encode(child) == b'{"value":"c","parent":{"value":"p"}}'
    assert Filters().refuse_seconds == 5.0
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({}, FrameworkID)


def test_encode_record() -> None:
    assert codec.encode_record({"type": "HEARTBEAT"}) == b'20\n{"type":"HEARTBEAT"}'
