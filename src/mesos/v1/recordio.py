"""RecordIO framing as Mesos uses it on its streaming responses.

A record is ``<size>\\n<data>``: ``size`` is the ASCII decimal number of **bytes** in
``data``; records follow each other with no separator. HTTP chunk boundaries are
unrelated to record boundaries, so :class:`Decoder` accepts arbitrary splits.
"""

from __future__ import annotations

__all__ = ["MAX_SIZE_DIGITS", "Decoder", "RecordIOError", "encode"]

# A uint64 has at most 20 decimal digits; a longer size line is garbage.
MAX_SIZE_DIGITS = 20


class RecordIOError(ValueError):
    """The byte stream is not valid RecordIO (e.g. a non-digit size line)."""


def encode(record: bytes) -> bytes:
    """Frame one record: ``b"<len>\\n" + record`` (length counted in bytes)."""
    return b"%d\n" % len(record) + record


class Decoder:
    """Incremental RecordIO decoder.

    ``feed`` takes the next piece of the stream and returns every record completed
    by it (possibly none). After a :class:`RecordIOError` the decoder is failed and
    every later ``feed`` raises again, as Mesos' decoder does.
    """

    __slots__ = ("_buf", "_failed", "_size")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._size: int | None = None  # length of the record being read, once known
        self._failed: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a record."""
        return len(self._buf)

    @property
    def in_record(self) -> bool:
        """True while a record (or its size line) has been started but not finished."""
        return self._size is not None or bool(self._buf)

    def _fail(self, why: str) -> RecordIOError:
        self._failed = why
        return RecordIOError(why)

    def feed(self, data: bytes) -> list[bytes]:
        if self._failed is not None:
            raise RecordIOError(self._failed)
        buf = self._buf
        buf += data
        records: list[bytes] = []
        pos = 0
        end = len(buf)
        while True:
            if self._size is None:
                nl = buf.find(b"\n", pos)
                if nl < 0:
                    tail = bytes(buf[pos:])
                    if tail and (not tail.isdigit() or len(tail) > MAX_SIZE_DIGITS):
                        raise self._fail(f"Invalid RecordIO size line: {tail[:32]!r}")
                    break
                line = bytes(buf[pos:nl])
                if not line or not line.isdigit() or len(line) > MAX_SIZE_DIGITS:
                    raise self._fail(f"Invalid RecordIO size line: {line[:32]!r}")
                self._size = int(line)
                pos = nl + 1
            size = self._size
            if end - pos < size:
                break
            records.append(bytes(buf[pos : pos + size]))
            pos += size
            self._size = None
        if pos:
            del buf[:pos]
        return records
