"""Maintenance: agents with an unavailability window, and the inverse offers they cause.

Mesos' semantics (docs/maintenance.md, the allocator's `updateUnavailability`,
`updateInverseOffer` and the inverse-offer half of its allocation cycle):

* An operator schedules maintenance: every agent of the schedule gets an
  `Unavailability` (start, optional duration) and is *draining*. Its resources are
  still offered (the master puts the unavailability into those offers).
* While an agent is draining, every framework holding resources on it is sent one
  inverse offer for it, as soon as the window is set (not when it starts): the
  framework is asked to give the agent back by the start of the window.
* A framework answers (ACCEPT or DECLINE_INVERSE_OFFERS) or the master rescinds the
  inverse offer; either way it is no longer outstanding. An answer with
  `refuse_seconds` > 0 keeps the framework from being asked again about that agent
  until then; without one it is asked again on the next cycle.
* Setting a new window (or clearing it) forgets outstanding inverse offers, answers
  and filters for the agent: the question is a new one.

Everything is keyed by ids; time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Unavailability:
    """A maintenance window: from `start` for `duration` seconds (None: open-ended)."""

    start: float
    duration: float | None = None

    @property
    def end(self) -> float | None:
        return None if self.duration is None else self.start + self.duration

    def started(self, now: float) -> bool:
        return now >= self.start

    def to_json(self) -> dict[str, dict[str, int]]:
        """Mesos' `Unavailability` JSON (`TimeInfo`/`DurationInfo` in nanoseconds)."""
        out = {"start": {"nanoseconds": int(self.start * 1e9)}}
        if self.duration is not None:
            out["duration"] = {"nanoseconds": int(self.duration * 1e9)}
        return out


@dataclass(frozen=True, slots=True)
class InverseOffer:
    """Ask `framework_id` to release what it holds on `agent_id` before the window."""

    framework_id: str
    agent_id: str
    unavailability: Unavailability


class Maintenance:
    """Unavailability windows, outstanding inverse offers, answers and their filters."""

    __slots__ = ("_answers", "_filters", "_outstanding", "_windows")

    def __init__(self) -> None:
        self._windows: dict[str, Unavailability] = {}
        self._outstanding: dict[str, set[str]] = {}
        # agent -> framework -> "ACCEPT" | "DECLINE": the last answer, for operators.
        self._answers: dict[str, dict[str, str]] = {}
        # agent -> framework -> time until which it is not asked again.
        self._filters: dict[str, dict[str, float]] = {}

    def update(self, agent_id: str, unavailability: Unavailability | None) -> None:
        """Set (or clear, with None) the agent's window; forgets the old question."""
        self.forget_agent(agent_id)
        if unavailability is not None:
            self._windows[agent_id] = unavailability

    def unavailability(self, agent_id: str) -> Unavailability | None:
        return self._windows.get(agent_id)

    def draining(self) -> dict[str, Unavailability]:
        return dict(self._windows)

    def inverse_offers(
        self, now: float, holders: Callable[[str], Iterable[str]]
    ) -> list[InverseOffer]:
        """New inverse offers: each framework `holders(agent)` names, once per window,
        unless one is outstanding or an answer's filter still holds."""
        out: list[InverseOffer] = []
        for agent_id, window in self._windows.items():
            outstanding = self._outstanding.setdefault(agent_id, set())
            filters = self._filters.get(agent_id, {})
            for framework_id in holders(agent_id):
                if framework_id in outstanding:
                    continue
                until = filters.get(framework_id)
                if until is not None:
                    if now < until:
                        continue
                    del filters[framework_id]
                outstanding.add(framework_id)
                out.append(InverseOffer(framework_id, agent_id, window))
        return out

    def answer(
        self,
        agent_id: str,
        framework_id: str,
        accepted: bool | None,
        refuse_seconds: float | None,
        now: float,
    ) -> None:
        """The framework answered (`accepted` True/False) or the master rescinded (None)."""
        outstanding = self._outstanding.get(agent_id)
        if outstanding is not None:
            outstanding.discard(framework_id)
        if agent_id not in self._windows:
            return
        if accepted is not None:
            answers = self._answers.setdefault(agent_id, {})
            answers[framework_id] = "ACCEPT" if accepted else "DECLINE"
        if refuse_seconds is not None and refuse_seconds > 0:
            self._filters.setdefault(agent_id, {})[framework_id] = now + refuse_seconds

    def answers(self, agent_id: str) -> dict[str, str]:
        """`{framework id: "ACCEPT" | "DECLINE"}`: the last answers about the agent."""
        return dict(self._answers.get(agent_id, {}))

    def outstanding(self, agent_id: str) -> set[str]:
        return set(self._outstanding.get(agent_id, ()))

    def forget_agent(self, agent_id: str) -> None:
        self._windows.pop(agent_id, None)
        self._outstanding.pop(agent_id, None)
        self._answers.pop(agent_id, None)
        self._filters.pop(agent_id, None)

    def forget_framework(self, framework_id: str) -> None:
        for frameworks in self._outstanding.values():
            frameworks.discard(framework_id)
        for answers in self._answers.values():
            answers.pop(framework_id, None)
        for filters in self._filters.values():
            filters.pop(framework_id, None)
