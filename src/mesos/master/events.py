"""Encoding of the events the master streams to schedulers and agents."""

from __future__ import annotations

from typing import Any

from mesos.v1 import codec


def event(type_: str, payload: Any = None) -> bytes:
    """One stream event: ``{"type": T, "<t>": payload}`` as compact JSON."""
    if payload is None:
        return codec.encode({"type": type_})
    return codec.encode({"type": type_, type_.lower(): payload})
