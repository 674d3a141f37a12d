"""Mesos `Value` arithmetic and single resource entries (the layer under `Resources`).

Internal forms (chosen to be cheap to add, compare and hash):

* SCALAR: ``int`` thousandths (Mesos keeps 3 decimal digits, so ``0.1 + 0.2 == 0.3``)
* RANGES: ``tuple[tuple[int, int], ...]`` sorted, disjoint, non-adjacent, inclusive
* SET: ``frozenset[str]``

The text grammar is the one of ``--resources`` / ``--attributes`` values:
``[b-e,b-e]`` ranges, ``{x,y}`` set, a decimal number scalar, anything else text.

The second half turns one resource (v1 JSON or a ``--resources`` token) into a
``(key, value)`` pair for ``mesos.resources.Resources``, and back; see that module
for the key layout. ``mesos.resources`` re-exports the public names.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, NamedTuple

from mesos.errors import ValidationError

Ranges = tuple[tuple[int, int], ...]
ValueKind = Literal["SCALAR", "RANGES", "SET", "TEXT"]

_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_UINT_RE = re.compile(r"^\d+$")
UINT64_MAX = (1 << 64) - 1


# --------------------------------------------------------------------------- scalars


def scalar_from_float(value: float) -> int:
    """Round to Mesos' fixed point (thousandths, half away from zero)."""
    scaled = value * 1000.0
    return math.floor(scaled + 0.5) if scaled >= 0 else -math.floor(-scaled + 0.5)


def scalar_to_float(millis: int) -> float:
    return millis / 1000.0


def format_scalar(millis: int) -> str:
    """``4000 -> "4"``, ``1500 -> "1.5"``, ``10 -> "0.01"``."""
    whole, frac = divmod(abs(millis), 1000)
    sign = "-" if millis < 0 else ""
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:03d}".rstrip("0")


def parse_number(text: str) -> float | None:
    """A finite decimal number, or None (no ``inf``, ``nan``, ``0x``, ``1_000``)."""
    if not _NUMBER_RE.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- ranges


def ranges_coalesce(pairs: Iterable[tuple[int, int]]) -> Ranges:
    """Sort and merge overlapping or adjacent inclusive ranges."""
    ordered = sorted(pairs)
    if not ordered:
        return ()
    out: list[tuple[int, int]] = []
    cur_b, cur_e = ordered[0]
    for b, e in ordered[1:]:
        if b <= cur_e + 1:
            if e > cur_e:
                cur_e = e
        else:
            out.append((cur_b, cur_e))
            cur_b, cur_e = b, e
    out.append((cur_b, cur_e))
    return tuple(out)


def ranges_union(a: Ranges, b: Ranges) -> Ranges:
    if not a:
        return b
    if not b:
        return a
    return ranges_coalesce(a + b)


def ranges_subtract(a: Ranges, b: Ranges) -> Ranges:
    """``a`` minus ``b`` (both coalesced); parts of ``b`` outside ``a`` are ignored."""
    if not b or not a:
        return a
    out: list[tuple[int, int]] = []
    j = 0
    nb = len(b)
    for lo, hi in a:
        # Skip b ranges entirely below this a range.
        while j < nb and b[j][1] < lo:
            j += 1
        k = j
        cur = lo
        while k < nb and b[k][0] <= hi:
            sb, se = b[k]
            if sb > cur:
                out.append((cur, sb - 1))
            if se + 1 > cur:
                cur = se + 1
            if se >= hi:
                break
            k += 1
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def ranges_contains(a: Ranges, b: Ranges) -> bool:
    """Whether every number in ``b`` is in ``a`` (both coalesced)."""
    i = 0
    na = len(a)
    for sb, se in b:
        while i < na and a[i][1] < sb:
            i += 1
        if i >= na:
            return False
        lo, hi = a[i]
        if lo > sb or hi < se:
            return False
    return True


def ranges_size(r: Ranges) -> int:
    return sum(e - b + 1 for b, e in r)


def format_ranges(r: Iterable[tuple[int, int]]) -> str:
    """``[31000-32000, 33000-33001]`` (Mesos' stringify)."""
    return "[" + ", ".join(f"{b}-{e}" for b, e in r) + "]"


def format_set(items: Iterable[str]) -> str:
    """``{a, b}`` (Mesos' stringify), items sorted for a stable output."""
    return "{" + ", ".join(sorted(items)) + "}"


# --------------------------------------------------------------------------- text grammar


def _parse_ranges_text(text: str) -> Ranges:
    if not text.endswith("]"):
        raise ValueError(f"missing closing ']' in '{text}'")
    inner = text[1:-1]
    pairs: list[tuple[int, int]] = []
    for part in inner.split(","):
        if not part:
            continue
        bounds = part.split("-")
        if len(bounds) != 2 or not all(_UINT_RE.match(x) for x in bounds):
            raise ValueError(f"bad range '{part}' in '{text}' (expected begin-end)")
        b, e = int(bounds[0]), int(bounds[1])
        if b > e:
            raise ValueError(f"bad range '{part}' in '{text}' (begin > end)")
        if e > UINT64_MAX:
            raise ValueError(f"range '{part}' in '{text}' exceeds uint64")
        pairs.append((b, e))
    return ranges_coalesce(pairs)


def _parse_set_text(text: str) -> frozenset[str]:
    if not text.endswith("}"):
        raise ValueError(f"missing closing '}}' in '{text}'")
    return frozenset(item for item in text[1:-1].split(",") if item)


def parse_value_text(
    text: str,
) -> (
    tuple[Literal["SCALAR"], float]
    | tuple[Literal["RANGES"], Ranges]
    | tuple[Literal["SET"], frozenset[str]]
    | tuple[Literal["TEXT"], str]
):
    """Classify and parse a value; all whitespace is removed first.

    Raises ``ValueError`` (with a short reason) for malformed ranges or sets.
    """
    compact = "".join(text.split())
    if compact.startswith("["):
        return ("RANGES", _parse_ranges_text(compact))
    if compact.startswith("{"):
        return ("SET", _parse_set_text(compact))
    number = parse_number(compact)
    if number is not None:
        return ("SCALAR", number)
    return ("TEXT", compact)


# --------------------------------------------------------------------------- resource entries

SCALAR: Final = 0
RANGES: Final = 1
SET: Final = 2
KIND_NAMES = ("SCALAR", "RANGES", "SET")
KIND_BY_NAME = {"SCALAR": SCALAR, "RANGES": RANGES, "SET": SET}
# Names whose type Mesos fixes.
_SCALAR_NAMES = frozenset({"cpus", "mem", "disk", "gpus"})
_RANGES_NAMES = frozenset({"ports"})
_ROLE_BAD_CHARS = frozenset("\t\n\v\f\r /")


class ResourcesError(ValidationError, ValueError):
    """Malformed resources or an impossible operation; the message names the culprit."""


class Reservation(NamedTuple):
    type: str  # "STATIC" | "DYNAMIC"
    role: str
    principal: str | None = None
    labels: tuple[tuple[str, str | None], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "role": self.role}
        if self.principal is not None:
            out["principal"] = self.principal
        if self.labels is not None:
            out["labels"] = labels_to_json(self.labels)
        return out


Key = tuple[str, int, tuple[Reservation, ...], str | None, str | None, bool, bool, str | None]
# Indexes into Key.
NAME: Final = 0
KIND: Final = 1
RES: Final = 2
ALLOC: Final = 3
DISK: Final = 4
REV: Final = 5
SHARED: Final = 6
PROVIDER: Final = 7


class Resource(NamedTuple):
    """One flattened entry, for callers that want to look at entries one by one."""

    name: str
    type: str
    value: float | Ranges | frozenset[str]
    reservations: tuple[Reservation, ...]
    allocation_role: str | None
    disk: dict[str, Any] | None
    revocable: bool
    shared: bool
    provider_id: str | None
    shared_count: int = 1  # copies of a shared resource

    @property
    def role(self) -> str:
        """The most refined reservation role, ``"*"`` when unreserved."""
        return self.reservations[-1].role if self.reservations else "*"


# --------------------------------------------------------------------------- helpers


def validate_role(role: str) -> None:
    """Mesos' role name rules (hierarchical roles use ``/``); raises ResourcesError."""
    if role == "*":
        return
    if not role:
        raise ResourcesError("Invalid role '': role name must not be empty")
    for part in role.split("/"):
        if part in ("", ".", ".."):
            raise ResourcesError(f"Invalid role '{role}': bad path component '{part}'")
        if part.startswith("-"):
            raise ResourcesError(f"Invalid role '{role}': a component must not start with '-'")
        if part == "*":
            raise ResourcesError(f"Invalid role '{role}': '*' cannot be a path component")
        if any(c in _ROLE_BAD_CHARS or ord(c) < 0x20 or c == "\x7f" for c in part):
            raise ResourcesError(f"Invalid role '{role}': contains whitespace or control chars")


def is_ancestor_or_self(ancestor: str, role: str) -> bool:
    return role == ancestor or role.startswith(ancestor + "/")


def labels_from_json(where: str, labels: Any) -> tuple[tuple[str, str | None], ...]:
    if not isinstance(labels, Mapping):
        raise ResourcesError(f"{where}: 'labels' must be an object")
    out: list[tuple[str, str | None]] = []
    for label in labels.get("labels") or []:
        if not isinstance(label, Mapping) or not isinstance(label.get("key"), str):
            raise ResourcesError(f"{where}: each label needs a string 'key'")
        value = label.get("value")
        out.append((label["key"], None if value is None else str(value)))
    return tuple(out)


def labels_to_json(labels: tuple[tuple[str, str | None], ...]) -> dict[str, Any]:
    return {"labels": [{"key": k} if v is None else {"key": k, "value": v} for k, v in labels]}


def reservation_from_json(where: str, data: Any) -> Reservation:
    if not isinstance(data, Mapping):
        raise ResourcesError(f"{where}: each reservation must be an object")
    role = data.get("role")
    if not isinstance(role, str) or role == "*":
        raise ResourcesError(f"{where}: reservation needs a role other than '*'")
    validate_role(role)
    principal = data.get("principal")
    labels = data.get("labels")
    rtype = data.get("type")
    if rtype is None:
        rtype = "DYNAMIC" if principal is not None or labels is not None else "STATIC"
    if rtype not in ("STATIC", "DYNAMIC"):
        raise ResourcesError(f"{where}: unknown reservation type '{rtype}'")
    return Reservation(
        rtype,
        role,
        None if principal is None else str(principal),
        None if labels is None else labels_from_json(where, labels),
    )


def reservations_of(
    where: str, item: Mapping[str, Any], default_role: str
) -> tuple[Reservation, ...]:
    stack = item.get("reservations")
    if stack:
        if not isinstance(stack, list):
            raise ResourcesError(f"{where}: 'reservations' must be a list")
        result = tuple(reservation_from_json(where, r) for r in stack)
        for parent, child in itertools.pairwise(result):
            if not child.role.startswith(parent.role + "/"):
                raise ResourcesError(
                    f"{where}: reservation role '{child.role}' does not refine '{parent.role}'"
                )
        return result
    role = item.get("role")
    if role is None:
        role = default_role
    if not isinstance(role, str):
        raise ResourcesError(f"{where}: 'role' must be a string")
    if role == "*":
        return ()
    validate_role(role)
    legacy = item.get("reservation")
    if legacy is None:
        return (Reservation("STATIC", role),)
    if not isinstance(legacy, Mapping):
        raise ResourcesError(f"{where}: 'reservation' must be an object")
    principal = legacy.get("principal")
    labels = legacy.get("labels")
    return (
        Reservation(
            "DYNAMIC",
            role,
            None if principal is None else str(principal),
            None if labels is None else labels_from_json(where, labels),
        ),
    )


def _as_uint(where: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ResourcesError(f"{where}: range bounds must be integers, got {value!r}")
    if isinstance(value, int):
        result = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.strip().isdigit()
    ):
        result = int(value)
    else:
        raise ResourcesError(f"{where}: range bounds must be integers, got {value!r}")
    if result < 0:
        raise ResourcesError(f"{where}: range bounds must be non-negative, got {result}")
    return result


def _scalar_millis(where: str, value: Any) -> int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ResourcesError(f"{where}: scalar value must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResourcesError(f"{where}: scalar value must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ResourcesError(f"{where}: scalar value must be finite and non-negative, got {value}")
    return scalar_from_float(float(value))


def _value_from_json(where: str, kind: int, item: Mapping[str, Any]) -> Any:
    if kind == SCALAR:
        scalar = item.get("scalar")
        if not isinstance(scalar, Mapping) or "value" not in scalar:
            raise ResourcesError(f"{where}: SCALAR resource needs 'scalar': {{'value': ...}}")
        return _scalar_millis(where, scalar["value"])
    if kind == RANGES:
        ranges = item.get("ranges") or {}
        if not isinstance(ranges, Mapping):
            raise ResourcesError(f"{where}: 'ranges' must be an object")
        pairs: list[tuple[int, int]] = []
        for r in ranges.get("range") or []:
            if not isinstance(r, Mapping) or "begin" not in r or "end" not in r:
                raise ResourcesError(f"{where}: each range needs 'begin' and 'end'")
            b, e = _as_uint(where, r["begin"]), _as_uint(where, r["end"])
            if b > e:
                raise ResourcesError(f"{where}: range begin {b} is greater than end {e}")
            pairs.append((b, e))
        return ranges_coalesce(pairs)
    items = (item.get("set") or {}).get("item") or []
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ResourcesError(f"{where}: 'set.item' must be a list of strings")
    return frozenset(items)


def _infer_kind(item: Mapping[str, Any]) -> str | None:
    for field, kind in (("scalar", "SCALAR"), ("ranges", "RANGES"), ("set", "SET")):
        if item.get(field) is not None:
            return kind
    return None


def entry_from_json(item: Any, default_role: str) -> tuple[Key, Any] | None:
    if not isinstance(item, Mapping):
        try:
            import msgspec

            item = msgspec.to_builtins(item)
        except (ImportError, TypeError):
            raise ResourcesError(f"Invalid resource {item!r}: expected an object") from None
        if not isinstance(item, Mapping):
            raise ResourcesError(f"Invalid resource {item!r}: expected an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise ResourcesError(f"Invalid resource {dict(item)!r}: missing 'name'")
    where = f"Invalid resource '{name}'"
    type_name = item.get("type") or _infer_kind(item)
    kind = KIND_BY_NAME.get(type_name) if isinstance(type_name, str) else None
    if kind is None:
        raise ResourcesError(f"{where}: unknown type {type_name!r}")
    value = _value_from_json(where, kind, item)
    reservations = reservations_of(where, item, default_role)
    alloc = item.get("allocation_info")
    alloc_role = alloc.get("role") if isinstance(alloc, Mapping) else None
    if alloc_role is not None and not isinstance(alloc_role, str):
        raise ResourcesError(f"{where}: 'allocation_info.role' must be a string")
    disk = item.get("disk")
    disk_key = json.dumps(disk, sort_keys=True, separators=(",", ":")) if disk is not None else None
    provider = item.get("provider_id")
    provider_id = provider.get("value") if isinstance(provider, Mapping) else None
    shared = item.get("shared") is not None
    key: Key = (
        name,
        kind,
        reservations,
        alloc_role,
        disk_key,
        item.get("revocable") is not None,
        shared,
        provider_id,
    )
    if not value:
        return None
    return key, ((value, 1) if shared else value)


# --------------------------------------------------------------------------- value ops


def add_values(key: Key, a: Any, b: Any) -> Any:
    if key[SHARED]:
        if a[0] != b[0]:
            raise ResourcesError(f"Cannot add shared resource '{key[NAME]}' of another size")
        return (a[0], a[1] + b[1])
    kind = key[KIND]
    if kind == SCALAR:
        return a + b
    if kind == RANGES:
        return ranges_union(a, b)
    return a | b


def contains_value(key: Key, a: Any, b: Any) -> bool:
    if key[SHARED]:
        return bool(a[0] == b[0] and a[1] >= b[1])
    kind = key[KIND]
    if kind == SCALAR:
        return bool(a >= b)
    if kind == RANGES:
        return ranges_contains(a, b)
    return bool(b <= a)


def sub_values(key: Key, a: Any, b: Any, saturate: bool) -> Any:
    """``a - b``; None when nothing is left. Raises unless ``saturate`` or contained."""
    if not saturate and not contains_value(key, a, b):
        raise ResourcesError(
            f"Cannot subtract {entry_text(key, b)} from {entry_text(key, a)}: not contained"
        )
    if key[SHARED]:
        if a[0] != b[0]:
            return a
        count = a[1] - b[1]
        return (a[0], count) if count > 0 else None
    kind = key[KIND]
    if kind == SCALAR:
        left = a - b
        return left if left > 0 else None
    if kind == RANGES:
        return ranges_subtract(a, b) or None
    return (a - b) or None


def _value_text(kind: int, value: Any) -> str:
    if kind == SCALAR:
        return format_scalar(value)
    if kind == RANGES:
        return format_ranges(value)
    return format_set(value)


def entry_text(key: Key, value: Any) -> str:
    name = key[NAME]
    if key[RES]:
        name += f"({key[RES][-1].role})"
    if key[ALLOC] is not None:
        name += f"(allocated: {key[ALLOC]})"
    if key[DISK] is not None:
        name += f"[{key[DISK]}]"
    if key[REV]:
        name += "{REV}"
    if key[SHARED]:
        name += "<SHARED>"
        value = value[0]
    return f"{name}:{_value_text(key[KIND], value)}"


def entry_json(key: Key, value: Any) -> dict[str, Any]:
    kind = key[KIND]
    out: dict[str, Any] = {"name": key[NAME], "type": KIND_NAMES[kind]}
    if kind == SCALAR:
        out["scalar"] = {"value": value / 1000.0}
    elif kind == RANGES:
        out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
    else:
        out["set"] = {"item": sorted(value)}
    if key[ALLOC] is not None:
        out["allocation_info"] = {"role": key[ALLOC]}
    if key[DISK] is not None:
        out["disk"] = json.loads(key[DISK])
    if key[REV]:
        out["revocable"] = {}
    if key[SHARED]:
        out["shared"] = {}
    if key[PROVIDER] is not None:
        out["provider_id"] = {"value": key[PROVIDER]}
    return out


# --------------------------------------------------------------------------- text form


def _split_name_role(token: str, name_part: str, default_role: str) -> tuple[str, str]:
    name_part = name_part.strip()
    if "(" not in name_part and ")" not in name_part:
        return name_part, default_role
    open_at = name_part.find("(")
    if open_at <= 0 or not name_part.endswith(")") or name_part.count("(") != 1:
        raise ResourcesError(f"Bad resource token '{token}': expected name(role):value")
    role = name_part[open_at + 1 : -1].strip()
    if not role:
        raise ResourcesError(f"Bad resource token '{token}': empty role")
    return name_part[:open_at].strip(), role


def parse_text_token(token: str, default_role: str) -> tuple[Key, Any] | None:
    parts = [p for p in token.split(":") if p.strip()]
    if len(parts) != 2:
        raise ResourcesError(f"Bad resource token '{token}': expected name:value")
    name, role = _split_name_role(token, parts[0], default_role)
    if not name:
        raise ResourcesError(f"Bad resource token '{token}': empty name")
    raw = parts[1].strip()
    try:
        parsed = parse_value_text(raw)
    except ValueError as exc:
        raise ResourcesError(f"Bad value for resource '{name}': {exc}") from None
    kind_name, value = parsed
    if kind_name == "TEXT":
        raise ResourcesError(f"Bad value for resource '{name}': '{raw}'")
    if name in _SCALAR_NAMES and kind_name != "SCALAR":
        raise ResourcesError(f"Bad value for resource '{name}': '{raw}' (expected a number)")
    if name in _RANGES_NAMES and kind_name != "RANGES":
        raise ResourcesError(f"Bad value for resource '{name}': '{raw}' (expected [begin-end])")
    kind = KIND_BY_NAME[kind_name]
    stored: Any = value
    if kind == SCALAR:
        assert isinstance(value, float)
        if value < 0:
            raise ResourcesError(f"Bad value for resource '{name}': '{raw}' (negative)")
        stored = scalar_from_float(value)
        if name == "gpus" and stored % 1000:
            raise ResourcesError(f"Bad value for resource 'gpus': '{raw}' (must be whole)")
    if role == "*":
        reservations: tuple[Reservation, ...] = ()
    else:
        validate_role(role)
        reservations = (Reservation("STATIC", role),)
    if not stored:
        return None
    return (name, kind, reservations, None, None, False, False, None), stored
