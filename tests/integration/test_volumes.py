"""Persistent volumes on a real agent: a volume written by one task is read by a later
task, survives the agent's restart (and the master's: the agent reports it), a
shared volume is used by two tasks at the same time, and a volume is only ever
named whole."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mesos.agent.containerizer.isolator import BindMount
from mesos.agent.containerizer.launcher import _mount_prefix
from mesos.resources import Resources
from mesos.testing.cluster import Cluster
from mesos.testing.rawsched import RawScheduler
from tests.integration.test_master_recovery import ack_until, operator
from tests.integration.test_reservations import agent_total, form

pytestmark = pytest.mark.slow

DYN = [{"type": "DYNAMIC", "role": "db", "principal": "ops"}]
FW: dict[str, Any] = {"user": "root", "name": "volumes", "role": "db", "principal": "ops",
                      "failover_timeout": 3600}


def scalar(name: str, value: float) -> dict[str, Any]:
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, "reservations": DYN}


def volume(vid: str, *, shared: bool = False) -> dict[str, Any]:
    r = {**scalar("disk", 64), "disk": {"persistence": {"id": vid, "principal": "ops"},
                                        "volume": {"mode": "RW", "container_path": "data"}}}
    if shared:
        r["shared"] = {}
    return r


def task(task_id: str, agent_id: dict[str, str], command: str,
         vol: dict[str, Any]) -> dict[str, Any]:
    return {"name": task_id, "task_id": {"value": task_id}, "agent_id": agent_id,
            "command": {"value": command},
            "resources": [scalar("cpus", 0.25), scalar("mem", 32), vol]}


RESERVE = {"type": "RESERVE", "reserve": {"resources": [
    scalar("cpus", 1), scalar("mem", 128), scalar("disk", 64)]}}


async def ack(s: RawScheduler, status: dict[str, Any]) -> None:
    if "uuid" in status:
        await s.call({"type": "ACKNOWLEDGE", "framework_id": s.fw(), "acknowledge": {
            "agent_id": status["agent_id"], "task_id": status["task_id"],
            "uuid": status["uuid"]}})


async def offer_with(s: RawScheduler, vid: str) -> dict[str, Any]:
    """The next offer holding volume ``vid`` (others are declined at once)."""
    for _ in range(100):
        event = await s.next_event("*", timeout=90)
        if event["type"] == "UPDATE":
            await ack(s, event["update"]["status"])
        if event["type"] != "OFFERS":
            continue
        for offer in event["offers"]["offers"]:
            held = Resources.from_json(offer["resources"]).volumes()
            if any(v.persistence_id == vid for v in held):
                return offer
            await s.call({"type": "DECLINE", "framework_id": s.fw(), "decline": {
                "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0}}})
    raise AssertionError(f"volume {vid} was never offered")


async def final_statuses(s: RawScheduler, task_ids: set[str]) -> dict[str, dict[str, Any]]:
    """Acknowledge updates until every task in ``task_ids`` is terminal."""
    final: dict[str, dict[str, Any]] = {}
    terminal = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
                "TASK_DROPPED"}
    for _ in range(200):
        if set(final) == task_ids:
            break
        event = await s.next_event("*", timeout=90)
        if event["type"] != "UPDATE":
            continue
        status = event["update"]["status"]
        await ack(s, status)
        if status["state"] in terminal and status["task_id"]["value"] in task_ids:
            final[status["task_id"]["value"]] = status
    return final


async def run_on_volume(s: RawScheduler, vid: str, name: str, command: str,
                        vol: dict[str, Any]) -> str:
    """Run ``command`` in a task using volume ``vid``; its final state. A task that
    never ran because the agent was restarting (an offer rescinded before the ACCEPT
    arrived, or a task sent to the agent being killed: TASK_DROPPED/TASK_LOST) is run
    again on a later offer; FINISHED and FAILED only come from running it."""
    for attempt in range(5):
        offer = await offer_with(s, vid)
        task_id = f"{name}-{attempt}"
        await accept(s, offer, {"type": "LAUNCH", "launch": {"task_infos": [
            task(task_id, offer["agent_id"], command, vol)]}})
        status = (await final_statuses(s, {task_id}))[task_id]
        if status["state"] not in ("TASK_LOST", "TASK_DROPPED"):
            return str(status["state"])
    raise AssertionError(f"{name}: no valid offer in 5 attempts")


async def accept(s: RawScheduler, offer: dict[str, Any], *operations: dict[str, Any]) -> None:
    code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
        "offer_ids": [offer["id"]], "filters": {"refuse_seconds": 0},
        "operations": list(operations)}})
    assert code == 202, text


async def test_volume_outlives_tasks_and_restarts(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            agent_id = offer["agent_id"]
            vol = volume("v1")
            await accept(s, offer, RESERVE, {"type": "CREATE", "create": {"volumes": [vol]}},
                         {"type": "LAUNCH", "launch": {"task_infos": [
                             task("writer", agent_id, "echo hello > data/msg", vol)]}})
            await ack_until(s, "writer", "TASK_FINISHED", timeout=60)
            on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "v1"
            assert (on_disk / "msg").read_text() == "hello\n"
            checkpointed = json.loads(
                (tmp_path / "agent0" / "meta" / "resources" / "resources.info").read_text())
            assert Resources.from_json(checkpointed).volumes()[0].persistence_id == "v1"

            read = 'test "$(cat data/msg)" = hello'
            assert await run_on_volume(s, "v1", "reader", read, vol) == "TASK_FINISHED"
            # A reader that expects something else fails: the check above can fail.
            wrong = 'test "$(cat data/msg)" = goodbye'
            assert await run_on_volume(s, "v1", "wrong", wrong, vol) == "TASK_FAILED"

            # The agent restarts: the volume is still there, offered, and readable.
            c.restart_agent(0)
            assert await run_on_volume(s, "v1", "after-restart", read, vol) == "TASK_FINISHED"
            assert (on_disk / "msg").read_text() == "hello\n"
        finally:
            await s.close()

        # A new master learns the volume from the agent's report alone.
        c.restart_master()

        async def total_volumes() -> list[str]:
            code, body = await operator(c.master_url, {"type": "GET_AGENTS"})
            agents = body["get_agents"]["agents"] if code == 200 else []
            return [v.persistence_id for a in agents
                    for v in Resources.from_json(a["total_resources"]).volumes()]

        for _ in range(600):  # bounded: about a minute
            if await total_volumes() == ["v1"]:
                break
            await asyncio.sleep(0.1)
        assert await total_volumes() == ["v1"], c.logs()[-3000:]


async def test_shared_volume_is_used_by_two_tasks_at_once(tmp_path: Path) -> None:
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe({**FW, "capabilities": [{"type": "SHARED_RESOURCES"}]})
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            agent_id = offer["agent_id"]
            vol = volume("s1", shared=True)

            def meet(mine: str, other: str) -> str:
                # Each task leaves its mark and waits (bounded) for the other's: both
                # finish only if they see one volume at the same time.
                return (f"touch data/{mine}; for i in $(seq 600); do "
                        f"[ -f data/{other} ] && exit 0; sleep 0.1; done; exit 1")

            await accept(s, offer, RESERVE, {"type": "CREATE", "create": {"volumes": [vol]}},
                         {"type": "LAUNCH", "launch": {"task_infos": [
                             task("a", agent_id, meet("a", "b"), vol),
                             task("b", agent_id, meet("b", "a"), vol)]}})
            final = await final_statuses(s, {"a", "b"})
            assert {t: st["state"] for t, st in final.items()} == {"a": "TASK_FINISHED",
                                                                   "b": "TASK_FINISHED"}
            on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "s1"
            assert sorted(p.name for p in on_disk.iterdir()) == ["a", "b"]
        finally:
            await s.close()


async def test_a_volume_is_only_ever_named_whole(tmp_path: Path) -> None:
    """32 of a 64 MB volume (or the volume twice) names no volume: LAUNCH, ACCEPT
    DESTROY, DESTROY_VOLUMES and /master/destroy-volumes refuse it (400) and nothing
    changes; the whole volume is then used and destroyed."""
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        s = RawScheduler(c.master_url)
        master = c.master_url
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            agent_id = offer["agent_id"]
            vol = volume("v1")
            part = {**vol, "scalar": {"value": 32}}
            await accept(s, offer, RESERVE, {"type": "CREATE", "create": {"volumes": [vol]}},
                         {"type": "LAUNCH", "launch": {"task_infos": [
                             task("writer", agent_id, "echo kept > data/msg", vol)]}})
            await ack_until(s, "writer", "TASK_FINISHED", timeout=60)
            on_disk = tmp_path / "agent0" / "volumes" / "roles" / "db" / "v1"
            info = tmp_path / "agent0" / "meta" / "resources" / "resources.info"
            checkpointed = info.read_text()
            assert Resources.from_json(json.loads(checkpointed)).volumes()[0].resources == \
                Resources.from_json(vol)
            before = await agent_total(master)

            offer = await offer_with(s, "v1")
            for operation, problem in (
                ({"type": "LAUNCH", "launch": {"task_infos": [
                    task("part", agent_id, "true", part)]}}, "is disk.*:64, not disk.*:32,"),
                ({"type": "LAUNCH", "launch": {"task_infos": [
                    {**task("twice", agent_id, "true", vol),
                     "resources": [scalar("cpus", 0.25), vol, vol]}]}},
                 "'v1' is named more than once"),
                ({"type": "DESTROY", "destroy": {"volumes": [part]}}, "destroyed whole"),
            ):
                code, text = await s.call({"type": "ACCEPT", "framework_id": s.fw(), "accept": {
                    "offer_ids": [offer["id"]], "operations": [operation]}})
                assert code == 400 and re.search(problem, text), (code, text)
            for volumes in ([part], [vol, vol]):
                code, text = await operator(master, {"type": "DESTROY_VOLUMES", "destroy_volumes": {
                    "agent_id": agent_id, "volumes": volumes}})
                assert code == 400 and "destroyed whole" in text, (code, text)
            code, text = await form(master, "/master/destroy-volumes", slaveId=agent_id["value"],
                                    volumes=json.dumps([part]))
            assert code == 400 and "destroyed whole" in text, (code, text)
            assert await agent_total(master) == before
            assert info.read_text() == checkpointed and (on_disk / "msg").is_file()

            # The refused ACCEPTs left the offer as it was: the whole volume is used
            # from it, then destroyed.
            await accept(s, offer, {"type": "LAUNCH", "launch": {"task_infos": [
                task("reader", agent_id, 'test "$(cat data/msg)" = kept', vol)]}})
            assert (await final_statuses(s, {"reader"}))["reader"]["state"] == "TASK_FINISHED"
        finally:
            await s.close()
        code, text = await operator(master, {"type": "DESTROY_VOLUMES", "destroy_volumes": {
            "agent_id": agent_id, "volumes": [vol]}})
        assert code == 202, text
        assert (await agent_total(master)).volumes() == []
        for _ in range(600):  # bounded: about a minute for the agent to delete it
            if not on_disk.exists():
                break
            await asyncio.sleep(0.1)
        assert not on_disk.exists(), c.logs()[-3000:]


async def test_group_task_finds_its_volume_in_its_own_sandbox(tmp_path: Path) -> None:
    """A task of a task group runs in its own sandbox (``tasks/<id>``, its
    MESOS_SANDBOX) and finds the volume of its resources there; the executor's own
    volume stays in the executor's sandbox. What the group task wrote is in the volume
    for a later command task."""
    with Cluster(tmp_path, agent_resources="cpus:4;mem:1024;disk:2048") as c:
        s = RawScheduler(c.master_url)
        try:
            await s.subscribe(FW)
            offer = (await s.next_event("OFFERS", timeout=30))["offers"]["offers"][0]
            agent_id = offer["agent_id"]
            vol = volume("g1")
            own = {**volume("e1"), "disk": {"persistence": {"id": "e1", "principal": "ops"},
                                            "volume": {"mode": "RW",
                                                       "container_path": "shared"}}}
            reserve = {"type": "RESERVE", "reserve": {"resources": [
                scalar("cpus", 1), scalar("mem", 128), scalar("disk", 128)]}}
            executor = {"type": "DEFAULT", "executor_id": {"value": "pod"},
                        "framework_id": s.fw(),
                        "resources": [scalar("cpus", 0.1), scalar("mem", 32), own]}
            writer = task("group-writer", agent_id,
                          '[ "$PWD" = "$MESOS_SANDBOX" ] && [ ! -e shared ] && '
                          '[ -d ../../shared ] && echo hello > "$MESOS_SANDBOX/data/msg"', vol)
            await accept(s, offer, reserve,
                         {"type": "CREATE", "create": {"volumes": [vol, own]}},
                         {"type": "LAUNCH_GROUP", "launch_group": {
                             "executor": executor, "task_group": {"tasks": [writer]}}})
            final = await final_statuses(s, {"group-writer"})
            assert final["group-writer"]["state"] == "TASK_FINISHED", (final, c.logs()[-3000:])
            volumes_dir = tmp_path / "agent0" / "volumes" / "roles" / "db"
            assert (volumes_dir / "g1" / "msg").read_text() == "hello\n"
            [run] = tmp_path.glob("agent0/slaves/*/frameworks/*/executors/pod/runs/latest")
            assert (run / "tasks" / "group-writer" / "data").resolve() == \
                (volumes_dir / "g1").resolve()
            assert (run / "shared").resolve() == (volumes_dir / "e1").resolve()
            assert not (run / "data").exists()

            read = 'test "$(cat data/msg)" = hello'
            assert await run_on_volume(s, "g1", "reader", read, vol) == "TASK_FINISHED"
            wrong = 'test "$(cat data/msg)" = goodbye'
            assert await run_on_volume(s, "g1", "wrong", wrong, vol) == "TASK_FAILED"
        finally:
            await s.close()


# ------------------------------------------- the launcher's read-only mounts, by hand
#
# What the linux launcher runs for a container with a read-only volume: a private
# mount namespace (unshare), the mount prefix, then the command. Each test's
# namespace goes with its last process, so nothing is left mounted on the host.


def _in_namespace(mounts: list[BindMount], *command: str,
                  before: str = "") -> subprocess.CompletedProcess[str]:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("SKIPPED LOUDLY: mount namespaces need root and util-linux unshare "
                    "(CI runs as root)")
    setup = ["sh", "-c", f'{before} exec "$@"', "sh"] if before else []
    argv = [unshare, "--mount", "--propagation", "private", "--", *setup,
            *_mount_prefix(mounts), *command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_read_only_mount_never_goes_through_a_planted_link(tmp_path: Path) -> None:
    """The sandbox is its user's when the container starts: a directory on the way to
    the mount point swapped for a link (here: planted before the launch) fails the
    launch; nothing is mounted where the link points (the victim's ``etc``)."""
    source, sandbox, victim = tmp_path / "vol", tmp_path / "sandbox", tmp_path / "victim"
    for d in (source, sandbox / "x" / "etc", victim / "etc"):
        d.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody")
    os.chown(sandbox, nobody.pw_uid, nobody.pw_gid)
    target = sandbox / "x" / "etc"
    ok = _in_namespace([BindMount(str(source), str(target), read_only=True)],
                       "cat", "/proc/self/mountinfo")
    assert ok.returncode == 0, ok.stderr
    assert f" {target} ro" in ok.stdout  # the honest case: mounted, read-only
    shutil.rmtree(sandbox / "x")
    (sandbox / "x").symlink_to(victim)  # what the user swaps in
    bad = _in_namespace([BindMount(str(source), str(target), read_only=True)],
                        "cat", "/proc/self/mountinfo")
    assert bad.returncode == 121, (bad.stdout, bad.stderr)
    assert "symbolic link" in bad.stderr
    assert str(victim) not in bad.stdout


def test_read_only_mount_brings_no_writable_submount(tmp_path: Path) -> None:
    """A mount under the volume's directory does not come along into a read-only
    mount (a read-only remount covers one mount only), and neither the mount point
    nor the volume's host path can be written."""
    source, target = tmp_path / "vol", tmp_path / "sandbox" / "ro"
    for d in (source / "sub", target):
        d.mkdir(parents=True)
    script = (f'touch {target}/sub/x; echo sub=$?; touch {target}/y; echo top=$?; '
              f'touch {source}/z; echo host=$?')
    done = _in_namespace([BindMount(str(source), str(target), read_only=True)],
                         "sh", "-c", script,
                         before=f"mount -t tmpfs tmpfs {source}/sub || exit 99;")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sub=1", "top=1", "host=1"], done.stderr
    assert not (source / "sub" / "x").exists() and not (source / "z").exists()
