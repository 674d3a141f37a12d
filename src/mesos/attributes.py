"""Agent attributes (``--attributes``): parse to v1 Attribute JSON, flatten for legacy JSON.

``rack:abc;zone:west;level:10;keys:[1000-1500]`` ->
``[{"name": "rack", "type": "TEXT", "text": {"value": "abc"}}, {"name": "level",
"type": "SCALAR", "scalar": {"value": 10.0}}, {"name": "keys", "type": "RANGES",
"ranges": {"range": [{"begin": 1000, "end": 1500}]}}, ...]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mesos.errors import ValidationError
from mesos.values import format_ranges, format_set, parse_value_text

__all__ = ["AttributesError", "parse", "summary"]

_SEPARATORS = re.compile(r"[;\n]")


class AttributesError(ValidationError, ValueError):
    """A malformed ``--attributes`` token; the message names it."""


def _parse_token(token: str) -> dict[str, Any]:
    name, colon, raw = token.partition(":")
    name = name.strip()
    if not colon:
        raise AttributesError(f"Bad attribute token '{token}': expected name:value")
    if not name:
        raise AttributesError(f"Bad attribute token '{token}': empty name")
    if not raw.strip():
        raise AttributesError(f"Bad attribute token '{token}': empty value")
    try:
        parsed = parse_value_text(raw)
    except ValueError as exc:
        raise AttributesError(f"Bad value for attribute '{name}': {exc}") from None
    kind, value = parsed
    if isinstance(value, float):
        return {"name": name, "type": "SCALAR", "scalar": {"value": value}}
    if isinstance(value, tuple):
        ranges = [{"begin": b, "end": e} for b, e in value]
        return {"name": name, "type": "RANGES", "ranges": {"range": ranges}}
    if kind == "SET":
        raise AttributesError(
            f"Bad value for attribute '{name}': '{raw.strip()}' (sets are not allowed)"
        )
    return {"name": name, "type": "TEXT", "text": {"value": value}}


def parse(text: str | None) -> list[dict[str, Any]]:
    """``--attributes`` text -> list of v1 Attribute JSON objects, in the given order."""
    if not text:
        return []
    out: list[dict[str, Any]] = []
    for token in _SEPARATORS.split(text):
        if token.strip():
            out.append(_parse_token(token.strip()))
    return out


def summary(attributes: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Legacy flat form: ``{"rack": "abc", "level": 10.0, "keys": "[1000-1500]"}``."""
    out: dict[str, Any] = {}
    for attr in attributes:
        name = attr.get("name")
        if not isinstance(name, str):
            continue
        kind = attr.get("type")
        if kind == "SCALAR":
            out[name] = float((attr.get("scalar") or {}).get("value", 0.0))
        elif kind == "RANGES":
            ranges = (attr.get("ranges") or {}).get("range") or []
            out[name] = format_ranges((int(r["begin"]), int(r["end"])) for r in ranges)
        elif kind == "SET":
            out[name] = format_set((attr.get("set") or {}).get("item") or [])
        else:
            out[name] = str((attr.get("text") or {}).get("value", ""))
    return out
