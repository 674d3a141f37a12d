"""Nested containers of the agent's v1 Operator API beyond sessions: stdin through
ATTACH_CONTAINER_INPUT (a streaming *request*), LAUNCH_NESTED_CONTAINER and
LAUNCH_CONTAINER, against a real cluster (one master, one agent, a sleeping task
started by ``mesos-execute``) over real sockets.

The input stream is sent record by record on a chunked request while the session's
output stream is read on another connection, so each test sees its input arrive
while the stream is still open, not only once it ends.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mesos.testing.cluster import Cluster, http_json, wait_for
from mesos.v1 import recordio
from tests.integration.test_agent_operator_api import (
    Execute,
    Reply,
    call,
    open_stream,
    output,
    post,
    read_until,
    records,
    running_sleeper,
    wait_nested,
)

pytestmark = pytest.mark.slow

RECORDIO_HEADERS = {"Content-Type": "application/recordio",
                    "Message-Content-Type": "application/json", "Accept": "application/json"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("agent-nested"), agents=1) as c:
        yield c


@pytest.fixture(scope="module")
def agent(cluster: Cluster) -> str:
    return cluster.agent_url(0).removeprefix("http://")


@pytest.fixture(scope="module")
def sleeper(cluster: Cluster, agent: str) -> Iterator[dict[str, Any]]:
    """The running task's executor as the agent's /state shows it."""
    yield from running_sleeper(cluster, agent, "exec sleep 300")


def container_id_record(container_id: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "CONTAINER_ID", "container_id": container_id}}


def stdin_record(data: bytes) -> dict[str, Any]:
    """A STDIN DATA record; empty ``data`` is EOF."""
    return {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "PROCESS_IO", "process_io": {"type": "DATA", "data": {
            "type": "STDIN", "data": base64.b64encode(data).decode()}}}}


HEARTBEAT = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
    "type": "PROCESS_IO", "process_io": {"type": "CONTROL", "control": {
        "type": "HEARTBEAT", "heartbeat": {"interval": {"nanoseconds": 30_000_000_000}}}}}}


def framed(*items: dict[str, Any] | bytes) -> bytes:
    return b"".join(i if isinstance(i, bytes) else recordio.encode(json.dumps(i).encode())
                    for i in items)


class InputStream:
    """One ATTACH_CONTAINER_INPUT request whose chunked body is sent piece by piece."""

    def __init__(self, agent: str, headers: dict[str, str] | None = None) -> None:
        host, port = agent.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)
        self.conn.putrequest("POST", "/api/v1")
        for name, value in {**(headers or RECORDIO_HEADERS),
                            "Transfer-Encoding": "chunked"}.items():
            self.conn.putheader(name, value)
        self.conn.endheaders()

    def send(self, *items: dict[str, Any] | bytes) -> None:
        data = framed(*items)
        self.conn.send(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self) -> Reply:
        """End the body and read the answer."""
        self.conn.send(b"0\r\n\r\n")
        return self.answer()

    def answer(self) -> Reply:
        response = self.conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                     response.read())

    def close(self) -> None:
        self.conn.close()


def attach_input(agent: str, *items: dict[str, Any] | bytes,
                 headers: dict[str, str] | None = None) -> Reply:
    """A whole ATTACH_CONTAINER_INPUT request in one go."""
    return post(agent, framed(*items), headers=headers or RECORDIO_HEADERS)


def child_of(sleeper: dict[str, Any]) -> dict[str, Any]:
    return {"value": uuid.uuid4().hex, "parent": {"value": sleeper["container"]}}


def launch_session(agent: str, container_id: dict[str, Any],
                   command: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    return open_stream(agent, {
        "type": "LAUNCH_NESTED_CONTAINER_SESSION", "launch_nested_container_session": {
            "container_id": container_id, "command": {"value": command}}})


# --------------------------------------------------------------------- ATTACH_CONTAINER_INPUT


def test_stdin_reaches_a_session_while_both_streams_are_open(agent: str,
                                                             sleeper: dict[str, Any]) -> None:
    """cat echoes each piece as it is sent; the empty DATA record is EOF and ends it."""
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id, "cat; echo cat-done")
    stream = InputStream(agent)
    try:
        seen: list[dict[str, Any]] = []
        decoder = recordio.Decoder()
        stream.send(container_id_record(container_id), stdin_record(b"hello\n"))
        read_until(launched, decoder, seen, "STDOUT", b"hello\n")  # input is still open
        stream.send(HEARTBEAT, stdin_record(b"world\n"))
        read_until(launched, decoder, seen, "STDOUT", b"hello\nworld\n")
        stream.send(stdin_record(b""))  # EOF: cat ends, then the session
        reply = stream.finish()
        assert reply.status == 200 and reply.body == b"", (reply.status, reply.text)
        seen += [json.loads(r) for r in decoder.feed(launched.read())]
        assert not decoder.in_record
    finally:
        stream.close()
        conn.close()
    assert output(seen, "STDOUT") == b"hello\nworld\ncat-done\n"
    assert wait_nested(agent, container_id) == {"exit_status": 0}


def test_read_line_and_a_stream_ended_without_eof(agent: str, sleeper: dict[str, Any]) -> None:
    """A stream that ends without an empty DATA record leaves stdin open: the Mesos CLI
    first attaches with the CONTAINER_ID record alone, then streams for real."""
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id,
                                    "read a; echo got:$a; read b; echo got:$b")
    try:
        probe = attach_input(agent, container_id_record(container_id))
        assert probe.status == 200, probe.text
        first = attach_input(agent, container_id_record(container_id), stdin_record(b"one\n"))
        assert first.status == 200, first.text
        seen: list[dict[str, Any]] = []
        decoder = recordio.Decoder()
        read_until(launched, decoder, seen, "STDOUT", b"got:one\n")
        second = attach_input(agent, container_id_record(container_id), stdin_record(b"two\n"))
        assert second.status == 200, second.text
        seen += [json.loads(r) for r in decoder.feed(launched.read())]
    finally:
        conn.close()
    assert output(seen, "STDOUT") == b"got:one\ngot:two\n"
    assert wait_nested(agent, container_id) == {"exit_status": 0}
    # It has ended: there is nothing to attach to any more.
    gone = attach_input(agent, container_id_record(container_id), stdin_record(b"late\n"))
    assert gone.status == 404 and "cannot be found" in gone.text, (gone.status, gone.text)


def test_one_input_stream_at_a_time(agent: str, sleeper: dict[str, Any]) -> None:
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id, "cat")
    first = InputStream(agent)
    try:
        seen: list[dict[str, Any]] = []
        decoder = recordio.Decoder()
        first.send(container_id_record(container_id), stdin_record(b"a\n"))
        read_until(launched, decoder, seen, "STDOUT", b"a\n")  # the first one is attached
        second = attach_input(agent, container_id_record(container_id), stdin_record(b"b\n"))
        assert second.status == 409, (second.status, second.text)
        assert "Multiple input connections are not allowed" in second.text
        first.send(stdin_record(b"c\n"), stdin_record(b""))
        assert first.finish().status == 200
        seen += [json.loads(r) for r in decoder.feed(launched.read())]
    finally:
        first.close()
        conn.close()
    assert output(seen, "STDOUT") == b"a\nc\n"  # nothing of the refused stream got through
    assert wait_nested(agent, container_id) == {"exit_status": 0}


def test_input_ends_when_the_container_does(agent: str, sleeper: dict[str, Any]) -> None:
    """An input stream still open when the command exits is answered 200 then."""
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id, "read a; echo got:$a; exit 4")
    stream = InputStream(agent)
    try:
        stream.send(container_id_record(container_id), stdin_record(b"x\n"))
        reply = stream.answer()  # the body was never ended
        assert reply.status == 200, (reply.status, reply.text)
        assert output(records(launched.read()), "STDOUT") == b"got:x\n"
    finally:
        stream.close()
        conn.close()
    assert wait_nested(agent, container_id) == {"exit_status": 4 << 8}


def test_attach_input_bad_requests(agent: str, sleeper: dict[str, Any]) -> None:
    parent = {"value": sleeper["container"]}
    unknown = {"value": "never", "parent": parent}
    for body, headers, status, text in (
        (json.dumps(container_id_record(unknown)).encode(),
         {"Content-Type": "application/json"}, 415,
         "Expecting 'Content-Type' to be application/recordio for ATTACH_CONTAINER_INPUT call"),
        (framed(container_id_record(unknown)), {"Content-Type": "application/recordio"}, 400,
         "Message-Content-Type"),
        (framed(container_id_record(unknown)), {**RECORDIO_HEADERS,
                                                "Message-Content-Type": "text/plain"}, 415,
         "Message-Content-Type"),
        (b"", RECORDIO_HEADERS, 400, "Received EOF"),
        (b"abc\n{}", RECORDIO_HEADERS, 400, "Failed to decode the request body"),
        (b"40\n{}", RECORDIO_HEADERS, 400, "ends inside a RecordIO record"),
        (framed(b"3\nnot"), RECORDIO_HEADERS, 400, "Failed to parse body into JSON"),
        (framed({"type": "GET_HEALTH"}), RECORDIO_HEADERS, 415,
         "Streaming 'Content-Type' application/recordio is not supported for GET_HEALTH call"),
        (framed({"type": "ATTACH_CONTAINER_INPUT"}), RECORDIO_HEADERS, 400,
         "Expecting 'attach_container_input' to be present"),
        (framed(stdin_record(b"x")), RECORDIO_HEADERS, 400, "'CONTAINER_ID'"),
        (framed(container_id_record({"parent": parent})), RECORDIO_HEADERS, 400,
         "attach_container_input.container_id.value"),
        (framed(container_id_record(unknown)), RECORDIO_HEADERS, 404,
         "Container " + sleeper["container"] + ".never cannot be found"),
        # Mesos cannot attach to a container without an I/O switchboard: a 500.
        (framed(container_id_record(parent)), RECORDIO_HEADERS, 500, "takes no input"),
    ):
        reply = post(agent, body, headers=headers)
        assert reply.status == status and text in reply.text, (body, reply.status, reply.text)

    # Bad records after the first, on a running session: each is refused with the
    # reason, and the session is untouched (cat still reads what comes next).
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id, "cat")
    bad_data = stdin_record(b"")
    bad_data["attach_container_input"]["process_io"]["data"]["type"] = "STDOUT"
    not_base64 = stdin_record(b"")
    not_base64["attach_container_input"]["process_io"]["data"]["data"] = "***"
    tty = {"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
        "type": "PROCESS_IO", "process_io": {"type": "CONTROL", "control": {
            "type": "TTY_INFO", "tty_info": {"window_size": {"rows": 1, "columns": 1}}}}}}
    try:
        for record, text in (
            (bad_data, "Expecting 'process_io.data.type' to be 'STDIN'"),
            (not_base64, "not base64"),
            (tty, "no tty"),
            ({"type": "GET_HEALTH"}, "ATTACH_CONTAINER_INPUT"),
            ({"type": "ATTACH_CONTAINER_INPUT", "attach_container_input": {
                "type": "PROCESS_IO"}}, "'attach_container_input.process_io' to be present"),
            (b"4\n[1,2", "Failed to parse a record into JSON"),
        ):
            reply = attach_input(agent, container_id_record(container_id), record)
            assert reply.status == 400 and text in reply.text, (record, reply.status, reply.text)
        done = attach_input(agent, container_id_record(container_id), stdin_record(b"ok\n"),
                            stdin_record(b""))
        assert done.status == 200, done.text
        assert output(records(launched.read()), "STDOUT") == b"ok\n"
    finally:
        conn.close()
    assert wait_nested(agent, container_id) == {"exit_status": 0}


def test_data_after_eof_is_refused(agent: str, sleeper: dict[str, Any]) -> None:
    container_id = child_of(sleeper)
    # stdin is closed but the command keeps running until the go file appears.
    conn, launched = launch_session(
        agent, container_id,
        "cat; for i in $(seq 1 1200); do [ -e go-$$ ] && break; sleep 0.05; done; echo $$")
    try:
        assert attach_input(agent, container_id_record(container_id),
                            stdin_record(b"")).status == 200
        late = attach_input(agent, container_id_record(container_id), stdin_record(b"late\n"))
        # Mesos' switchboard writes to the closed descriptor, which fails: 500.
        assert late.status == 500 and "Failed writing to stdin" in late.text \
            and "was closed" in late.text, (late.status, late.text)
    finally:
        shown = call(agent, {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}})
        pids = [c["container_status"]["executor_pid"]
                for c in shown["get_containers"]["containers"]
                if c["container_id"]["value"] == container_id["value"]]
        for pid in pids:  # the shell's $$ is the session's pid
            (Path(sleeper["directory"]) / f"go-{pid}").touch()
        out = output(records(launched.read()), "STDOUT")
        conn.close()
    assert out == f"{pids[0]}\n".encode()
    assert wait_nested(agent, container_id) == {"exit_status": 0}


def test_writing_to_a_stdin_the_command_closed(agent: str, sleeper: dict[str, Any]) -> None:
    """The command closed its stdin but runs on: the write fails with 500, as in Mesos."""
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id,
                                    "exec 0<&-; echo closed; exec sleep 300")
    try:
        read_until(launched, recordio.Decoder(), [], "STDOUT", b"closed\n")
        reply = attach_input(agent, container_id_record(container_id), stdin_record(b"x\n"))
        assert reply.status == 500 and "Failed writing to stdin" in reply.text, \
            (reply.status, reply.text)
        killed = post(agent, {"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": container_id}})
        assert killed.status == 200, killed.text
        launched.read()
    finally:
        conn.close()
    assert wait_nested(agent, container_id) == {"exit_status": 9}


# --------------------------------------------------------------------- LAUNCH_NESTED_CONTAINER


def test_launch_nested_container_then_wait(agent: str, sleeper: dict[str, Any]) -> None:
    container_id = child_of(sleeper)
    reply = post(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
        "container_id": container_id,
        "command": {"value": 'echo out; echo err >&2; echo "$MESOS_SANDBOX|$PWD"; exit 5'}}})
    assert reply.status == 200 and reply.body == b"", (reply.status, reply.text)
    assert wait_nested(agent, container_id) == {"exit_status": 5 << 8}
    # Its output is in its own sandbox inside the parent's, as in Mesos.
    sandbox = Path(sleeper["directory"]) / "containers" / container_id["value"]
    lines = (sandbox / "stdout").read_text().splitlines()
    assert lines[0] == "out"
    assert lines[1] == f"{sandbox}|{os.path.realpath(sandbox)}"
    assert (sandbox / "stderr").read_text() == "err\n"
    # The same id again once it has ended launches anew.
    again = post(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
        "container_id": container_id, "command": {"value": "exit 0"}}})
    assert again.status == 200, again.text
    assert wait_nested(agent, container_id) == {"exit_status": 0}


def test_launch_nested_container_running_twice_kill_and_attach(
        agent: str, sleeper: dict[str, Any]) -> None:
    container_id = child_of(sleeper)
    body = {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
        "container_id": container_id, "command": {"value": (
            "echo first; for i in $(seq 1 1200); do [ -e go ] && break; sleep 0.05; done; "
            "echo second; exec sleep 300")}}}
    assert post(agent, body).status == 200
    conn, attached = open_stream(agent, {
        "type": "ATTACH_CONTAINER_OUTPUT",
        "attach_container_output": {"container_id": container_id}})
    try:
        assert post(agent, body).status == 202  # running: Mesos' ALREADY_LAUNCHED
        no_input = attach_input(agent, container_id_record(container_id), stdin_record(b"x"))
        assert no_input.status == 500 and "takes no input" in no_input.text, no_input.text
        sandbox = Path(sleeper["directory"]) / "containers" / container_id["value"]
        (sandbox / "go").touch()
        # ATTACH_CONTAINER_OUTPUT follows its stdout file from the attach on.
        read_until(attached, recordio.Decoder(), [], "STDOUT", b"second\n")
        killed = post(agent, {"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": container_id}})
        assert killed.status == 200, killed.text
        attached.read()  # the output stream ends with it
    finally:
        conn.close()
    assert wait_nested(agent, container_id) == {"exit_status": 9}


def test_launch_nested_container_ends_with_its_parent(cluster: Cluster, agent: str) -> None:
    run = Execute(cluster.master_url, "short-lived", "exec sleep 300")
    try:
        def container() -> str | None:
            for fw in http_json(f"http://{agent}/state")["frameworks"]:
                for ex in fw["executors"]:
                    if any(t["id"] == "short-lived" and t["state"] == "TASK_RUNNING"
                           for t in ex["tasks"]):
                        return str(ex["container"])
            return None

        parent = wait_for(container, 60, "task short-lived to run")
        child = {"value": "child", "parent": {"value": parent}}
        reply = post(agent, {"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": child, "command": {"value": "exec sleep 300"}}})
        assert reply.status == 200, reply.text
    finally:
        run.stop()  # the framework goes: its executor, then the child
    ended = call(agent, {"type": "WAIT_CONTAINER", "wait_container": {"container_id": child}})
    assert ended["wait_container"] == {"exit_status": 9, "message": "Parent container terminated"}


def test_launch_container(agent: str, sleeper: dict[str, Any]) -> None:
    container_id = child_of(sleeper)
    body = {"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": container_id, "command": {"value": "exit 2"},
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]}}
    reply = post(agent, body)
    assert reply.status == 200, (reply.status, reply.text)  # a fresh id: launched now
    waited = call(agent, {"type": "WAIT_CONTAINER", "wait_container": {
        "container_id": container_id}})
    assert waited["wait_container"] == {"exit_status": 2 << 8}
    standalone = post(agent, {"type": "LAUNCH_CONTAINER", "launch_container": {
        "container_id": {"value": uuid.uuid4().hex}, "command": {"value": "true"}}})
    assert standalone.status == 501 and "Standalone containers" in standalone.text, \
        (standalone.status, standalone.text)


def test_launch_nested_container_bad_input(agent: str, sleeper: dict[str, Any]) -> None:
    parent = {"value": sleeper["container"]}
    for body, status, text in (
        ({"type": "LAUNCH_NESTED_CONTAINER"}, 400,
         "Expecting 'launch_nested_container' to be present"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "c1"}, "command": {"value": "true"}}}, 400,
         "launch_nested_container.container_id.parent"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "c1", "parent": parent}}}, 400,
         "launch_nested_container.command"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "c1", "parent": {"value": "no-such-parent"}},
            "command": {"value": "true"}}}, 400, "Parent container no-such-parent"),
        ({"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
            "container_id": {"value": "c1", "parent": parent},
            "command": {"shell": False, "value": "/no/such/program"}}}, 400,
         "Failed to launch container"),
        ({"type": "LAUNCH_CONTAINER", "launch_container": {
            "container_id": {"value": "c/1", "parent": parent},
            "command": {"value": "true"}}}, 400, "launch_container.container_id"),
    ):
        reply = post(agent, body)
        assert reply.status == status and text in reply.text, (body, reply.status, reply.text)
    shown = call(agent, {"type": "GET_CONTAINERS", "get_containers": {"show_nested": True}})
    assert all("parent" not in c["container_id"] for c in shown["get_containers"]["containers"])


def test_input_reattached_after_the_client_drops_midstream(
        agent: str, cluster: Cluster, sleeper: dict[str, Any]) -> None:
    """A client that goes away in the middle of its input stream ends that stream only:
    what it sent got through, the next one may attach (no 409 left behind), and the
    agent logs no traceback for it."""
    container_id = child_of(sleeper)
    conn, launched = launch_session(agent, container_id, "cat")
    dropped = InputStream(agent)
    try:
        seen: list[dict[str, Any]] = []
        decoder = recordio.Decoder()
        dropped.send(container_id_record(container_id), stdin_record(b"one\n"))
        read_until(launched, decoder, seen, "STDOUT", b"one\n")
        dropped.send(b"9\n{\"type\"")  # half a record, then the connection goes
        dropped.close()

        def reattached() -> Reply | None:
            reply = attach_input(agent, container_id_record(container_id),
                                 stdin_record(b"two\n"), stdin_record(b""))
            return None if reply.status == 409 else reply

        again = wait_for(reattached, 30, "the dropped input stream to be let go")
        assert again.status == 200, (again.status, again.text)
        seen += [json.loads(r) for r in decoder.feed(launched.read())]
    finally:
        dropped.close()
        conn.close()
    assert output(seen, "STDOUT") == b"one\ntwo\n"
    assert wait_nested(agent, container_id) == {"exit_status": 0}
    log = cluster.agents[0].log()
    assert "Traceback" not in log and "never retrieved" not in log, log[-3000:]


def launch_nested(agent: str, container_id: dict[str, Any], command: str,
                  **extra: Any) -> Reply:
    return post(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
        "container_id": container_id, "command": {"value": command}, **extra}})


def test_concurrent_launches_of_one_id(agent: str, sleeper: dict[str, Any]) -> None:
    """Two launches of one id at once: one starts it (200), the other is Mesos'
    ALREADY_LAUNCHED (202), whether it came during the first's launch or after."""
    container_id = child_of(sleeper)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: launch_nested(agent, container_id, "exec sleep 300"),
                                range(2)))
    try:
        assert sorted(r.status for r in replies) == [200, 202], \
            [(r.status, r.text) for r in replies]
    finally:
        post(agent, {"type": "KILL_NESTED_CONTAINER", "kill_nested_container": {
            "container_id": container_id}})
    assert wait_nested(agent, container_id) == {"exit_status": 9}


def test_remove_deletes_the_sandbox(agent: str, sleeper: dict[str, Any]) -> None:
    """REMOVE of a LAUNCH_NESTED_CONTAINER container deletes its sandbox, as Mesos does;
    while it runs REMOVE is Mesos' failure. A launch that cannot start leaves none."""
    container_id = child_of(sleeper)
    sandbox = Path(sleeper["directory"]) / "containers" / container_id["value"]
    assert launch_nested(agent, container_id,
                         "echo hi; for i in $(seq 1 1200); do [ -e go ] && break; "
                         "sleep 0.05; done").status == 200
    remove = {"type": "REMOVE_NESTED_CONTAINER",
              "remove_nested_container": {"container_id": container_id}}
    early = post(agent, remove)
    assert early.status == 500 and "has not terminated yet" in early.text, \
        (early.status, early.text)
    (sandbox / "go").touch()
    assert wait_nested(agent, container_id) == {"exit_status": 0}
    assert (sandbox / "stdout").read_text() == "hi\n"
    removed = post(agent, remove)
    assert removed.status == 200, removed.text
    assert not sandbox.exists()
    gone = post(agent, {"type": "WAIT_NESTED_CONTAINER",
                        "wait_nested_container": {"container_id": container_id}})
    assert gone.status == 404, (gone.status, gone.text)

    failed = child_of(sleeper)
    reply = post(agent, {"type": "LAUNCH_NESTED_CONTAINER", "launch_nested_container": {
        "container_id": failed, "command": {"shell": False, "value": "/no/such/program"}}})
    assert reply.status == 400 and "Failed to launch container" in reply.text, reply.text
    assert not (Path(sleeper["directory"]) / "containers" / failed["value"]).exists()


def test_tty_info_is_refused(agent: str, sleeper: dict[str, Any]) -> None:
    """A ContainerInfo asking for a tty cannot be honoured (pipes here): 400, not ignored."""
    tty = {"type": "MESOS", "tty_info": {"window_size": {"rows": 24, "columns": 80}}}
    for name in ("launch_nested_container", "launch_container",
                 "launch_nested_container_session"):
        container_id = child_of(sleeper)
        reply = post(agent, {"type": name.upper(), name: {
            "container_id": container_id, "command": {"value": "true"}, "container": tty}})
        assert reply.status == 400 and "The provided ContainerInfo is not supported" in \
            reply.text, (name, reply.status, reply.text)
        missing = post(agent, {"type": "WAIT_NESTED_CONTAINER", "wait_nested_container": {
            "container_id": container_id}})
        assert missing.status == 404, (name, missing.status)  # nothing was launched


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) ``sleep``: our nested container."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and cmdline.startswith(b"sleep")


def test_launched_nested_containers_end_with_the_agent(tmp_path: Path) -> None:
    """LAUNCH_NESTED_CONTAINER processes do not outlive the agent that started them."""
    with Cluster(tmp_path, agents=1) as own:
        address = own.agent_url(0).removeprefix("http://")
        run = Execute(own.master_url, "holder", "exec sleep 300")
        pid = 0
        try:
            def parent() -> str | None:
                for fw in http_json(f"http://{address}/state")["frameworks"]:
                    for ex in fw["executors"]:
                        if any(t["state"] == "TASK_RUNNING" for t in ex["tasks"]):
                            return str(ex["directory"]) + "|" + str(ex["container"])
                return None

            directory, container = wait_for(parent, 60, "task holder to run").split("|")
            child = {"value": "stays", "parent": {"value": container}}
            reply = launch_nested(address, child, "echo $$ > pid; exec sleep 300")
            assert reply.status == 200, reply.text
            pid_file = Path(directory) / "containers" / "stays" / "pid"
            pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(),
                               30, "the nested container to start"))
            assert wait_for(lambda: _running(pid), 30, "its sleep to run")
            own.agents[0].stop(timeout=30)
            wait_for(lambda: not _running(pid), 30, "the nested container to be killed")
        finally:
            run.stop()
            if pid and _running(pid):  # only what this test started, by its pid
                os.kill(pid, signal.SIGKILL)
