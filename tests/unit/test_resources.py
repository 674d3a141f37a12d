from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos.errors import ValidationError
from mesos.resources import (
    Reservation,
    Resources,
    ResourcesError,
    detect_resources,
    merge_with_detected,
    validate_role,
)
from mesos.values import (
    ranges_coalesce,
    ranges_contains,
    ranges_subtract,
    ranges_union,
)

P = Resources.parse


# --------------------------------------------------------------------------- parsing


def test_parse_text_form() -> None:
    r = P("cpus:4;mem:1024;ports:[31000-32000];disk(role):10;bugs(r):{a,b}")
    assert r.scalar("cpus") == 4.0
    assert r.scalar("mem") == 1024.0
    assert r.scalar("disk") == 10.0
    assert r.ranges("ports") == [(31000, 32000)]
    assert r.set_items("bugs") == frozenset({"a", "b"})
    assert r.names() == {"cpus", "mem", "ports", "disk", "bugs"}
    assert r.reserved("role").scalar("disk") == 10.0
    assert r.unreserved().scalar("disk") == 0.0
    assert r.to_json() == [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 4.0}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024.0}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 32000}]}},
        {
            "name": "disk",
            "type": "SCALAR",
            "scalar": {"value": 10.0},
            "reservations": [{"type": "STATIC", "role": "role"}],
        },
        {
            "name": "bugs",
            "type": "SET",
            "set": {"item": ["a", "b"]},
            "reservations": [{"type": "STATIC", "role": "r"}],
        },
    ]


def test_parse_whitespace_and_multiple_ranges() -> None:
    r = P(" cpus : 2 ; ports:[21000-24000, 30000-34000, 24001-24005] ;; ")
    assert r.scalar("cpus") == 2.0
    assert r.ranges("ports") == [(21000, 24005), (30000, 34000)]
    assert r.summary()["ports"] == "[21000-24005, 30000-34000]"


def test_parse_default_role() -> None:
    r = P("cpus:4;mem(*):10", default_role="dev")
    assert r.reserved("dev").scalar("cpus") == 4.0
    assert r.unreserved().scalar("mem") == 10.0


def test_parse_json_form() -> None:
    text = json.dumps(
        [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 24}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 21000, "end": 24000}]},
            },
            {"name": "bugs", "type": "SET", "set": {"item": ["a", "b"]}, "role": "debug_role"},
        ]
    )
    r = P(text, default_role="x")
    assert r.reserved("x").scalar("cpus") == 24.0
    assert r.reserved("debug_role").set_items("bugs") == {"a", "b"}


def test_zero_scalars_are_dropped() -> None:
    assert not P("cpus:0")
    assert P("cpus:0;mem:1").names() == {"mem"}


def test_fixed_point() -> None:
    assert P("cpus:0.1") + P("cpus:0.2") == P("cpus:0.3")
    assert P("cpus:0.0004") == Resources.empty()
    assert P("cpus:1.2346").scalar("cpus") == 1.235
    assert P("cpus:0.0005").scalar("cpus") == 0.001


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus:abc", "Bad value for resource 'cpus': 'abc'"),
        ("cpus=4", "Bad resource token 'cpus=4': expected name:value"),
        ("cpus:", "Bad resource token 'cpus:': expected name:value"),
        ("cpus:1:2", "Bad resource token 'cpus:1:2'"),
        ("cpus:-1", "Bad value for resource 'cpus': '-1' (negative)"),
        ("foo:-0.5", "Bad value for resource 'foo'"),
        ("cpus:nan", "Bad value for resource 'cpus': 'nan'"),
        ("cpus:inf", "Bad value for resource 'cpus': 'inf'"),
        ("gpus:1.5", "Bad value for resource 'gpus'"),
        ("ports:10", "Bad value for resource 'ports'"),
        ("cpus:[1-2]", "Bad value for resource 'cpus'"),
        ("ports:[5-1]", "Bad value for resource 'ports'"),
        ("ports:[1-2", "Bad value for resource 'ports'"),
        ("ports:[a-b]", "Bad value for resource 'ports'"),
        ("bugs:{a,b", "Bad value for resource 'bugs'"),
        ("cpus(:1", "Bad resource token 'cpus(:1'"),
        ("cpus():1", "Bad resource token 'cpus():1'"),
        ("cpus(a b):1", "Invalid role 'a b'"),
        ("cpus(-a):1", "Invalid role '-a'"),
        (":4", "Bad resource token ':4'"),
        ("[{", "Failed to parse resources JSON"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ResourcesError) as exc:
        P(text)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert isinstance(exc.value, ValidationError)


@pytest.mark.parametrize(
    "item",
    [
        {"type": "SCALAR", "scalar": {"value": 1}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": "x"}},
        {"name": "cpus", "type": "SCALAR"},
        {"name": "cpus", "type": "TEXT", "text": {"value": "x"}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 5, "end": 1}]}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": -1, "end": 1}]}},
        {"name": "bugs", "type": "SET", "set": {"item": [1]}},
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"role": "*"}]},
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 1},
            "reservations": [{"type": "STATIC", "role": "a"}, {"type": "DYNAMIC", "role": "b"}],
        },
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "a/../b"},
    ],
)
def test_from_json_errors(item: dict[str, Any]) -> None:
    with pytest.raises(ResourcesError):
        Resources.from_json([item])


def test_from_json_forms() -> None:
    post = Resources.from_json(
        [
            {
                "name": "disk",
                "type": "SCALAR",
                "scalar": {"value": 64},
                "reservations": [{"type": "DYNAMIC", "role": "db", "principal": "ops"}],
                "disk": {
                    "persistence": {"id": "vol-1", "principal": "ops"},
                    "volume": {"mode": "RW", "container_path": "data"},
                },
            }
        ]
    )
    pre = Resources.from_json(
        [
            {
                "name": "disk",
                "type": "SCALAR",
                "scalar": {"value": 64},
                "role": "db",
                "reservation": {"principal": "ops"},
                "disk": {
                    "volume": {"container_path": "data", "mode": "RW"},
                    "persistence": {"id": "vol-1", "principal": "ops"},
                },
            }
        ]
    )
    assert post == pre
    assert post.persistent_volumes() == post
    assert post.to_json_pre_refinement() == [
        {
            "name": "disk",
            "type": "SCALAR",
            "scalar": {"value": 64.0},
            "disk": {
                "persistence": {"id": "vol-1", "principal": "ops"},
                "volume": {"container_path": "data", "mode": "RW"},
            },
            "role": "db",
            "reservation": {"principal": "ops"},
        }
    ]
    endpoint = post.to_json_endpoint()[0]
    assert endpoint["role"] == "db" and endpoint["reservations"][0]["role"] == "db"
    assert Resources.from_json(post.to_json_endpoint()) == post
    unreserved = Resources.from_json(
        [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "*"}]
    )
    assert unreserved == P("cpus:1")
    assert unreserved.to_json_pre_refinement()[0]["role"] == "*"
    assert "role" not in unreserved.to_json()[0]


def test_from_json_extras() -> None:
    item = {
        "name": "cpus",
        "type": "SCALAR",
        "scalar": {"value": 2},
        "revocable": {},
        "allocation_info": {"role": "web"},
        "reservations": [
            {"type": "STATIC", "role": "a"},
            {
                "type": "DYNAMIC",
                "role": "a/b",
                "principal": "p",
                "labels": {"labels": [{"key": "k", "value": "v"}]},
            },
        ],
    }
    r = Resources.from_json([item])
    assert r.to_json() == [
        {
            "name": "cpus",
            "type": "SCALAR",
            "scalar": {"value": 2.0},
            "allocation_info": {"role": "web"},
            "revocable": {},
            "reservations": [
                {"type": "STATIC", "role": "a"},
                {
                    "type": "DYNAMIC",
                    "role": "a/b",
                    "principal": "p",
                    "labels": {"labels": [{"key": "k", "value": "v"}]},
                },
            ],
        }
    ]
    assert r.revocable() == r and not r.non_revocable()
    assert r.reserved("a/b") == r and not r.reserved("a")
    assert r.allocatable_to("a/b/c") == r and not r.allocatable_to("a")
    assert r.pop_reservation().reserved("a") == r.pop_reservation()
    assert (
        r.pop_reservation().push_reservation(
            {
                "type": "DYNAMIC",
                "role": "a/b",
                "principal": "p",
                "labels": {"labels": [{"key": "k", "value": "v"}]},
            }
        )
        == r
    )
    assert r.to_unreserved().unreserved() == r.to_unreserved()
    assert r.allocations() == {"web": r}
    assert r.unallocated().allocations() == {}
    with pytest.raises(ResourcesError):
        P("cpus:1").pop_reservation()
    with pytest.raises(ResourcesError):
        P("cpus(a):1").push_reservation(Reservation("DYNAMIC", "b"))


def test_shared_resources_count_copies() -> None:
    vol = {
        "name": "disk",
        "type": "SCALAR",
        "scalar": {"value": 5},
        "shared": {},
        "reservations": [{"type": "DYNAMIC", "role": "r", "principal": "p"}],
        "disk": {"persistence": {"id": "v"}, "volume": {"mode": "RW", "container_path": "d"}},
    }
    one = Resources.from_json([vol])
    two = one + one
    assert two.contains(one) and not one.contains(two)
    assert two - one == one
    assert len(two.to_json()) == 2
    assert Resources.from_json(two.to_json()) == two
    assert two.scalar("disk") == 5.0
    assert one.shared() == one and not one.non_shared()


# --------------------------------------------------------------------------- arithmetic


def test_arithmetic_basics() -> None:
    total = P("cpus:4;mem:1024;ports:[31000-32000]")
    task = P("cpus:1.5;mem:100;ports:[31005-31005]")
    left = total - task
    assert left.scalar("cpus") == 2.5
    assert left.ranges("ports") == [(31000, 31004), (31006, 32000)]
    assert left + task == total
    assert total.contains(task) and not task.contains(total)
    assert not (task - task)
    assert bool(total) and not Resources.empty()
    with pytest.raises(ResourcesError) as exc:
        task - total
    assert "not contained" in str(exc.value)
    with pytest.raises(ValueError):
        P("cpus:1") - P("gpus:1")
    assert task.minus(total) == Resources.empty()
    assert total.minus(P("gpus:1;cpus:1")) == P("cpus:3;mem:1024;ports:[31000-32000]")


def test_reservation_keeps_entries_apart() -> None:
    r = P("cpus:4") + P("cpus(a):2")
    assert len(r) == 2
    assert r.scalar("cpus") == 6.0
    assert not r.contains(P("cpus(b):1"))
    assert r.reservations() == {"a": P("cpus(a):2")}
    assert r.allocatable_to("a") == r
    assert r.allocatable_to("b") == P("cpus:4")


def test_allocate() -> None:
    r = P("cpus:4;mem:8")
    a = r.allocate("web")
    assert a != r
    assert all(d["allocation_info"] == {"role": "web"} for d in a.to_json())
    assert a.unallocated() == r
    assert a.quantities() == r.quantities()
    # allocating two differently-allocated halves to the same role merges them
    mixed = P("cpus:1").allocate("x") + P("cpus:2").allocate("y")
    assert mixed.allocate("z") == P("cpus:3").allocate("z")
    assert not P("cpus:1").allocate("x").contains(P("cpus:1"))


def test_quantities_and_summary() -> None:
    r = P("cpus:2;mem:512;ports:[1-10,20-29];bugs:{a,b,c};disk(r):5;cpus(r):1")
    assert r.quantities() == {"cpus": 3.0, "mem": 512.0, "ports": 20.0, "disk": 5.0}
    s = r.summary()
    assert s == {
        "cpus": 3.0,
        "gpus": 0.0,
        "mem": 512.0,
        "disk": 5.0,
        "ports": "[1-10, 20-29]",
        "bugs": "{a, b, c}",
    }
    assert Resources.empty().summary() == {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0}
    q = r.quantities()
    q["cpus"] = 99
    assert r.quantities()["cpus"] == 3.0


def test_hash_and_iteration() -> None:
    a, b = P("cpus:1;mem:2"), P("mem:2;cpus:1")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    entries = list(P("cpus(r):1.5;ports:[1-2]"))
    assert entries[0].name == "cpus" and entries[0].value == 1.5 and entries[0].role == "r"
    assert entries[1].value == ((1, 2),) and entries[1].role == "*"
    assert str(P("cpus:1.5;disk(r):2;ports:[1-2]")) == "cpus:1.5;disk(r):2;ports:[1-2]"
    assert a != "cpus:1"


def test_msgspec_struct_input() -> None:
    import msgspec

    class Scalar(msgspec.Struct):
        value: float

    class Res(msgspec.Struct, omit_defaults=True):
        name: str
        type: str
        scalar: Scalar | None = None

    assert Resources.from_json([Res(name="cpus", type="SCALAR", scalar=Scalar(2))]) == P("cpus:2")


def test_validate_role() -> None:
    for good in ["*", "a", "a/b", "dev-team", "a.b"]:
        validate_role(good)
    for bad in ["", ".", "..", "-a", "a/", "/a", "a//b", "a b", "a/*", "a/./b", "x\ty"]:
        with pytest.raises(ResourcesError):
            validate_role(bad)


# --------------------------------------------------------------------------- detection


def test_detect_resources(tmp_path: Path) -> None:
    d = detect_resources(str(tmp_path))
    assert d.scalar("cpus") >= 1
    assert d.scalar("mem") > 0
    assert d.scalar("disk") > 0
    assert d.ranges("ports") == [(31000, 32000)]
    assert not d.reserved()
    missing = detect_resources(str(tmp_path / "not" / "there"))
    assert missing.scalar("disk") == d.scalar("disk")
    assert detect_resources(str(tmp_path), default_role="r").unreserved() == Resources.empty()


def test_merge_with_detected() -> None:
    detected = P("cpus:8;mem:4096;disk:1000;ports:[31000-32000]")
    assert merge_with_detected(None, detected) == detected
    merged = merge_with_detected(P("cpus:2;ports:[1-5]"), detected)
    assert merged == P("cpus:2;ports:[1-5];mem:4096;disk:1000")
    # cpus:0 leaves no entry, but the name was given, so it is not detected
    merged = merge_with_detected("cpus:0;mem(r):10", detected)
    assert merged == P("mem(r):10;disk:1000;ports:[31000-32000]")
    merged = merge_with_detected('[{"name":"mem","type":"SCALAR","scalar":{"value":0}}]', detected)
    assert merged.names() == {"cpus", "disk", "ports"}


# --------------------------------------------------------------------------- properties

NAMES = {"cpus": "SCALAR", "mem": "SCALAR", "ports": "RANGES", "bugs": "SET"}

role_st = st.sampled_from(["*", "a", "b", "a/x"])


@st.composite
def resource_item(draw: st.DrawFn, simple: bool = False, side: int = 0) -> dict[str, Any]:
    """``side`` 1 and 2 draw ranges and set items from disjoint pools, so that
    adding them is invertible (overlapping ranges/sets merge, as in Mesos)."""
    name = draw(st.sampled_from(sorted(NAMES)))
    kind = NAMES[name]
    item: dict[str, Any] = {"name": name, "type": kind}
    if kind == "SCALAR":
        item["scalar"] = {"value": draw(st.integers(0, 100_000)) / 1000}
    elif kind == "RANGES":
        base = 300 * side
        pairs = draw(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 20)), max_size=4))
        item["ranges"] = {"range": [{"begin": base + b, "end": base + b + n} for b, n in pairs]}
    else:
        pool = {0: "abcdef", 1: "abc", 2: "def"}[side]
        item["set"] = {"item": draw(st.lists(st.sampled_from(pool), max_size=4))}
    role = draw(role_st)
    if role != "*":
        rtype = "STATIC" if simple else draw(st.sampled_from(["STATIC", "DYNAMIC"]))
        if role == "a/x" and not simple:
            item["reservations"] = [{"type": "STATIC", "role": "a"}, {"type": rtype, "role": role}]
        else:
            item["reservations"] = [{"type": rtype, "role": role}]
    if not simple:
        if draw(st.booleans()):
            item["revocable"] = {}
        alloc = draw(st.sampled_from([None, "web", "db"]))
        if alloc:
            item["allocation_info"] = {"role": alloc}
    return item


resources_st = st.lists(resource_item(), max_size=6).map(Resources.from_json)
simple_st = st.lists(resource_item(simple=True), max_size=6).map(Resources.from_json)
left_st = st.lists(resource_item(side=1), max_size=6).map(Resources.from_json)
right_st = st.lists(resource_item(side=2), max_size=6).map(Resources.from_json)


@given(left_st, right_st)
def test_add_then_subtract(a: Resources, b: Resources) -> None:
    s = a + b
    assert s - b == a
    assert s - a == b
    assert s.contains(a) and s.contains(b)
    assert s == b + a
    assert s.minus(b) == a


@given(resources_st, resources_st, resources_st)
def test_add_associative(a: Resources, b: Resources, c: Resources) -> None:
    assert (a + b) + c == a + (b + c)


@given(resources_st, resources_st)
def test_contains_iff_subtractable(a: Resources, b: Resources) -> None:
    if a.contains(b):
        assert (a - b) + b == a
    else:
        with pytest.raises(ResourcesError):
            a - b
    left = a.minus(b)
    assert a.contains(left)


@given(resources_st, resources_st)
def test_quantities_add(a: Resources, b: Resources) -> None:
    qa, qb, qs = a.quantities(), b.quantities(), (a + b).quantities()
    for name in set(qa) | set(qb):
        if name == "ports":
            continue  # overlapping ranges are counted once
        assert qs.get(name, 0.0) == pytest.approx(qa.get(name, 0.0) + qb.get(name, 0.0))


@given(resources_st)
def test_json_round_trip(a: Resources) -> None:
    assert Resources.from_json(a.to_json()) == a
    assert Resources.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert Resources.from_json(a.to_json_endpoint()) == a
    assert Resources.parse(json.dumps(a.to_json())) == a
    assert hash(Resources.from_json(a.to_json())) == hash(a)


@given(simple_st)
def test_text_round_trip(a: Resources) -> None:
    assert Resources.parse(str(a)) == a
    assert Resources.from_json(a.to_json_pre_refinement()) == a


@given(resources_st, st.sampled_from(["web", "db"]))
def test_allocate_unallocate(a: Resources, role: str) -> None:
    allocated = a.allocate(role)
    assert set(allocated.allocations()) <= {role}
    assert allocated.unallocated() == a.unallocated()
    quantities = allocated.quantities()
    for name, amount in a.quantities().items():
        if name != "ports":  # ports allocated twice to one role merge
            assert quantities[name] == pytest.approx(amount)


@given(resources_st)
def test_partition_by_reservation(a: Resources) -> None:
    parts = a.unreserved()
    for r in a.reservations().values():
        parts = parts + r
    assert parts == a
    assert a.reserved() + a.unreserved() == a


# ranges against Python sets
ranges_st = st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=6).map(
    lambda ps: ranges_coalesce((b, b + n) for b, n in ps)
)


def expand(r: tuple[tuple[int, int], ...]) -> set[int]:
    return {x for b, e in r for x in range(b, e + 1)}


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=8))
def test_ranges_coalescing(pairs: list[tuple[int, int]]) -> None:
    r = ranges_coalesce((b, b + n) for b, n in pairs)
    assert expand(r) == {x for b, n in pairs for x in range(b, b + n + 1)}
    for (_, e1), (b2, _) in itertools.pairwise(r):
        assert b2 > e1 + 1  # disjoint and not adjacent
    assert all(b <= e for b, e in r)


@settings(max_examples=300)
@given(ranges_st, ranges_st)
def test_ranges_ops_match_sets(
    a: tuple[tuple[int, int], ...], b: tuple[tuple[int, int], ...]
) -> None:
    assert expand(ranges_union(a, b)) == expand(a) | expand(b)
    diff = ranges_subtract(a, b)
    assert expand(diff) == expand(a) - expand(b)
    assert diff == ranges_coalesce(diff)
    assert ranges_contains(a, b) == (expand(b) <= expand(a))
