"""RecordIO framing: encoder format and the incremental decoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos.v1.recordio import Decoder, RecordIOError, encode


def test_encode_counts_bytes_not_characters() -> None:
    data = '{"m":"é"}'.encode()
    assert encode(data) == b"10\n" + data
    assert encode(b"") == b"0\n"


def test_back_to_back_records() -> None:
    hb = b'{"type":"HEARTBEAT"}'
    stream = encode(hb) + encode(hb)
    assert stream == b'20\n{"type":"HEARTBEAT"}20\n{"type":"HEARTBEAT"}'
    assert Decoder().feed(stream) == [hb, hb]


def test_byte_by_byte_and_empty_record() -> None:
    stream = encode(b"abc") + encode(b"") + encode(b"\n\n")
    dec = Decoder()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += dec.feed(stream[i : i + 1])
    assert out == [b"abc", b"", b"\n\n"]
    assert not dec.in_record
    assert dec.buffered == 0


def test_partial_record_is_held() -> None:
    dec = Decoder()
    assert dec.feed(b"5\nab") == []
    assert dec.in_record
    assert dec.feed(b"cde3") == [b"abcde"]
    assert dec.feed(b"\nxyz") == [b"xyz"]


@pytest.mark.parametrize("bad", [b"x\n", b"12a", b"-1\n", b" 5\n", b"\n", b"5\r\nabcde"])
def test_non_digit_size_line_fails(bad: bytes) -> None:
    dec = Decoder()
    with pytest.raises(RecordIOError):
        dec.feed(bad)
    # Once failed, stays failed.
    with pytest.raises(RecordIOError):
        dec.feed(b"1\na")


def test_error_after_good_record() -> None:
    dec = Decoder()
    with pytest.raises(RecordIOError):
        dec.feed(encode(b"ok") + b"zz\n")


def test_too_long_size_line_fails() -> None:
    with pytest.raises(RecordIOError):
        Decoder().feed(b"1" * 21)


def test_recordio_error_is_value_error() -> None:
    assert issubclass(RecordIOError, ValueError)


@given(
    records=st.lists(st.binary(max_size=300), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_round_trip_any_chunking(records: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode(r) for r in records)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    dec = Decoder()
    out: list[bytes] = []
    for chunk in chunks:
        out += dec.feed(chunk)
    assert out == records
    assert dec.buffered == 0
