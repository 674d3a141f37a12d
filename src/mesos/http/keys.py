"""Typed keys for what the daemons keep on their aiohttp applications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from mesos.master.service import Master

MASTER: web.AppKey[Master] = web.AppKey("master")
