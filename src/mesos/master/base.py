"""What the parts of the master share: its state, and the methods one part calls in
another. :class:`mesos.master.service.Master` combines the parts
(:class:`~mesos.master.agents.AgentsMixin`, :class:`~mesos.master.offers.OffersMixin`
and its own framework and scheduler-call handling) over this base.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mesos.allocator import Allocator
from mesos.flags import Flags
from mesos.master.state import Agent, Counters, Framework, Offer, Task, UnreachableAgent
from mesos.v1 import mesos as v1
from mesos.v1.enums import TaskState, TaskStatusReason

if TYPE_CHECKING:
    from mesos.master.registrar import Registrar
    from mesos.master.registry import Operation


class MasterBase:
    flags: Flags
    id: str
    frameworks: dict[str, Framework]
    removed_framework_ids: set[str]
    agents: dict[str, Agent]
    unreachable_agents: dict[str, UnreachableAgent]
    offers: dict[str, Offer]
    # inverse offer id -> (framework id, agent id)
    inverse_offers: dict[str, tuple[str, str]]
    allocator: Allocator
    counters: Counters
    loop: asyncio.AbstractEventLoop | None
    _agent_ids: itertools.count[int]
    _offer_ids: itertools.count[int]
    _agent_streams: dict[str, str]
    # agent id -> (framework id, task id) kills to resend when the agent comes back
    _pending_kills: dict[str, set[tuple[str, str]]]
    _allocation_wakeup: asyncio.Event
    weights: dict[str, float]
    # role -> (guarantees, limits) as set by UPDATE_QUOTA; the allocator enforces it.
    quota_configs: dict[str, tuple[dict[str, float], dict[str, float]]]
    registrar: Registrar
    # Agents the recovered registry admitted that have not re-registered yet.
    recovered_agents: dict[str, v1.AgentInfo]
    # --recovery_agent_removal_limit as a fraction.
    removal_limit: float

    def _persist(self, *operations: Operation, then: Callable[[], None] | None = None) -> None:
        raise NotImplementedError

    def _now(self) -> float:
        raise NotImplementedError

    def _prune_unreachable(self) -> None:
        raise NotImplementedError

    def _later(self, delay: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        raise NotImplementedError

    def _new_framework(self, framework_id: str, info: v1.FrameworkInfo, now: float) -> Framework:
        raise NotImplementedError

    def _start_recovered_failover(self, framework: Framework) -> None:
        raise NotImplementedError

    def _master_status(
        self, task: Task, state: TaskState, reason: TaskStatusReason, message: str, now: float
    ) -> v1.TaskStatus:
        raise NotImplementedError

    def _apply_status(self, task: Task, status: v1.TaskStatus) -> None:
        raise NotImplementedError

    def _recover_task(self, task: Task) -> None:
        raise NotImplementedError

    def _complete_task(self, framework: Framework, task: Task) -> None:
        raise NotImplementedError

    def wake_allocator(self) -> None:
        raise NotImplementedError

    def _remove_offer(self, offer: Offer, *, rescind: bool, recover: bool) -> None:
        raise NotImplementedError
