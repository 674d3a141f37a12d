"""Offers: running the allocator, turning its decisions into offers, and taking
offers back (declined, used, rescinded, expired).

A mixin of :class:`mesos.master.service.Master`, changed only from its event loop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mesos.master.events import event
from mesos.master.maintenance import MaintenanceMixin
from mesos.master.state import Framework, Offer

log = logging.getLogger("mesos.master")


class OffersMixin(MaintenanceMixin):

    def wake_allocator(self) -> None:
        self._allocation_wakeup.set()

    async def _allocation_loop(self) -> None:
        interval = float(self.flags.allocation_interval)
        while True:
            try:
                await asyncio.wait_for(self._allocation_wakeup.wait(), interval)
            except TimeoutError:
                pass
            self._allocation_wakeup.clear()
            try:
                self.allocate()
            except Exception:  # a bug here must not stop every future allocation
                log.exception("Allocation failed")
            # Batch the bursts of freed resources a busy cluster produces.
            await asyncio.sleep(min(interval, 0.005))

    def allocate(self) -> None:
        now = self._now()
        by_framework: dict[str, list[Offer]] = {}
        for allocation in self.allocator.allocate(now):
            framework = self.frameworks.get(allocation.framework_id)
            agent = self.agents.get(allocation.agent_id)
            if framework is None or agent is None or not framework.connected:
                self.allocator.recover_resources(
                    allocation.framework_id, allocation.agent_id, allocation.resources, None, now,
                    role=allocation.role,
                )
                continue
            offer = Offer(
                id=f"{self.id}-O{next(self._offer_ids)}",
                framework_id=framework.id,
                agent_id=agent.id,
                role=allocation.role,
                resources=allocation.resources,
            )
            self.offers[offer.id] = offer
            framework.offers[offer.id] = offer
            agent.offers.add(offer.id)
            if self.flags.offer_timeout:
                offer.expiry = self._later(float(self.flags.offer_timeout), self._offer_expired, offer.id)
            by_framework.setdefault(framework.id, []).append(offer)
        for framework_id, offers in by_framework.items():
            framework = self.frameworks[framework_id]
            framework.send(event("OFFERS", {"offers": [self._offer_json(framework, o) for o in offers]}))
            self.counters.inc("master/outstanding_offers_sent", len(offers))
        self._send_inverse_offers(now)

    def _send_inverse_offers(self, now: float) -> None:
        """Ask frameworks holding resources on agents under maintenance to release them."""
        by_framework: dict[str, list[dict[str, Any]]] = {}
        for inverse in self.allocator.inverse_offers(now):
            framework = self.frameworks.get(inverse.framework_id)
            if framework is None or not framework.connected or inverse.agent_id not in self.agents:
                self.allocator.update_inverse_offer(inverse.agent_id, inverse.framework_id, None,
                                                    None, now)
                continue
            offer_id = f"{self.id}-O{next(self._offer_ids)}"
            self.inverse_offers[offer_id] = (framework.id, inverse.agent_id)
            if framework.id not in self.inverse_offer_statuses.get(inverse.agent_id, {}):
                self.record_inverse_offer_status(inverse.agent_id, framework.id, "UNKNOWN", now)
            by_framework.setdefault(framework.id, []).append({
                "id": {"value": offer_id},
                "framework_id": {"value": framework.id},
                "agent_id": {"value": inverse.agent_id},
                "unavailability": inverse.unavailability.to_json(),
                "resources": [],
            })
        for framework_id, items in by_framework.items():
            self.frameworks[framework_id].send(event("INVERSE_OFFERS", {"inverse_offers": items}))

    def answer_inverse_offers(
        self, framework: Framework, offer_ids: list[str], accepted: bool, refuse_seconds: float
    ) -> None:
        """ACCEPT_/DECLINE_INVERSE_OFFERS; unknown ids are ignored, as Mesos does."""
        now = self._now()
        for offer_id in offer_ids:
            owner = self.inverse_offers.get(offer_id)
            if owner is None or owner[0] != framework.id:
                continue
            del self.inverse_offers[offer_id]
            if owner[1] in self.agents:
                self.allocator.update_inverse_offer(owner[1], framework.id, accepted,
                                                    refuse_seconds, now)
                self.record_inverse_offer_status(owner[1], framework.id,
                                                 "ACCEPT" if accepted else "DECLINE", now)

    def _offer_json(self, framework: Framework, offer: Offer) -> dict[str, Any]:
        agent = self.agents[offer.agent_id]
        multi_role = "MULTI_ROLE" in framework.capabilities
        if multi_role:
            resources = offer.resources.allocate(offer.role).to_json()
        elif "RESERVATION_REFINEMENT" in framework.capabilities:
            resources = offer.resources.to_json()
        else:
            resources = offer.resources.to_json_pre_refinement()
        body: dict[str, Any] = {
            "id": {"value": offer.id},
            "framework_id": {"value": framework.id},
            "agent_id": {"value": agent.id},
            "hostname": agent.info.hostname,
            "url": {
                "scheme": "http",
                "address": {"hostname": agent.info.hostname, "ip": agent.pid.split("@")[-1].split(":")[0],
                            "port": agent.info.port or 5051},
                "path": "/slave(1)",
            },
            "resources": resources,
            "attributes": agent.info.attributes,
            "executor_ids": [{"value": e} for e in agent.executors.get(framework.id, {})],
        }
        if agent.info.domain is not None:
            body["domain"] = agent.info.domain
        window = self.agent_windows.get(agent.id)
        if window is not None:
            body["unavailability"] = window.to_json()
        if multi_role:
            body["allocation_info"] = {"role": offer.role}
        return body

    def _offer_expired(self, offer_id: str) -> None:
        offer = self.offers.get(offer_id)
        if offer is not None:
            log.info("Offer %s expired after --offer_timeout", offer_id)
            self._remove_offer(offer, rescind=True, recover=True)
            self.wake_allocator()

    def _remove_offer(self, offer: Offer, *, rescind: bool, recover: bool) -> None:
        self.offers.pop(offer.id, None)
        framework = self.frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.pop(offer.id, None)
            if rescind:
                framework.send(event("RESCIND", {"offer_id": {"value": offer.id}}))
        agent = self.agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.discard(offer.id)
        if offer.expiry is not None:
            offer.expiry.cancel()
        if recover:
            self.allocator.recover_resources(offer.framework_id, offer.agent_id, offer.resources,
                                             None, self._now(), role=offer.role)
