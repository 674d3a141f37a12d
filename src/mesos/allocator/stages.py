"""One allocation cycle: the quota stage, then the fair-share stage (Mesos' `__allocate`).

Both stages walk the same candidate agents (in the order they were added):

1. **Quota stage.** Only roles whose guarantees (their own, or an ancestor's, see
   `quota.cap`) are not met yet are visited, in role order. Each may take, of the
   kinds guaranteed along its chain, no more than it still needs, plus other kinds
   out of the headroom surplus, plus its reservations in full. The stage ends as
   soon as no such role is left.
2. **Fair-share stage.** Every role with a framework to offer to, in the role tree's
   order (weighted DRF over subtrees, or random), may take what is free on the
   agent, minus whatever must stay back for unmet guarantees (headroom) and
   whatever would break a limit.

Within a role, frameworks are visited in their sorter's order; the first eligible
framework gets everything the role may take on that agent (Mesos offers an agent's
resources whole, not one task at a time). Eligibility: capabilities (GPU agents
only to `GPU_RESOURCES`, other regions only to `REGION_AWARE`, revocable resources
only to `REVOCABLE_RESOURCES`), `min_allocatable`, and no live refuse filter.

Sorters change after each hand-out, so the iteration over roles (and frameworks)
restarts, skipping those already visited for this agent: the next one is always
the one with the lowest share *now*. Candidates are the pending agents only (see
`books`); a cycle after one recovery looks at one agent, not ten thousand.
"""

from __future__ import annotations

from mesos.allocator import quota, vectors
from mesos.allocator.books import Books
from mesos.allocator.interface import Allocation
from mesos.allocator.role_tree import Role
from mesos.allocator.sorter import Sorter
from mesos.allocator.state import AgentState
from mesos.allocator.vectors import Vector
from mesos.resources import Resources


class Stages(Books):
    """The allocation cycle of the hierarchical allocator."""

    def _cycle(self, now: float) -> list[Allocation]:
        for agent_id in self._filters.expired_agents(now):
            agent = self._agents.get(agent_id)
            if agent is not None:
                self._touch(agent)
        out: list[Allocation] = []
        self._rewalk = True
        while self._rewalk:
            self._rewalk = False
            self._stages(now, out)
            if self._rewalk:
                self._touch_all()
        return out

    def _stages(self, now: float, out: list[Allocation]) -> None:
        agents = self._candidates()
        if not agents:
            return
        hungry = self._hungry_roles()
        if hungry:
            order = self._order_of(hungry)
            for agent in agents:
                if agent.free:
                    self._offer_hungry(agent, now, out, hungry, order, True)
                    if not hungry:
                        break
        capped = self._hungry_roles()
        order = self._order_of(capped)
        for agent in agents:
            if agent.free:
                if self._held_back(agent):
                    if capped:
                        self._offer_hungry(agent, now, out, capped, order, False)
                else:
                    self._offer_agent(agent, now, out)

    def _candidates(self) -> list[AgentState]:
        """Free agents the cycle must look at, in the order they were added."""
        if self._all_pending:
            chosen = self._free
        else:
            chosen = {i: a for i, a in self._pending.items() if a.free}
        self._pending = {}
        self._all_pending = False
        if len(chosen) * 8 < len(self._agents):
            return sorted(chosen.values(), key=_seq)
        return [agent for agent in self._agents.values() if agent.id in chosen]

    def _hungry_roles(self) -> set[Role]:
        """Offerable roles with guarantees left to satisfy (the quota stage's roles)."""
        if not self._headroom.required:
            return set()
        return {
            role
            for role in self._tree
            if role.guaranteed_kinds and role.offerable and self._headroom.hungry(role)
        }

    def _held_back(self, agent: AgentState) -> bool:
        """Whether the headroom keeps all of the agent from roles without guarantees left
        to satisfy: then only such roles (if any) need to be visited."""
        headroom = self._headroom
        if not headroom.required or not agent.plain:
            return False
        if self._gate_version != headroom.version:
            self._gate_version = headroom.version
            self._gate_surplus = surplus = headroom.surplus()
            required = headroom.required
            # With no surplus at all, every min_allocatable alternative may need some
            # kind the headroom keeps entirely (the usual case: cpus or mem).
            self._gate_closed = (
                not any(surplus.values())
                and bool(self._min_allocatable)
                and all(
                    any(required.get(name) and amount > 0 for name, amount in minimum.items())
                    for minimum in self._min_allocatable
                )
            )
        if self._gate_closed:
            return True
        return not self._allocatable(vectors.shrink(agent.available, self._gate_surplus))

    def _offer_agent(self, agent: AgentState, now: float, out: list[Allocation]) -> None:
        """The fair-share stage for one agent: every role, in the role tree's order."""
        headroom = self._headroom
        seen: set[Role] = set()
        restart = True
        while restart:
            restart = False
            for role in self._tree.iterate():
                if role in seen:
                    continue
                seen.add(role)
                if headroom.required or role.limited:
                    allowance = headroom.allowance(role, False)
                else:
                    allowance = None
                if self._offer_role(agent, role, allowance, now, out):
                    if not agent.free:
                        return
                    restart = True
                    break

    def _order_of(self, roles: set[Role]) -> Sorter:
        """A role sorter over just `roles` (by subtree allocation and weight): the order
        of the quota stage, as Mesos' quota role sorter had it."""
        sorter = self._tree.new_role_sorter()
        sorter.add_total(self._tree.pool())
        for role in roles:
            sorter.add(role.path)
            sorter.update_weight(role.path, self._tree.weight(role.path))
            self._resync(sorter, role)
        return sorter

    def _resync(self, sorter: Sorter, role: Role) -> None:
        sorter.unallocated(role.path, sorter.allocation(role.path))
        sorter.allocated(role.path, self._tree.allocation(role))
        sorter.activate(role.path)

    def _offer_hungry(
        self,
        agent: AgentState,
        now: float,
        out: list[Allocation],
        hungry: set[Role],
        order: Sorter,
        quota_stage: bool,
    ) -> None:
        """Offer the agent to roles with guarantees left to satisfy, dropping those whose
        guarantees get met (which is how the quota stage ends)."""
        headroom = self._headroom
        seen: set[str] = set()
        restart = True
        while restart:
            restart = False
            for path in order.iterate():
                if path in seen:
                    continue
                seen.add(path)
                role = self._tree[path]
                if not headroom.hungry(role):
                    hungry.discard(role)
                    order.deactivate(path)
                    restart = True
                    break
                allowance = headroom.allowance(role, quota_stage)
                if self._offer_role(agent, role, allowance, now, out):
                    self._resync(order, role)
                    if not agent.free or not hungry:
                        return
                    restart = True
                    break

    def _offer_role(
        self,
        agent: AgentState,
        role: Role,
        allowance: Vector | None,
        now: float,
        out: list[Allocation],
    ) -> bool:
        """Offer what `role` may take on `agent` to its frameworks; whether any took it."""
        available = agent.available
        offerable = available.allocatable_to(role.path) if agent.has_reservations else available
        if allowance is not None:
            offerable = vectors.shrink(offerable, allowance)
            if role.limited and agent.has_reservations:
                offerable = self._within_limits(role, offerable)
        if offerable is not available and not self._allocatable(offerable):
            return False
        filters = self._filters
        frameworks = self._frameworks
        filtered = filters.filtered_frameworks()
        got = False
        seen: set[str] = set()
        restart = True
        while restart:
            restart = False
            for framework_id in role.frameworks.iterate():
                if framework_id in seen:
                    continue
                seen.add(framework_id)
                framework = frameworks[framework_id]
                if agent.needs & ~framework.capbits:
                    continue
                chunk = offerable
                if agent.has_revocable and not framework.revocable:
                    chunk = offerable.non_revocable()
                if agent.has_reservations and "SHARED_RESOURCES" not in framework.capabilities:
                    # Shared volumes (always reserved) only to frameworks that can share.
                    chunk = chunk.non_shared()
                if chunk is not available and not self._allocatable(chunk):
                    continue
                if framework_id in filtered and filters.is_filtered(
                    framework_id, agent.id, role.path, chunk, now
                ):
                    continue
                self._track(agent, framework, role, chunk)
                out.append(Allocation(framework_id, agent.id, role.path, chunk))
                got = True
                if chunk is offerable:
                    return True
                offerable = offerable - chunk
                if not self._allocatable(offerable):
                    return True
                restart = True
                break
        return got

    @staticmethod
    def _within_limits(role: Role, offerable: Resources) -> Resources:
        """Resources reserved to an ancestor count toward the limits of the roles in
        between once allocated: leave them out where they could break a limit."""
        if all(path == role.path for path in offerable.reservations()):
            return offerable
        room = quota.limit_room(role)
        if room is None or vectors.fits(vectors.quota_parts(offerable)[0], room):
            return offerable
        return offerable.unreserved() + offerable.reserved(role.path)


def _seq(agent: AgentState) -> int:
    return agent.seq
