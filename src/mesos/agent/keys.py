"""Typed keys for what the agent keeps on its aiohttp application."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from mesos.agent.service import Agent

AGENT: web.AppKey[Agent] = web.AppKey("agent")
