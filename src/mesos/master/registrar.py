"""The registrar: applies registry operations and makes them durable.

One key (``registry``) holds the whole :class:`~mesos.master.registry.Registry` as
JSON, written with compare-and-swap on its version, so a second master writing the
same store is noticed rather than silently overwritten. Writes run in a thread
(``asyncio.to_thread``) and are serialised by a lock: :meth:`Registrar.apply`
returns only when the operation is on disk, and the caller acknowledges after it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec

from mesos.allocator import Quota
from mesos.errors import ValidationError
from mesos.flags import format_duration
from mesos.master.base import MasterBase
from mesos.master.events import event
from mesos.master.registry import MarkAgentUnreachable, Operation, PruneUnreachable, Registry
from mesos.master.state import UnreachableAgent
from mesos.state import MemoryStorage, SqliteStorage, Storage
from mesos.v1 import codec
from mesos.v1 import mesos as v1

log = logging.getLogger("mesos.master.registrar")

KEY = "registry"

T = TypeVar("T")


def default_registry(zk: str | None, work_dir: str | None) -> str:
    """The store used when ``--registry`` is not given: ZooKeeper's with ``--zk``
    (every master must see what the last leader wrote), else SQLite under
    ``--work_dir``, else memory."""
    if zk:
        return "zookeeper"
    return "sqlite" if work_dir else "in_memory"


def open_storage(kind: str, work_dir: str | None) -> Storage:
    """The store ``--registry`` names: ``sqlite`` (``replicated_log`` is accepted as
    its alias) under ``--work_dir``, or ``in_memory``."""
    if kind in ("sqlite", "replicated_log"):
        if not work_dir:
            raise ValueError(f"--registry={kind} needs --work_dir")
        return SqliteStorage(os.path.join(work_dir, "registry.sqlite"))
    if kind == "in_memory":
        return MemoryStorage()
    raise ValueError(f"Invalid --registry '{kind}': expecting 'zookeeper', 'sqlite' or 'in_memory'")


class Registrar:
    def __init__(
        self, storage: Storage, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        self.storage = storage
        self.registry = Registry()
        self.version = 0
        # An in-memory store never blocks, so operations are applied on the spot; this
        # keeps the master's in-process tests synchronous. Every other store is
        # written from a thread, one operation batch at a time.
        self.inline = isinstance(storage, MemoryStorage)
        self.on_failure = on_failure or _abort
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()
        self._last: asyncio.Task[bool] | None = None
        self.closed = False

    def recover(self) -> Registry:
        """Read the stored registry (blocking; done once before the master serves)."""
        entry = self.storage.get(KEY)
        if entry is None:
            self.registry, self.version = Registry(), 0
        else:
            self.registry = msgspec.json.decode(entry.value, type=Registry)
            self.version = entry.version
        return self.registry.deep_copy()

    async def apply(self, *operations: Operation) -> bool:
        """Apply the operations and persist the result; whether anything changed.

        On a storage error the in-memory registry is left as it was and the error
        propagates, so nothing is acknowledged that is not durable.
        """
        if self.inline:
            return self._apply_now(operations)
        # The write runs as its own task: a caller cancelled mid-write (its HTTP request
        # went away) must not leave the registry behind the store, or the next write's
        # compare-and-swap fails and the master aborts.
        task = asyncio.get_running_loop().create_task(self._write(operations))
        self._track(task)
        return await asyncio.shield(task)

    async def _write(self, operations: Sequence[Operation]) -> bool:
        async with self._lock:
            candidate, changed = self._candidate(operations)
            if not changed:
                return False
            data = msgspec.json.encode(candidate)
            self.version = await asyncio.to_thread(self.storage.put, KEY, data, self.version)
            self.registry = candidate
            return True

    def _track(self, task: asyncio.Task[bool]) -> None:
        self._pending.add(task)
        self._last = task
        task.add_done_callback(self._pending.discard)

    async def barrier(self) -> None:
        """Wait until every operation submitted or applied so far is durable (writes
        land in the order they were started, so the latest one is enough)."""
        last = self._last
        if last is not None and not last.done():
            await asyncio.shield(last)

    def _candidate(self, operations: Sequence[Operation]) -> tuple[Registry, bool]:
        candidate = self.registry.copy()
        changed = False
        for operation in operations:
            changed = operation.apply(candidate) or changed
        return candidate, changed

    def _apply_now(self, operations: Sequence[Operation]) -> bool:
        candidate, changed = self._candidate(operations)
        if changed:
            data = msgspec.json.encode(candidate)
            self.version = self.storage.put(KEY, data, self.version)
            self.registry = candidate
        return changed

    def submit(self, operations: Sequence[Operation], then: Callable[[], None] | None = None) -> None:
        """Apply ``operations`` and call ``then`` (on the loop) once they are durable.

        For callers that cannot await (the agent channel, scheduler subscriptions);
        batches are written in the order they were submitted.
        """
        if self.closed:
            # The master is stopping (a timer fired late): nothing may be acknowledged.
            log.warning("Registry closed; not applying %s", [type(o).__name__ for o in operations])
            return
        if self.inline:
            self._apply_now(operations)
            if then is not None:
                then()
            return
        task = asyncio.get_running_loop().create_task(self._write(operations))
        self._track(task)

        def done(finished: asyncio.Task[bool]) -> None:
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                self.on_failure(error)
            elif then is not None:
                then()

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait for every submitted write (before the master stops)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def close(self) -> None:
        self.closed = True
        self.storage.close()


def _abort(error: BaseException) -> None:
    # As Mesos' registrar: a master that cannot persist a change it already made in
    # memory must not go on; a restarted one recovers from what is durable.
    log.critical("Registry write failed, the master aborts: %s", error)
    os._exit(1)


class RegistrarMixin(MasterBase):
    """The master's side of the registrar: open and recover the registry at start,
    persist changes, and give up on agents that do not come back in time."""

    _reregister_timer: asyncio.TimerHandle | None = None
    # The ZooKeeper store of an elected master (--registry=zookeeper); set by
    # :class:`mesos.master.leader.ElectedMaster`, which owns the ZooKeeper session.
    registry_storage: Storage | None = None
    # How many agents the recovered registry admitted (the base of the removal limit).
    _registry_agent_count: int = 0

    def _open_registry(self) -> None:
        kind = self.flags.registry or default_registry(self.flags.zk, self.flags.work_dir)
        if kind == "zookeeper":
            if self.registry_storage is None:
                raise ValidationError("Cannot open the registry: --registry=zookeeper needs --zk")
            storage = self.registry_storage
        else:
            try:
                storage = open_storage(kind, self.flags.work_dir)
            except (ValueError, OSError, sqlite3.Error) as exc:
                raise ValidationError(f"Cannot open the registry: {exc}") from None
        self.registrar = Registrar(storage)
        # Read once, before the master serves anything; later writes go to a thread.
        try:
            registry = self.registrar.recover()
        except (msgspec.DecodeError, sqlite3.Error) as exc:
            raise ValidationError(f"Cannot recover the registry: {exc}") from None
        self._restore(registry)

    def _restore(self, registry: Registry) -> None:
        now = self._now()
        if registry.weights:
            self.weights.update(registry.weights)
            self.allocator.update_weights(dict(registry.weights))
        for role, quota in registry.quotas.items():
            self.quota_configs[role] = (dict(quota.guarantees), dict(quota.limits))
        if registry.quotas:
            self.allocator.update_quotas({
                role: Quota.of(q.guarantees or None, q.limits or None)
                for role, q in registry.quotas.items()
            })
        for record in registry.frameworks.values():
            info = _decode(record.info, v1.FrameworkInfo)
            framework = self._new_framework(record.id, info, now)
            framework.active = False
            framework.recovered = True
            self.frameworks[record.id] = framework
            self.allocator.add_framework(record.id, framework.roles, framework.capabilities)
            self.allocator.deactivate_framework(record.id)
        self._registry_agent_count = len(registry.agents)
        for agent_record in registry.agents.values():
            self.recovered_agents[agent_record.id] = _decode(agent_record.info, v1.AgentInfo)
        for gone in registry.unreachable.values():
            self.unreachable_agents[gone.id] = UnreachableAgent(
                id=gone.id, info=_decode(gone.info, v1.AgentInfo), time=gone.time
            )
        if registry.agents or registry.frameworks:
            log.info("Recovered %d agent(s) and %d framework(s) from the registry; agents "
                     "have %s to re-register", len(registry.agents), len(registry.frameworks),
                     format_duration(float(self.flags.agent_reregister_timeout)))

    def _persist(self, *operations: Operation, then: Callable[[], None] | None = None) -> None:
        self.registrar.submit(operations, then)

    def _prune_unreachable(self) -> None:
        """Forget the unreachable agents beyond ``--registry_max_agent_age`` or
        ``--registry_max_agent_count`` (oldest first): written first, then dropped
        from memory with their frameworks' unreachable tasks. A pruned agent that
        comes back later is admitted like any agent whose id the master does not
        know (it keeps its id; its tasks are adopted from its report)."""
        operation = PruneUnreachable(max_age=float(self.flags.registry_max_agent_age),
                                     max_count=int(self.flags.registry_max_agent_count),
                                     now=self._now())
        candidate = self.registrar.registry.copy()
        if not operation.apply(candidate):
            return
        doomed = set(self.registrar.registry.unreachable) - set(candidate.unreachable)

        def pruned() -> None:
            for agent_id in doomed:
                if agent_id in self.registrar.registry.unreachable:
                    continue  # marked unreachable again meanwhile
                if self.unreachable_agents.pop(agent_id, None) is None:
                    continue  # it re-registered (or was marked gone) meanwhile
                log.info("Pruned unreachable agent %s from the registry", agent_id)
                for framework in self.frameworks.values():
                    for task_id in [t.id for t in framework.unreachable_tasks.values()
                                    if t.agent_id == agent_id]:
                        del framework.unreachable_tasks[task_id]

        self._persist(operation, then=pruned)

    async def _registry_gc_loop(self) -> None:
        interval = max(float(self.flags.registry_gc_interval), 0.01)
        while True:
            await asyncio.sleep(interval)
            self._prune_unreachable()

    def _start_reregister_timer(self) -> None:
        if self.recovered_agents:
            self._reregister_timer = self._later(float(self.flags.agent_reregister_timeout),
                                                 self._reregister_timed_out)

    async def _close_registry(self) -> None:
        """Wait for the writes in flight, then close the store (the master stops)."""
        if self._reregister_timer is not None:
            self._reregister_timer.cancel()
        await self.registrar.drain()
        self.registrar.close()

    def _reregister_timed_out(self) -> None:
        """Recovered agents that did not come back are marked unreachable, as Mesos
        does; frameworks hear FAILURE for each, and reconciling their tasks answers
        TASK_UNREACHABLE (partition-aware) or TASK_LOST."""
        missing = [a for a in self.recovered_agents if a not in self.agents]
        if not missing:
            return
        share = len(missing) / max(self._registry_agent_count, 1)
        if share > self.removal_limit:
            # As Mesos: rather than write off more agents than the operator allows,
            # the master exits with the registry untouched; the next master waits for
            # them again.
            self._removal_limit_exceeded(
                f"Post-recovery agent removal limit exceeded: after "
                f"{format_duration(float(self.flags.agent_reregister_timeout))} "
                f"{len(missing)} agent(s) ({share:.0%}) of the recovered registry had not "
                f"re-registered: {sorted(missing)}; --recovery_agent_removal_limit is "
                f"{self.flags.recovery_agent_removal_limit}")
            return
        now = self._now()

        def marked() -> None:
            for agent_id in missing:
                info = self.recovered_agents.pop(agent_id, None)
                if info is None or agent_id in self.agents:
                    continue  # it re-registered while the write was in flight
                log.warning("Agent %s did not re-register within --agent_reregister_timeout; "
                            "marking it unreachable", agent_id)
                self.unreachable_agents[agent_id] = UnreachableAgent(id=agent_id, info=info,
                                                                     time=now)
                self.counters.inc("master/slave_unreachable_completed")
                for framework in self.frameworks.values():
                    framework.send(event("FAILURE", {"agent_id": {"value": agent_id}}))
            self._prune_unreachable()

        self._persist(*(MarkAgentUnreachable(id=a, time=now) for a in missing), then=marked)

    def _removal_limit_exceeded(self, message: str) -> None:
        """Exit at once (Mesos' ``EXIT(EXIT_FAILURE)``): too many agents are missing
        for the master to decide alone that they are gone."""
        log.critical("%s", message)
        logging.shutdown()
        os._exit(1)


def _decode(data: dict[str, Any], type_: type[T]) -> T:
    return codec.decode(msgspec.json.encode(data), type_)


def info_json(info: Any) -> dict[str, Any]:
    """A wire struct as the JSON object the registry keeps."""
    out: dict[str, Any] = codec.to_builtins(info)
    return out
