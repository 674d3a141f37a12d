"""`Resources`: an immutable multiset of Mesos resources with Mesos' arithmetic.

Internally a ``Resources`` is a dict ``key -> value`` with one entry per distinct

    key = (name, kind, reservations, allocation_role, disk, revocable, shared, provider_id)

where ``kind`` is 0 SCALAR / 1 RANGES / 2 SET, ``reservations`` a tuple of
``Reservation`` (last = most refined role), ``disk`` a canonical JSON string of the
``disk`` object (or None), and the value is in the compact form of ``mesos.values``
(scalars as int thousandths, coalesced range tuples, frozensets). Shared resources
keep ``(value, count)`` so that the same volume can be handed out several times.

A persistent volume that is not shared is indivisible, as in Mesos: it is never split
(a part of it is not contained in it) nor merged with another copy of itself. Its
entry in ``_m`` holds the size of all its copies together, so code that sums
scalars can read ``_m`` as it is; when there is more than one copy, ``_v`` keeps the
size of each (``key -> sorted tuple``), and ``contains`` and subtraction match the
copies one by one.

At the edge everything is JSON-shaped dicts (``v1.Resource`` as ``msgspec.to_builtins``
gives it): ``from_json`` accepts the post-refinement form (``reservations``), the
pre-refinement form (``role`` + ``reservation``) and the endpoint form (both).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from mesos.values import (
    ALLOC,
    DISK,
    KIND,
    KIND_NAMES,
    NAME,
    PROVIDER,
    RANGES,
    RES,
    REV,
    SCALAR,
    SET,
    SHARED,
    Key,
    Ranges,
    Reservation,
    Resource,
    ResourcesError,
    add_values,
    contains_value,
    entry_from_json,
    entry_json,
    entry_text,
    format_ranges,
    format_set,
    is_ancestor_or_self,
    labels_to_json,
    parse_text_token,
    ranges_size,
    ranges_union,
    reservation_from_json,
    scalar_from_float,
    sub_values,
    validate_role,
)

__all__ = [
    "Reservation",
    "Resource",
    "Resources",
    "ResourcesError",
    "Volume",
    "apply_checkpointed",
    "detect_resources",
    "grow_volume",
    "merge_with_detected",
    "shrink_volume",
    "validate_role",
    "validate_volumes",
]

# --------------------------------------------------------------------------- Resources


class Resources:
    """Immutable, flattened resources. See the module docstring for the layout."""

    __slots__ = ("_hash", "_m", "_q", "_v")

    _m: dict[Key, Any]
    _v: dict[Key, tuple[int, ...]] | None  # copies of non-shared volumes, when several
    _hash: int | None
    _q: dict[str, float] | None

    def __init__(self, items: Iterable[Mapping[str, Any]] | None = None) -> None:
        built = Resources.from_json(items) if items is not None else _EMPTY
        self._m = built._m
        self._v = built._v
        self._hash = None
        self._q = None

    @classmethod
    def _make(cls, m: dict[Key, Any], v: dict[Key, tuple[int, ...]] | None = None) -> Resources:
        r = object.__new__(cls)
        r._m = m
        r._v = v or None
        r._hash = None
        r._q = None
        return r

    def _items(self) -> Iterable[tuple[Key, Any]]:
        """``_m``'s entries with each copy of a non-shared volume on its own."""
        v = self._v
        if v is None:
            return self._m.items()
        return [(key, size) for key, value in self._m.items()
                for size in v.get(key, (value,))]

    def _copies(self, key: Key) -> tuple[int, ...]:
        """The sizes of the copies of the non-shared volume ``key`` held here."""
        v = self._v
        copies = v.get(key) if v is not None else None
        return copies if copies is not None else (self._m[key],)

    # ----------------------------------------------------------------- construction

    @classmethod
    def empty(cls) -> Resources:
        return _EMPTY

    @classmethod
    def from_json(
        cls, items: Iterable[Any] | Mapping[str, Any] | None, default_role: str = "*"
    ) -> Resources:
        """v1 Resource JSON (a list, or one object); pre-refinement ``role`` accepted."""
        if items is None:
            return _EMPTY
        if isinstance(items, Mapping):
            items = [items]
        m: dict[Key, Any] = {}
        v: dict[Key, tuple[int, ...]] = {}
        for item in items:
            entry = entry_from_json(item, default_role)
            if entry is None:
                continue
            key, value = entry
            _merge(m, v, key, value, None)
        return cls._make(m, v)

    @classmethod
    def parse(cls, text: str, default_role: str = "*") -> Resources:
        """``--resources`` text (``cpus:4;mem:1024;ports:[31000-32000];disk(r):10``) or
        a JSON array of Resource objects; unroled entries get ``default_role``."""
        validate_role(default_role)
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                items = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise ResourcesError(f"Failed to parse resources JSON: {exc}") from None
            if not isinstance(items, list):
                raise ResourcesError("Resources JSON must be an array of Resource objects")
            return cls.from_json(items, default_role=default_role)
        m: dict[Key, Any] = {}
        v: dict[Key, tuple[int, ...]] = {}
        for token in stripped.split(";"):
            token = token.strip()
            if not token:
                continue
            entry = parse_text_token(token, default_role)
            if entry is None:
                continue
            key, value = entry
            _merge(m, v, key, value, None)
        return cls._make(m, v)

    # ----------------------------------------------------------------- output

    def to_json(self) -> list[dict[str, Any]]:
        """Post-refinement v1 Resource JSON (``reservations`` stack, no ``role``)."""
        out: list[dict[str, Any]] = []
        for key, value in self._items():
            count = 1
            if key[SHARED]:
                value, count = value
            d = entry_json(key, value)
            if key[RES]:
                d["reservations"] = [r.to_json() for r in key[RES]]
            out.append(d)
            out.extend(dict(d) for _ in range(count - 1))
        return out

    def to_json_pre_refinement(self) -> list[dict[str, Any]]:
        """What frameworks without RESERVATION_REFINEMENT see: ``role`` (``"*"`` when
        unreserved) plus ``reservation`` for dynamic reservations; no ``reservations``."""
        out: list[dict[str, Any]] = []
        for key, value in self._items():
            count = 1
            if key[SHARED]:
                value, count = value
            d = entry_json(key, value)
            stack = key[RES]
            d["role"] = stack[-1].role if stack else "*"
            if stack and stack[-1].type == "DYNAMIC":
                last = stack[-1]
                info: dict[str, Any] = {}
                if last.principal is not None:
                    info["principal"] = last.principal
                if last.labels is not None:
                    info["labels"] = labels_to_json(last.labels)
                d["reservation"] = info
            out.extend(dict(d) for _ in range(count))
        return out

    def to_json_endpoint(self) -> list[dict[str, Any]]:
        """Legacy ``/state`` ``*_full`` form: both ``role`` and ``reservations``."""
        out = self.to_json()
        for d in out:
            stack = d.get("reservations")
            d["role"] = stack[-1]["role"] if stack else "*"
        return out

    def summary(self) -> dict[str, Any]:
        """Legacy flat form: ``{"cpus": 4.0, "gpus": 0.0, "mem": 1024.0, "disk": 0.0,
        "ports": "[31000-32000]", "bugs": "{a, b}"}``."""
        out: dict[str, Any] = {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
        scalars: dict[str, int] = {}
        ranges: dict[str, Ranges] = {}
        sets: dict[str, frozenset[str]] = {}
        for key, value in self._m.items():
            if key[SHARED]:
                value = value[0]
            name, kind = key[NAME], key[KIND]
            if kind == SCALAR:
                scalars[name] = scalars.get(name, 0) + value
            elif kind == RANGES:
                ranges[name] = ranges_union(ranges.get(name, ()), value)
            else:
                sets[name] = sets.get(name, frozenset()) | value
        for name, millis in scalars.items():
            out[name] = millis / 1000.0
        for name, r in ranges.items():
            out[name] = format_ranges(r)
        for name, s in sets.items():
            out[name] = format_set(s)
        return out

    def __str__(self) -> str:
        return ";".join(entry_text(k, v) for k, v in self._items())

    def __repr__(self) -> str:
        return f"Resources({str(self)!r})"

    # ----------------------------------------------------------------- value protocol

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self._m == other._m and self._v == other._v

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            copies = frozenset(self._v.items()) if self._v else None
            h = self._hash = hash((frozenset(self._m.items()), copies))
        return h

    def __bool__(self) -> bool:
        return bool(self._m)

    def __len__(self) -> int:
        extra = sum(len(c) - 1 for c in self._v.values()) if self._v else 0
        return len(self._m) + extra

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.entries())

    def entries(self) -> tuple[Resource, ...]:
        result: list[Resource] = []
        for key, value in self._items():
            count = 1
            if key[SHARED]:
                value, count = value
            kind = key[KIND]
            result.append(
                Resource(
                    key[NAME],
                    KIND_NAMES[kind],
                    value / 1000.0 if kind == SCALAR else value,
                    key[RES],
                    key[ALLOC],
                    json.loads(key[DISK]) if key[DISK] is not None else None,
                    key[REV],
                    key[SHARED],
                    key[PROVIDER],
                    count,
                )
            )
        return tuple(result)

    # ----------------------------------------------------------------- arithmetic

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._m:
            return self
        if not self._m:
            return other
        m = dict(self._m)
        get = m.get
        theirs = other._v
        v = dict(self._v) if self._v else None  # made only when a volume needs it
        for key, value in other._m.items():
            cur = get(key)
            if cur is None:
                m[key] = value
                if theirs is not None and key in theirs:
                    v = v if v is not None else {}
                    v[key] = theirs[key]
            elif type(cur) is int and (key[DISK] is None or not _is_exclusive_volume(key)):
                m[key] = cur + value
            else:
                v = v if v is not None else {}
                _merge(m, v, key, value, theirs.get(key) if theirs is not None else None)
        return Resources._make(m, v)

    def __sub__(self, other: Resources) -> Resources:
        """``self - other``; raises ResourcesError unless ``self.contains(other)``."""
        if not isinstance(other, Resources):
            return NotImplemented
        return self._subtract(other, saturate=False)

    def minus(self, other: Resources) -> Resources:
        """Saturating subtraction: whatever of ``other`` is not here is ignored."""
        return self._subtract(other, saturate=True)

    def _subtract(self, other: Resources, saturate: bool) -> Resources:
        """As Mesos: a non-shared volume is taken off only by a copy of the same
        size; with ``saturate`` one that is not here whole is left alone."""
        if not other._m:
            return self
        m = dict(self._m)
        v = dict(self._v) if self._v else None  # made only when a volume needs it
        for key, value in other._m.items():
            cur = m.get(key)
            if cur is None:
                if saturate:
                    continue
                raise ResourcesError(
                    f"Cannot subtract {entry_text(key, value)} from {self}: not contained"
                )
            if key[DISK] is not None and _is_exclusive_volume(key):
                left_copies = _take_copies(key, self._copies(key), other._copies(key),
                                           saturate)
                v = v if v is not None else {}
                v.pop(key, None)
                if not left_copies:
                    del m[key]
                    continue
                m[key] = sum(left_copies)
                if len(left_copies) > 1:
                    v[key] = left_copies
                continue
            if type(cur) is int:
                left = cur - value
                if left < 0 and not saturate:
                    raise ResourcesError(
                        f"Cannot subtract {entry_text(key, value)} from "
                        f"{entry_text(key, cur)}: not contained"
                    )
                if left > 0:
                    m[key] = left
                else:
                    del m[key]
                continue
            left = sub_values(key, cur, value, saturate)
            if left is None:
                del m[key]
            else:
                m[key] = left
        return Resources._make(m, v)

    def contains(self, other: Resources) -> bool:
        """Whether ``other`` can be taken from here. A non-shared persistent volume
        is contained only whole: each copy in ``other`` must match one here of the
        same size (so a part of a volume, or two copies of one, is not)."""
        mine = self._m
        for key, value in other._m.items():
            cur = mine.get(key)
            if cur is None:
                return False
            if key[DISK] is not None and _is_exclusive_volume(key):
                if not _has_copies(self._copies(key), other._copies(key)):
                    return False
            elif type(cur) is int:
                if cur < value:
                    return False
            elif not contains_value(key, cur, value):
                return False
        return True

    # ----------------------------------------------------------------- queries

    def names(self) -> set[str]:
        return {key[NAME] for key in self._m}

    def scalar(self, name: str) -> float:
        """Sum of every scalar entry called ``name`` (0.0 when none)."""
        total = 0
        for key, value in self._m.items():
            if key[NAME] == name and key[KIND] == SCALAR:
                total += value[0] if key[SHARED] else value
        return total / 1000.0

    def ranges(self, name: str) -> list[tuple[int, int]]:
        """Union of every ranges entry called ``name``, coalesced."""
        acc: Ranges = ()
        for key, value in self._m.items():
            if key[NAME] == name and key[KIND] == RANGES:
                acc = ranges_union(acc, value[0] if key[SHARED] else value)
        return list(acc)

    def set_items(self, name: str) -> frozenset[str]:
        acc: frozenset[str] = frozenset()
        for key, value in self._m.items():
            if key[NAME] == name and key[KIND] == SET:
                acc = acc | (value[0] if key[SHARED] else value)
        return acc

    def quantities(self) -> dict[str, float]:
        """``{name: amount}`` over scalars and ranges (ranges counted by size: ports ->
        how many ports); sets are not quantities."""
        q = self._q
        if q is None:
            acc: dict[str, int] = {}
            for key, value in self._m.items():
                kind = key[KIND]
                if key[SHARED]:
                    value = value[0]
                if kind == SCALAR:
                    acc[key[NAME]] = acc.get(key[NAME], 0) + value
                elif kind == RANGES:
                    acc[key[NAME]] = acc.get(key[NAME], 0) + ranges_size(value) * 1000
            q = self._q = {name: millis / 1000.0 for name, millis in acc.items()}
        return dict(q)

    # ----------------------------------------------------------------- filters

    def _filter(self, keep: Any) -> Resources:
        m = {k: v for k, v in self._m.items() if keep(k)}
        if len(m) == len(self._m):
            return self
        copies = {k: c for k, c in self._v.items() if k in m} if self._v else None
        return Resources._make(m, copies)

    def named(self, name: str) -> Resources:
        return self._filter(lambda k: k[NAME] == name)

    def unreserved(self) -> Resources:
        return self._filter(lambda k: not k[RES])

    def reserved(self, role: str | None = None) -> Resources:
        """Reserved resources; with ``role``, those whose most refined role is ``role``."""
        if role is None:
            return self._filter(lambda k: bool(k[RES]))
        return self._filter(lambda k: bool(k[RES]) and k[RES][-1].role == role)

    def reservations(self) -> dict[str, Resources]:
        """``{role: resources reserved to it}`` by most refined role."""
        groups: dict[str, dict[Key, Any]] = {}
        for key, value in self._m.items():
            if key[RES]:
                groups.setdefault(key[RES][-1].role, {})[key] = value
        return {role: Resources._make(m) for role, m in groups.items()}

    def allocatable_to(self, role: str) -> Resources:
        """Unreserved plus resources reserved to ``role`` or one of its ancestors."""
        return self._filter(lambda k: not k[RES] or is_ancestor_or_self(k[RES][-1].role, role))

    def revocable(self) -> Resources:
        return self._filter(lambda k: k[REV])

    def non_revocable(self) -> Resources:
        return self._filter(lambda k: not k[REV])

    def shared(self) -> Resources:
        return self._filter(lambda k: k[SHARED])

    def non_shared(self) -> Resources:
        return self._filter(lambda k: not k[SHARED])

    def persistent_volumes(self) -> Resources:
        return self._filter(lambda k: k[DISK] is not None and '"persistence"' in k[DISK])

    # ----------------------------------------------------------------- transforms

    def _remap(self, change: Any) -> Resources:
        m: dict[Key, Any] = {}
        v: dict[Key, tuple[int, ...]] = {}
        mine = self._v
        for key, value in self._m.items():
            _merge(m, v, change(key), value, mine.get(key) if mine else None)
        return Resources._make(m, v)

    def allocate(self, role: str) -> Resources:
        """The same resources with ``allocation_info.role = role``."""
        return self._remap(lambda k: (*k[:ALLOC], role, *k[ALLOC + 1 :]))

    def unallocated(self) -> Resources:
        """The same resources without ``allocation_info``."""
        if all(k[ALLOC] is None for k in self._m):
            return self
        return self._remap(lambda k: (*k[:ALLOC], None, *k[ALLOC + 1 :]))

    def allocations(self) -> dict[str, Resources]:
        """``{allocation role: resources}`` (entries without allocation_info left out)."""
        groups: dict[str, dict[Key, Any]] = {}
        for key, value in self._m.items():
            if key[ALLOC] is not None:
                groups.setdefault(key[ALLOC], {})[key] = value
        return {role: Resources._make(m) for role, m in groups.items()}

    def push_reservation(self, reservation: Mapping[str, Any] | Reservation) -> Resources:
        """Refine every entry with one more reservation (RESERVE)."""
        res = (
            reservation
            if isinstance(reservation, Reservation)
            else reservation_from_json("Invalid reservation", reservation)
        )
        for key in self._m:
            stack = key[RES]
            if stack and not res.role.startswith(stack[-1].role + "/"):
                raise ResourcesError(
                    f"Reservation role '{res.role}' does not refine '{stack[-1].role}'"
                )
        return self._remap(lambda k: (*k[:RES], (*k[RES], res), *k[RES + 1 :]))

    def pop_reservation(self) -> Resources:
        """Drop the most refined reservation of every entry (UNRESERVE)."""
        for key in self._m:
            if not key[RES]:
                raise ResourcesError(f"Cannot unreserve unreserved resource '{key[NAME]}'")
        return self._remap(lambda k: (*k[:RES], k[RES][:-1], *k[RES + 1 :]))

    def to_unreserved(self) -> Resources:
        """The same resources with every reservation dropped."""
        return self._remap(lambda k: (*k[:RES], (), *k[RES + 1 :]))

    # ----------------------------------------------------------------- volumes

    def _rebuild(self, change: Any) -> Resources:
        """Like ``_remap`` but the new key may drop ``shared``: one copy is kept then."""
        m: dict[Key, Any] = {}
        v: dict[Key, tuple[int, ...]] = {}
        mine = self._v
        for key, value in self._m.items():
            new_key = change(key)
            if key[SHARED] and not new_key[SHARED]:
                value = value[0]
            _merge(m, v, new_key, value, mine.get(key) if mine else None)
        return Resources._make(m, v)

    def without_volumes(self) -> Resources:
        """The disk the persistent volumes sit on: ``disk.persistence``,
        ``disk.volume`` and ``shared`` dropped (what CREATE consumes, DESTROY gives)."""
        return self._rebuild(lambda k: (*k[:DISK], _strip_disk(k[DISK]), k[REV], False,
                                        k[PROVIDER]) if _is_volume(k) else k)

    def checkpointed(self) -> Resources:
        """What the agent must remember across restarts: dynamically reserved
        resources and persistent volumes (static resources come from its flags)."""
        return self._filter(
            lambda k: _is_volume(k) or any(r.type == "DYNAMIC" for r in k[RES])
        )

    def static_form(self) -> Resources:
        """The same resources as the agent's flags give them: dynamic reservations and
        persistent volumes taken off (static reservations kept)."""
        return self.without_volumes()._remap(
            lambda k: (*k[:RES], tuple(r for r in k[RES] if r.type != "DYNAMIC"),
                       *k[RES + 1 :])
        )

    def single_entries(self) -> list[Resources]:
        """Each entry as its own ``Resources`` (a shared one with one copy)."""
        out: list[Resources] = []
        for key, value in self._items():
            out.append(Resources._make({key: (value[0], 1) if key[SHARED] else value}))
        return out

    def volumes(self) -> list[Volume]:
        """The persistent volumes, one per entry."""
        out: list[Volume] = []
        for key, value in self._items():
            if not _is_volume(key):
                continue
            assert key[DISK] is not None
            disk = json.loads(key[DISK])
            persistence = disk.get("persistence") or {}
            volume = disk.get("volume") or {}
            out.append(Volume(
                persistence_id=str(persistence.get("id", "")),
                role=key[RES][-1].role if key[RES] else "*",
                container_path=str(volume.get("container_path", "")),
                mode=str(volume.get("mode", "RW")),
                shared=key[SHARED],
                principal=persistence.get("principal"),
                resources=Resources._make({key: (value[0], 1) if key[SHARED] else value}),
            ))
        return out


_EMPTY = Resources._make({})


class Volume(NamedTuple):
    """One persistent volume: where it lives on the agent and where tasks see it."""

    persistence_id: str
    role: str
    container_path: str
    mode: str
    shared: bool
    principal: str | None
    resources: Resources


def _is_volume(key: Key) -> bool:
    return key[DISK] is not None and '"persistence"' in key[DISK]


def _is_exclusive_volume(key: Key) -> bool:
    """A non-shared persistent volume: indivisible, never merged with a copy."""
    disk = key[DISK]
    return (disk is not None and not key[SHARED] and key[KIND] == SCALAR
            and '"persistence"' in disk)


def _merge(m: dict[Key, Any], v: dict[Key, tuple[int, ...]], key: Key, value: Any,
           copies: tuple[int, ...] | None) -> None:
    """``m[key] += value`` (``copies``: the sizes ``value`` is made of, if several),
    keeping the copies of a non-shared volume apart in ``v``."""
    cur = m.get(key)
    if cur is None:
        m[key] = value
        if copies is not None and _is_exclusive_volume(key):
            v[key] = copies
    elif _is_exclusive_volume(key):
        v[key] = tuple(sorted(v.get(key, (cur,)) + (copies or (value,))))
        m[key] = cur + value
    else:
        m[key] = add_values(key, cur, value)


def _has_copies(mine: tuple[int, ...], wanted: tuple[int, ...]) -> bool:
    """Whether every copy in ``wanted`` matches its own copy in ``mine``."""
    if len(wanted) == 1:
        return wanted[0] in mine
    left = list(mine)
    for size in wanted:
        if size not in left:
            return False
        left.remove(size)
    return True


def _take_copies(key: Key, mine: tuple[int, ...], wanted: tuple[int, ...],
                 saturate: bool) -> tuple[int, ...]:
    """``mine`` less the copies in ``wanted``, matched by size. A copy with no match
    here raises (a volume is never split) unless ``saturate``, which skips it."""
    left = list(mine)
    for size in wanted:
        if size in left:
            left.remove(size)
        elif not saturate:
            held = ", ".join(entry_text(key, s) for s in mine)
            raise ResourcesError(
                f"Cannot subtract {entry_text(key, size)} from {held}: a persistent "
                "volume is never split or merged, it must be named whole"
            )
    return tuple(left)


def _strip_disk(disk_key: str | None) -> str | None:
    if disk_key is None:
        return None
    disk = json.loads(disk_key)
    disk.pop("persistence", None)
    disk.pop("volume", None)
    if not disk:
        return None
    return json.dumps(disk, sort_keys=True, separators=(",", ":"))


def _path_problem(text: str, what: str) -> str | None:
    if not text:
        return f"{what} must not be empty"
    parts = text.split("/")
    if any(p in (".", "..") for p in parts):
        return f"{what} '{text}' must not contain '.' or '..' components"
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        return f"{what} '{text}' must not contain control characters"
    return None


def validate_volumes(volumes: Resources, where: str) -> None:
    """Mesos' rules for the volumes of a CREATE; raises ResourcesError naming the
    culprit. Volume ids name directories on the agent, container paths name places
    in the sandbox, so neither may climb out with ``..``."""
    if not volumes:
        raise ResourcesError(f"Invalid '{where}': no volumes given")
    seen: set[str] = set()
    for key in volumes._m:
        if not _is_volume(key):
            raise ResourcesError(
                f"Invalid '{where}': '{key[NAME]}' is not a persistent volume "
                "(it needs 'disk.persistence.id')"
            )
    for volume in volumes.volumes():
        key = next(iter(volume.resources._m))
        pid = volume.persistence_id
        problem = _path_problem(pid, "persistence id")
        if problem is None and "/" in pid:
            problem = f"persistence id '{pid}' must not contain '/'"
        if problem is not None:
            raise ResourcesError(f"Invalid '{where}': {problem}")
        if key[NAME] != "disk" or key[KIND] != SCALAR:
            raise ResourcesError(f"Invalid '{where}': volume '{pid}' must be a 'disk' scalar")
        if pid in seen:
            raise ResourcesError(f"Invalid '{where}': persistence id '{pid}' is given twice")
        seen.add(pid)
        if not key[RES]:
            raise ResourcesError(
                f"Invalid '{where}': persistent volume '{pid}' cannot be created from "
                "unreserved resources"
            )
        if key[REV]:
            raise ResourcesError(f"Invalid '{where}': volume '{pid}' cannot be revocable")
        path = volume.container_path
        problem = _path_problem(path, "container path")
        if problem is None and path.startswith("/"):
            problem = f"container path '{path}' must be relative to the sandbox"
        if problem is not None:
            raise ResourcesError(f"Invalid '{where}': volume '{pid}': {problem}")
        if volume.mode not in ("RW", "RO"):
            raise ResourcesError(
                f"Invalid '{where}': volume '{pid}' mode must be RW or RO, not '{volume.mode}'"
            )


def _resizable(volume: Resources, where: str, verb: str) -> tuple[Key, int]:
    """The one entry of a volume that GROW_VOLUME/SHRINK_VOLUME may resize, and its
    size in thousandths. As in Mesos, shared volumes (tasks may hold copies of the
    old size), MOUNT disks (their size is the device's) and resource-provider disks
    cannot be resized."""
    validate_volumes(volume, where)
    if len(volume._m) != 1:
        raise ResourcesError(f"Invalid '{where}': expecting exactly one persistent volume")
    key, value = next(iter(volume._m.items()))
    if key[SHARED]:
        raise ResourcesError(f"Invalid '{where}': {verb} a shared persistent volume is not "
                             "supported")
    if key[PROVIDER] is not None:
        raise ResourcesError(f"Invalid '{where}': {verb} a volume from a resource provider "
                             "is not supported")
    assert key[DISK] is not None
    source = json.loads(key[DISK]).get("source")
    if isinstance(source, dict) and source.get("type") == "MOUNT":
        raise ResourcesError(f"Invalid '{where}': {verb} a volume on a MOUNT disk is not "
                             "supported")
    return key, value


def _plain_disk_key(key: Key) -> Key:
    """The key of the disk a volume sits on (what ``without_volumes`` gives)."""
    return (*key[:DISK], _strip_disk(key[DISK]), key[REV], False, key[PROVIDER])


def grow_volume(volume: Resources, addition: Resources,
                where: str) -> tuple[Resources, Resources]:
    """GROW_VOLUME as a conversion ``(old, new)``: the volume and ``addition`` (disk
    with the volume's reservations and disk source, no persistence) become the same
    volume (same persistence id, so the same directory and data), larger. Raises
    ResourcesError naming what is wrong."""
    key, size = _resizable(volume, f"{where}.volume", "growing")
    if not addition:
        raise ResourcesError(f"Invalid '{where}.addition': its size must be greater than zero")
    if len(addition._m) != 1:
        raise ResourcesError(f"Invalid '{where}.addition': expecting exactly one disk resource")
    add_key, amount = next(iter(addition._m.items()))
    if add_key != _plain_disk_key(key):
        raise ResourcesError(
            f"Incompatible resources in '{where}.volume' and '{where}.addition': the "
            "addition must be disk with the volume's reservations and disk source, "
            f"and no persistence (got {addition})")
    return volume + addition, Resources._make({key: size + amount})


def shrink_volume(volume: Resources, subtract: float,
                  where: str) -> tuple[Resources, Resources]:
    """SHRINK_VOLUME as a conversion ``(old, new)``: the volume becomes ``subtract``
    smaller, and that much goes back to being plain disk of the same reservations.
    Raises ResourcesError naming what is wrong."""
    key, size = _resizable(volume, f"{where}.volume", "shrinking")
    if not math.isfinite(subtract):
        raise ResourcesError(f"Invalid '{where}.subtract': {subtract!r} is not a number")
    amount = scalar_from_float(subtract)
    if amount <= 0:
        raise ResourcesError(f"Invalid '{where}.subtract': it must be greater than zero")
    if amount >= size:
        raise ResourcesError(
            f"Invalid '{where}.subtract': it must be smaller than the size of "
            f"'{where}.volume' ({size / 1000.0:g})")
    freed = Resources._make({_plain_disk_key(key): amount})
    return volume, Resources._make({key: size - amount}) + freed


def apply_checkpointed(static: Resources, checkpointed: Resources) -> Resources:
    """The agent's total: its flag resources with the checkpointed reservations and
    volumes laid over what they were made from. Raises ResourcesError if the flags no
    longer hold them (the agent's resources were changed incompatibly)."""
    total = static
    for part in checkpointed.single_entries():
        source = part.static_form()
        if not total.contains(source):
            raise ResourcesError(
                f"Checkpointed resources {part} are incompatible with the agent's "
                f"resources {static}"
            )
        total = total - source + part
    return total


# --------------------------------------------------------------------------- detection

_MIB = 1 << 20
_GIB = 1 << 30


def _total_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _filesystem_bytes(path: str) -> int | None:
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return st.f_blocks * st.f_frsize


def detect_resources(work_dir: str, default_role: str = "*") -> Resources:
    """What the agent offers when ``--resources`` does not say (ref §8.1)."""
    cpus = os.cpu_count() or 1
    mem_total = _total_memory_bytes()
    if mem_total is None:
        mem = _GIB
    elif mem_total >= 2 * _GIB:
        mem = mem_total - _GIB
    else:
        mem = mem_total // 2
    disk_total = _filesystem_bytes(work_dir)
    if disk_total is None:
        disk = 10 * _GIB
    elif disk_total >= 10 * _GIB:
        disk = disk_total - 5 * _GIB
    else:
        disk = disk_total // 2
    text = f"cpus:{cpus};mem:{mem // _MIB};disk:{disk // _MIB};ports:[31000-32000]"
    return Resources.parse(text, default_role=default_role)


def _names_in_flag(text: str) -> set[str]:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError:
            return set()
        return {i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)}
    names: set[str] = set()
    for token in stripped.split(";"):
        head = token.split(":", 1)[0].strip()
        if head:
            names.add(head.split("(", 1)[0].strip())
    return names


def merge_with_detected(
    parsed: Resources | str | None, detected: Resources, default_role: str = "*"
) -> Resources:
    """``--resources`` plus detected resources for names it does not mention.

    ``parsed`` may be the flag text itself, so that a name given with a zero value
    (``cpus:0``, which leaves no entry) still counts as present, as in Mesos.
    """
    if parsed is None:
        return detected
    if isinstance(parsed, str):
        present = _names_in_flag(parsed)
        parsed = Resources.parse(parsed, default_role=default_role)
    else:
        present = parsed.names()
    missing = detected._filter(lambda k: k[NAME] not in present)
    return parsed + missing
