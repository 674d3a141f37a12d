from __future__ import annotations

import pytest

from mesos import attributes
from mesos.attributes import AttributesError
from mesos.errors import ValidationError


def test_parse_reference_example() -> None:
    parsed = attributes.parse("rack:abc;zone:west;os:centos5;level:10;keys:[1000-1500]")
    assert parsed == [
        {"name": "rack", "type": "TEXT", "text": {"value": "abc"}},
        {"name": "zone", "type": "TEXT", "text": {"value": "west"}},
        {"name": "os", "type": "TEXT", "text": {"value": "centos5"}},
        {"name": "level", "type": "SCALAR", "scalar": {"value": 10.0}},
        {"name": "keys", "type": "RANGES", "ranges": {"range": [{"begin": 1000, "end": 1500}]}},
    ]
    assert attributes.summary(parsed) == {
        "rack": "abc",
        "zone": "west",
        "os": "centos5",
        "level": 10.0,
        "keys": "[1000-1500]",
    }


def test_split_on_first_colon_newlines_and_spaces() -> None:
    parsed = attributes.parse("url:http://host:80\n  rack : r 1 ;;ports:[1-2, 4-5,3-3]\n")
    assert parsed == [
        {"name": "url", "type": "TEXT", "text": {"value": "http://host:80"}},
        {"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
        {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 5}]}},
    ]


def test_empty() -> None:
    assert attributes.parse("") == []
    assert attributes.parse(None) == []
    assert attributes.summary([]) == {}


def test_scalar_forms() -> None:
    parsed = attributes.parse("a:1.5;b:-2;c:1e2")
    assert [p["scalar"]["value"] for p in parsed] == [1.5, -2.0, 100.0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rack", "Bad attribute token 'rack': expected name:value"),
        (":abc", "Bad attribute token ':abc': empty name"),
        ("rack:", "Bad attribute token 'rack:': empty value"),
        ("ok:1;bugs:{a,b}", "Bad value for attribute 'bugs'"),
        ("keys:[1-", "Bad value for attribute 'keys'"),
        ("keys:[5-1]", "Bad value for attribute 'keys'"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(AttributesError) as exc:
        attributes.parse(text)
    assert message in str(exc.value)
    assert isinstance(exc.value, ValidationError)


def test_summary_of_json_attributes() -> None:
    attrs = [
        {"name": "s", "type": "SET", "set": {"item": ["b", "a"]}},
        {
            "name": "r",
            "type": "RANGES",
            "ranges": {"range": [{"begin": 1, "end": 2}, {"begin": 5, "end": 6}]},
        },
        {"name": "n", "type": "SCALAR", "scalar": {"value": 3}},
        {"name": "t", "type": "TEXT", "text": {"value": "x"}},
    ]
    assert attributes.summary(attrs) == {"s": "{a, b}", "r": "[1-2, 5-6]", "n": 3.0, "t": "x"}
