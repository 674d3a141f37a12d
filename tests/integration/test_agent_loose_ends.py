"""Loose ends of the agent and the flags, against real masters and agents: secrets kept
out of every rendering of the flags, dynamic reservations in the agent's ``/state``,
URIs of task-group tasks fetched into their sandboxes, volumes given to the task's
user, and read-only volumes enforced (or refused where they cannot be)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import mesos
from mesos.resources import Resources
from mesos.testing.cluster import (
    Cluster,
    Daemon,
    free_port,
    http_json,
    reap_executors,
    wait_for,
)
from mesos.testing.rawsched import RawScheduler
from mesos.testing.zk import ZooKeeperServer
from tests.integration.test_agent_isolation import cgroups_root, start  # noqa: F401
from tests.integration.test_master_recovery import operator
from tests.integration.test_volumes import accept

pytestmark = pytest.mark.slow

DYN = [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "reservations": DYN}


async def post_json(url: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# ---------------------------------------------------------------------------- #4 flags


def _with_password(zk_url: str, user: str, password: str) -> str:
    assert zk_url.startswith("zk://")
    return f"zk://{user}:{password}@{zk_url[len('zk://'):]}"


async def test_flags_never_show_the_zk_password(
        tmp_path: Path, zk_server: ZooKeeperServer, zk_url: str) -> None:
    """The master's ``--zk`` and the agent's ``--master`` hold ZooKeeper credentials:
    ``/flags``, ``/state`` and ``GET_FLAGS`` of both show the user, not the password."""
    password = "s3cr3t-pw"
    secret_url = _with_password(zk_url, "ops", password)
    redacted = _with_password(zk_url, "ops", "********")
    with Cluster(tmp_path, agents=0,
                 master_flags=[f"--zk={secret_url}", "--quorum=1"]) as c:
        port = free_port()
        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        agent = Daemon("agent", [
            sys.executable, "-m", "mesos.cli.agent", f"--master={secret_url}",
            "--ip=127.0.0.1", f"--port={port}", f"--work_dir={agent_dir}",
            "--registration_backoff_factor=100ms", "--resources=cpus:1;mem:128"],
            agent_dir / "agent.log")
        agent.start()
        try:
            wait_for(lambda: c.get("/master/slaves")["slaves"], 60,
                     "the agent to register through ZooKeeper")
            agent_url = f"http://127.0.0.1:{port}"
            rendered = {
                "master /flags": c.get("/flags")["flags"]["zk"],
                "master /master/flags": c.get("/master/flags")["flags"]["zk"],
                "master /state": c.state()["flags"]["zk"],
                "agent /flags": http_json(f"{agent_url}/flags")["flags"]["master"],
                "agent /state": http_json(f"{agent_url}/state")["flags"]["master"],
            }
            master_v1 = await post_json(f"http://{c.master_url}/api/v1", {"type": "GET_FLAGS"})
            agent_v1 = await post_json(f"{agent_url}/api/v1", {"type": "GET_FLAGS"})
            for name, body, flag in (("master GET_FLAGS", master_v1, "zk"),
                                     ("agent GET_FLAGS", agent_v1, "master")):
                [value] = [f["value"] for f in body["get_flags"]["flags"] if f["name"] == flag]
                rendered[name] = value
            assert rendered == dict.fromkeys(rendered, redacted)
            # Nothing anywhere in those answers holds the password.
            for path in ("/flags", "/master/state"):
                assert password not in str(c.get(path))
            assert password not in str(http_json(f"{agent_url}/state"))
            assert password not in str(master_v1) + str(agent_v1)
            # Nor do the logs: the agent names its master on registering.
            agent_log = agent.log()
            assert f"Registered with master {redacted}" in agent_log, agent_log[-3000:]
            assert c.master is not None
            for name, text in (("agent", agent_log), ("master", c.master.log())):
                assert password not in text, f"the {name} log shows the password"
        except BaseException:
            print(agent.log()[-3000:])  # the agent's side, shown with the failure
            raise
        finally:
            agent.stop()


# ---------------------------------------------------------------------------- #3 /state


async def test_agent_state_reports_dynamic_reservations(tmp_path: Path) -> None:
    """After a RESERVE the agent's ``/state`` counts the checkpointed reservation in
    ``reserved_resources`` (by role, flat and full) and out of ``unreserved_resources``,
    as Mesos' agent does, with ``resources`` still the whole agent."""
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        agent_id = c.get("/master/slaves")["slaves"][0]["id"]
        agent_url = c.agent_url(0)
        before = http_json(f"{agent_url}/state")
        assert before["reserved_resources"] == {}
        want = [scalar("cpus", 1), scalar("mem", 256)]
        code, text = await operator(c.master_url, {"type": "RESERVE_RESOURCES",
                                                   "reserve_resources": {
                                                       "agent_id": {"value": agent_id},
                                                       "resources": want}})
        assert code == 202, text

        def reserved() -> dict[str, Any] | None:
            state: dict[str, Any] = http_json(f"{agent_url}/state")
            return state if state["reserved_resources"] else None

        state = wait_for(reserved, 30, "the agent's /state to show the reservation")
        assert set(state["reserved_resources"]) == {"db"}
        db = state["reserved_resources"]["db"]
        assert (db["cpus"], db["mem"], db["disk"]) == (1.0, 256.0, 0.0)
        unreserved = state["unreserved_resources"]
        assert (unreserved["cpus"], unreserved["mem"], unreserved["disk"]) == (3.0, 768.0, 2048.0)
        assert (state["resources"]["cpus"], state["resources"]["mem"]) == (4.0, 1024.0)
        full = Resources.from_json(state["reserved_resources_full"]["db"])
        assert full == Resources.from_json(want)
        assert all(r["role"] == "db" for r in state["reserved_resources_full"]["db"])
        assert Resources.from_json(state["unreserved_resources_full"]).scalar("cpus") == 3.0


# ---------------------------------------------------------------------------- #5 group URIs

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}


def small(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}}


def group_task(offer: dict[str, Any], task_id: str, command: str,
               uris: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": offer["agent_id"],
            "command": {"value": command, "uris": uris},
            "resources": [small("cpus", 0.1), small("mem", 32)]}


async def launch_groups(s: RawScheduler, offer: dict[str, Any],
                        groups: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Launch each ``{executor id: tasks}`` group on its own DEFAULT executor, from one
    offer; the final status of every task."""
    operations = [{"type": "LAUNCH_GROUP", "launch_group": {
        "executor": {"type": "DEFAULT", "executor_id": {"value": executor_id},
                     "framework_id": s.fw(),
                     "resources": [small("cpus", 0.1), small("mem", 32)]},
        "task_group": {"tasks": tasks}}} for executor_id, tasks in groups.items()]
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]], "operations": operations}})
    assert code == 202, text
    final: dict[str, dict[str, Any]] = {}
    wanted = {t["task_id"]["value"] for tasks in groups.values() for t in tasks}
    for _ in range(100):  # bounded: a handful of updates per task
        if set(final) == wanted:
            break
        event = await s.next_event("UPDATE", timeout=60,
                                   skip=("HEARTBEAT", "OFFERS", "FAILURE"))
        status = event["update"]["status"]
        if "uuid" in status:
            await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
                "agent_id": status["agent_id"], "task_id": status["task_id"],
                "uuid": status["uuid"]}})
        if status["state"] in TERMINAL:
            final[status["task_id"]["value"]] = status
    return final


async def test_task_group_uris_are_fetched_into_each_task_sandbox(tmp_path: Path) -> None:
    """Each task of a group finds its own URIs (plain, executable, extracted, renamed) in
    its own sandbox when it starts; a URI that cannot be fetched fails the group with
    the fetcher's reason instead of starting tasks without their files."""
    payload = tmp_path / "payload.txt"
    payload.write_text("from-the-fetcher\n")
    script = tmp_path / "hello.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with Cluster(tmp_path / "cluster", agents=1) as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe({"user": "root", "name": "group-uris"})
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            a = group_task(offer, "a", 'test "$(cat payload.txt)" = from-the-fetcher && '
                           '[ "$PWD" = "$MESOS_SANDBOX" ] && [ ! -e b.out ]',
                           [{"value": f"file://{payload}"}])
            b = group_task(offer, "b", 'test "$(./hello.sh)" = hi && test -f b.out',
                           [{"value": str(script), "executable": True},
                            {"value": f"file://{payload}", "output_file": "b.out"}])
            # A URI that is not there: its group fails, saying which URI and why.
            missing = tmp_path / "no-such-file"
            bad = group_task(offer, "bad", "true", [{"value": f"file://{missing}"}])
            other = group_task(offer, "other", "sleep 60", [])
            final = await launch_groups(s, offer, {"fetching-executor": [a, b],
                                                   "failing-executor": [bad, other]})
            assert {t: st["state"] for t, st in final.items()} == {
                "a": "TASK_FINISHED", "b": "TASK_FINISHED",
                "bad": "TASK_FAILED", "other": "TASK_FAILED"}, final
            assert final["bad"]["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
            assert str(missing) in final["bad"]["message"], final["bad"]
            runs = list(tmp_path.glob("cluster/agent0/slaves/*/frameworks/*/executors/"
                                      "fetching-executor/runs/latest/tasks"))
            assert len(runs) == 1, runs
            assert (runs[0] / "a" / "payload.txt").read_text() == "from-the-fetcher\n"
            assert (runs[0] / "b" / "b.out").read_text() == "from-the-fetcher\n"
            assert os.access(runs[0] / "b" / "hello.sh", os.X_OK)
        finally:
            await s.close()


# ---------------------------------------------------------------------------- volumes

VOLUME_FW: dict[str, Any] = {"user": "root", "name": "volumes", "role": "db",
                             "principal": "ops", "checkpoint": False}


def volume(vid: str, mode: str, path: str) -> dict[str, Any]:
    return {**scalar("disk", 16), "disk": {"persistence": {"id": vid, "principal": "ops"},
                                           "volume": {"mode": mode, "container_path": path}}}


def volume_task(task_id: str, agent_id: dict[str, str], command: str,
                vol: dict[str, Any]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
            "command": {"value": command},
            "resources": [scalar("cpus", 0.25), scalar("mem", 32), vol]}


async def create_volumes(s: RawScheduler, *vols: dict[str, Any]) -> dict[str, str]:
    """Reserve and create ``vols`` on the first offer; the agent id."""
    offer = (await s.next_event("OFFERS", timeout=60))["offers"]["offers"][0]
    reserve = {"type": "RESERVE", "reserve": {"resources": [
        scalar("cpus", 1), scalar("mem", 128), scalar("disk", 16 * len(vols))]}}
    await accept(s, offer, reserve, {"type": "CREATE", "create": {"volumes": list(vols)}})
    return dict(offer["agent_id"])


async def _ack(s: RawScheduler, status: dict[str, Any]) -> None:
    if "uuid" in status:
        await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"],
            "uuid": status["uuid"]}})


async def run_task(s: RawScheduler, vid: str, task_id: str, command: str,
                   vol: dict[str, Any]) -> dict[str, Any]:
    """Run ``command`` on the next offer holding volume ``vid``; its final status.
    Every other offer is declined at once, so none is left outstanding."""
    launched = False
    for _ in range(300):  # bounded: offers come every 100ms while we decline them
        event = await s.next_event("*", timeout=90)
        if event["type"] == "UPDATE":
            status = event["update"]["status"]
            await _ack(s, status)
            if status["task_id"]["value"] == task_id and status["state"] in TERMINAL:
                return dict(status)
        if event["type"] != "OFFERS":
            continue
        for offer in event["offers"]["offers"]:
            held = Resources.from_json(offer["resources"]).volumes()
            if not launched and any(v.persistence_id == vid for v in held):
                await accept(s, offer, {"type": "LAUNCH", "launch": {"task_infos": [
                    volume_task(task_id, offer["agent_id"], command, vol)]}})
                launched = True
                continue
            await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})
    raise AssertionError(f"{task_id}: {'no final status' if launched else 'no offer of ' + vid}")


def host_mounts_under(path: Path) -> list[str]:
    """Mount points in this (the host's) mount namespace at or under ``path``."""
    root = str(path.resolve())
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [line.split()[4] for line in fh]
    return [p for p in points if p == root or p.startswith(root + "/")]


# ---------------------------------------------------------------------------- #2 owner


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A work directory whose ancestors 'nobody' can traverse (tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="mesos-volume-owner-", dir="/tmp"))
    try:
        base.chmod(0o755)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def python_for(user: str) -> str:
    """A Python of this version that ``user`` can run (the executor runs as the task's
    user; the venv's interpreter may live where only root can reach, such as /root)."""
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    candidates = [sys.executable, f"/usr/bin/python{want}", f"/usr/local/bin/python{want}"]
    entry = pwd.getpwnam(user)
    for python in candidates:
        if not os.path.exists(python):
            continue
        try:  # dropping ids the way the launcher does
            probe = subprocess.run(
                [python, "-S", "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True, text=True, timeout=60, cwd="/", user=entry.pw_uid,
                group=entry.pw_gid, extra_groups=[])
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == want:
            return python
    pytest.fail(f"no Python {want} that user '{user}' can run (tried {candidates}): the "
                "executor runs as the task's user", pytrace=False)


def start_agent_runnable_by(user: str, c: Cluster, world_dir: Path) -> tuple[Daemon, Path]:
    """Start agent0 (``filesystem/posix``, so tasks run as their user) with a Python
    ``user`` can run: the agent starts executors with its own interpreter, finding our
    packages through PYTHONPATH. Returns the daemon and its work dir."""
    python = python_for(user)
    paths = [sysconfig.get_paths()["purelib"], str(Path(mesos.__file__).parents[1])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    agent_dir = world_dir / "agent0"
    agent_dir.mkdir()
    agent = Daemon("agent0", [
        python, "-m", "mesos.cli.agent", f"--master={c.master_url}", "--ip=127.0.0.1",
        f"--port={free_port()}", f"--work_dir={agent_dir}",
        "--registration_backoff_factor=100ms", "--resources=cpus:4;mem:1024;disk:1024",
        "--isolation=posix/cpu,posix/mem,filesystem/posix"], agent_dir / "agent.log", env)
    agent.start()
    return agent, agent_dir



async def test_new_volume_is_given_to_the_task_user(world_dir: Path) -> None:
    """A task running as 'nobody' can write to a new volume: on its first use the
    volume directory is chowned to the task's user."""
    if os.geteuid() != 0:
        pytest.fail("running tasks as another user needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    with Cluster(world_dir, agents=0) as c:
        agent, agent_dir = start_agent_runnable_by("nobody", c, world_dir)
        s = RawScheduler(c.master_url)
        try:
            wait_for(lambda: c.get("/master/slaves")["slaves"], 60, "the agent to register")
            await s.subscribe({**VOLUME_FW, "user": "nobody"})
            vol = volume("owned", "RW", "data")
            await create_volumes(s, vol)
            on_disk = agent_dir / "volumes" / "roles" / "db" / "owned"
            wait_for(on_disk.exists, 30, "the volume directory")
            assert on_disk.stat().st_uid == 0  # made by the agent; nobody's only once used
            status = await run_task(s, "owned", "writer",
                                    'test "$(id -un)" = nobody && echo hi > data/f', vol)
            assert status["state"] == "TASK_FINISHED", (status, agent.log()[-3000:])
            st = on_disk.stat()
            assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
            assert (on_disk / "f").stat().st_uid == nobody.pw_uid
            assert (on_disk / "f").read_text() == "hi\n"
        finally:
            await s.close()
            agent.stop(sig=signal.SIGUSR1)
            reap_executors(agent.args)


async def _launch_on(s: RawScheduler, executor_id: str, vid: str,
                     tasks: Callable[[dict[str, Any]], list[dict[str, Any]]],
                     want: dict[str, set[str]], *,
                     executor_volume: dict[str, Any] | None = None,
                     ) -> dict[str, dict[str, Any]]:
    """Launch ``tasks(offer)`` as one group on DEFAULT executor ``executor_id`` on the
    next offer holding volume ``vid`` (declining the others); the first status of each
    task in ``want``'s states (task id -> states). ``executor_volume`` goes in the
    ExecutorInfo's own resources."""
    launched = False
    seen: dict[str, dict[str, Any]] = {}
    for _ in range(300):  # bounded: offers come every 100ms while we decline them
        if set(seen) == set(want):
            return seen
        event = await s.next_event("*", timeout=90)
        if event["type"] == "UPDATE":
            status = event["update"]["status"]
            await _ack(s, status)
            task_id = status["task_id"]["value"]
            if task_id in want and task_id not in seen and status["state"] in (
                    want[task_id] | TERMINAL):
                seen[task_id] = dict(status)
            continue
        if event["type"] != "OFFERS":
            continue
        for offer in event["offers"]["offers"]:
            held = Resources.from_json(offer["resources"]).volumes()
            if not launched and any(v.persistence_id == vid for v in held):
                executor = {"type": "DEFAULT", "executor_id": {"value": executor_id},
                            "framework_id": s.fw(),
                            "resources": [scalar("cpus", 0.1), scalar("mem", 16),
                                          *([executor_volume] if executor_volume else [])]}
                await accept(s, offer, {"type": "LAUNCH_GROUP", "launch_group": {
                    "executor": executor, "task_group": {"tasks": tasks(offer)}}})
                launched = True
                continue
            await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})
    raise AssertionError(f"no status for {sorted(set(want) - set(seen))}: {seen}")


async def test_volumes_added_to_a_running_container(world_dir: Path) -> None:
    """Groups joining a running default executor (user 'nobody'): a new read-write
    volume of theirs is linked before the executor hears of them and given to the
    container's user, as at launch; one with a read-only volume, which only a starting
    container can mount, fails without reaching the executor."""
    if os.geteuid() != 0:
        pytest.fail("running tasks as another user needs root (CI runs as root)")
    nobody = pwd.getpwnam("nobody")
    with Cluster(world_dir, agents=0) as c:
        agent, agent_dir = start_agent_runnable_by("nobody", c, world_dir)
        s = RawScheduler(c.master_url)
        try:
            wait_for(lambda: c.get("/master/slaves")["slaves"], 60, "the agent to register")
            await s.subscribe({**VOLUME_FW, "user": "nobody"})
            rw, ro = volume("late-rw", "RW", "data"), volume("late-ro", "RO", "ro")
            await create_volumes(s, rw, ro)

            def task(offer: dict[str, Any], task_id: str, command: str,
                     *vols: dict[str, Any]) -> dict[str, Any]:
                return {"name": task_id, "task_id": {"value": task_id},
                        "agent_id": offer["agent_id"], "command": {"value": command},
                        "resources": [scalar("cpus", 0.1), scalar("mem", 16), *vols]}

            first = await _launch_on(s, "pod", "late-rw", lambda o: [
                task(o, "sleeper", "sleep 300")], {"sleeper": {"TASK_RUNNING"}})
            assert first["sleeper"]["state"] == "TASK_RUNNING", first
            on_disk = agent_dir / "volumes" / "roles" / "db" / "late-rw"
            assert on_disk.stat().st_uid == 0  # not the running container's yet
            # The task runs in <executor sandbox>/tasks/<id>, its MESOS_SANDBOX, and
            # finds its volume there, as a nested container does in Mesos.
            joined = await _launch_on(s, "pod", "late-rw", lambda o: [task(
                o, "rw-task", 'test "$(id -un)" = nobody && [ "$PWD" = "$MESOS_SANDBOX" ] '
                '&& echo hi > "$MESOS_SANDBOX/data/f"', rw)], {"rw-task": TERMINAL})
            assert joined["rw-task"]["state"] == "TASK_FINISHED", (joined, agent.log()[-3000:])
            st = on_disk.stat()
            assert (st.st_uid, st.st_gid) == (nobody.pw_uid, nobody.pw_gid)
            assert (on_disk / "f").read_text() == "hi\n"
            [run] = agent_dir.glob("slaves/*/frameworks/*/executors/pod/runs/latest")
            link = run / "tasks" / "rw-task" / "data"
            assert link.is_symlink() and link.resolve() == on_disk.resolve(), link
            assert (run / "tasks" / "rw-task").stat().st_uid == nobody.pw_uid
            assert not os.path.lexists(run / "data")  # not the executor's: the task's

            refused = await _launch_on(s, "pod", "late-ro", lambda o: [
                task(o, "ro-task", 'touch "$MESOS_SANDBOX/ro/x"', ro)], {"ro-task": TERMINAL})
            status = refused["ro-task"]
            assert status["state"] == "TASK_FAILED", status
            assert status["reason"] == "REASON_CONTAINER_UPDATE_FAILED", status
            assert "read-only persistent volume 'late-ro'" in status["message"], status
            # The executor never heard of it: it made no sandbox for the task.
            assert not list(agent_dir.glob("slaves/*/frameworks/*/executors/pod/runs/"
                                           "latest/tasks/ro-task"))

            # The default executor runs every task as its own user ('nobody'): a task
            # asking for another fails, saying why, before anything is made for it.
            pwd.getpwnam("daemon")  # KeyError: the test needs that user on the machine
            other = await _launch_on(s, "pod", "late-rw", lambda o: [{
                **task(o, "daemon-task", "true", rw),
                "command": {"value": "true", "user": "daemon",
                            "uris": [{"value": str(world_dir / "agent0" / "agent.log")}]},
            }], {"daemon-task": TERMINAL})
            status = other["daemon-task"]
            assert status["state"] == "TASK_FAILED", status
            assert "asks to run as user 'daemon'" in status["message"], status
            assert "own user 'nobody'" in status["message"], status
            assert not list(agent_dir.glob("slaves/*/frameworks/*/executors/pod/runs/"
                                           "latest/tasks/daemon-task"))
        finally:
            await s.close()
            agent.stop(sig=signal.SIGUSR1)
            reap_executors(agent.args)


async def test_executor_volume_relink_never_follows_a_planted_link(
        world_dir: Path) -> None:
    """The default executor's own volume (ExecutorInfo resources) is linked again
    whenever its tasks change, in a sandbox its user ('nobody') owns: a task of that
    user replaces a directory on the volume's container path with a link to a
    root-only directory; when the task ends, the agent refuses to go through the link
    (a warning) and makes nothing where it points."""
    if os.geteuid() != 0:
        pytest.fail("running tasks as another user needs root (CI runs as root)")
    victim = world_dir / "victim"
    victim.mkdir(mode=0o700)
    with Cluster(world_dir, agents=0) as c:
        agent, _ = start_agent_runnable_by("nobody", c, world_dir)
        s = RawScheduler(c.master_url)
        try:
            wait_for(lambda: c.get("/master/slaves")["slaves"], 60, "the agent to register")
            await s.subscribe({**VOLUME_FW, "user": "nobody"})
            vol = volume("exec-vol", "RW", "a/new")
            await create_volumes(s, vol)
            plant = f'cd ../.. && test -L a/new && rm -rf a && ln -s {victim} a'
            done = await _launch_on(s, "pod", "exec-vol", lambda o: [{
                "name": "planter", "task_id": {"value": "planter"},
                "agent_id": o["agent_id"], "command": {"value": plant},
                "resources": [scalar("cpus", 0.1), scalar("mem", 16)]}],
                {"planter": TERMINAL}, executor_volume=vol)
            assert done["planter"]["state"] == "TASK_FINISHED", (done, agent.log()[-3000:])
            refused = "'a' in the sandbox is a symbolic link"
            wait_for(lambda: refused in agent.log() or any(victim.iterdir()), 60,
                     "the agent to relink the executor's volume")
            assert list(victim.iterdir()) == []  # the agent wrote nothing through it
            assert refused in agent.log()
        finally:
            await s.close()
            agent.stop(sig=signal.SIGUSR1)
            reap_executors(agent.args)


# ---------------------------------------------------------------------------- #1 RO


async def test_read_only_volume_is_refused_without_a_mount_namespace(tmp_path: Path) -> None:
    """The posix launcher (the tests' default) can only symlink a volume, which cannot
    be read-only: a task using an RO volume fails, saying why, instead of writing."""
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:1024") as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(VOLUME_FW)
            vol = volume("ro-posix", "RO", "ro")
            await create_volumes(s, vol)
            status = await run_task(s, "ro-posix", "writer", "touch ro/new", vol)
            assert status["state"] == "TASK_FAILED", status
            assert status["reason"] == "REASON_CONTAINER_LAUNCH_FAILED", status
            message = status["message"]
            assert "read-only persistent volume 'ro-posix'" in message, message
            assert "posix launcher" in message and "mount namespace" in message, message
            on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "ro-posix"
            assert list(on_disk.iterdir()) == []
        finally:
            await s.close()


@pytest.mark.parametrize("isolation", ["cgroups/mem", "cgroups/mem,namespaces/pid"])
async def test_read_only_volume_is_mounted_read_only(
        start: Callable[..., Cluster], tmp_path: Path, isolation: str) -> None:  # noqa: F811
    """With the linux launcher an RO volume is bind-mounted read-only in the task's own
    mount namespace (alone, or the pid namespace's): reading works, writing fails; an
    RW volume is still writable; no mount is left on the host."""
    c = start(isolation)
    s = RawScheduler(c.master_url)
    try:
        await s.subscribe(VOLUME_FW)
        ro, rw = volume("ro1", "RO", "ro"), volume("rw1", "RW", "rw")
        await create_volumes(s, ro, rw)
        volumes_dir = tmp_path / "agent0" / "volumes" / "roles" / "db"
        wait_for((volumes_dir / "ro1").exists, 30, "the volume directory")
        (volumes_dir / "ro1" / "msg").write_text("hello\n")

        reader = await run_task(s, "ro1", "reader", 'test "$(cat ro/msg)" = hello', ro)
        assert reader["state"] == "TASK_FINISHED", (reader, c.logs()[-3000:])
        writer = await run_task(s, "ro1", "writer", "echo x > ro/new", ro)
        assert writer["state"] == "TASK_FAILED", writer
        assert not (volumes_dir / "ro1" / "new").exists()
        assert (volumes_dir / "ro1" / "msg").read_text() == "hello\n"
        stderr = list(tmp_path.glob(
            "agent0/slaves/*/frameworks/*/executors/writer/runs/latest/stderr"))
        assert len(stderr) == 1 and "Read-only file system" in stderr[0].read_text()

        # Nor through the volume's host path, which the container can name.
        host = await run_task(s, "ro1", "host-writer", f"echo x > {volumes_dir}/ro1/h", ro)
        assert host["state"] == "TASK_FAILED", host
        assert not (volumes_dir / "ro1" / "h").exists()

        rw_writer = await run_task(s, "rw1", "rw-writer", "echo x > rw/new", rw)
        assert rw_writer["state"] == "TASK_FINISHED", rw_writer
        assert (volumes_dir / "rw1" / "new").read_text() == "x\n"
    finally:
        await s.close()
    # The mounts lived in the tasks' namespaces only: none is on the host.
    assert host_mounts_under(tmp_path) == []


async def test_read_only_volume_of_a_starting_group_is_in_the_task_sandbox(
        start: Callable[..., Cluster], tmp_path: Path) -> None:  # noqa: F811
    """A task group whose tasks start their container with a read-only volume: the
    volume is bind-mounted read-only at the task's own ``$MESOS_SANDBOX/<path>``
    (reading works, writing fails), and no mount is left on the host."""
    c = start("cgroups/mem")
    s = RawScheduler(c.master_url)
    try:
        await s.subscribe(VOLUME_FW)
        ro = volume("group-ro", "RO", "ro")
        await create_volumes(s, ro)
        on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "group-ro"
        wait_for(on_disk.exists, 30, "the volume directory")
        (on_disk / "msg").write_text("hello\n")
        command = ('test "$(cat "$MESOS_SANDBOX/ro/msg")" = hello && '
                   '! (echo x > "$MESOS_SANDBOX/ro/new")')
        final = await _launch_on(s, "ro-pod", "group-ro", lambda o: [{
            "name": "ro-reader", "task_id": {"value": "ro-reader"},
            "agent_id": o["agent_id"], "command": {"value": command},
            "resources": [scalar("cpus", 0.1), scalar("mem", 16), ro]}],
            {"ro-reader": TERMINAL})
        assert final["ro-reader"]["state"] == "TASK_FINISHED", (final, c.logs()[-3000:])
        assert sorted(p.name for p in on_disk.iterdir()) == ["msg"]
        [run] = tmp_path.glob("agent0/slaves/*/frameworks/*/executors/ro-pod/runs/latest")
        stderr = (run / "tasks" / "ro-reader" / "stderr").read_text()
        assert "Read-only file system" in stderr, stderr
        point = run / "tasks" / "ro-reader" / "ro"
        assert point.is_dir() and not point.is_symlink()
    finally:
        await s.close()
    assert host_mounts_under(tmp_path) == []
