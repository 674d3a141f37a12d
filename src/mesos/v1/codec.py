"""JSON codec for the v1 wire types, lenient on input the way Mesos is.

* ``decode``/``decode_obj`` turn JSON into typed Structs. Unknown keys are ignored and
  numeric strings are accepted for numbers (``strict=False``). Like Mesos, a ``null``
  counts as "unset", an unknown name in an enum field is dropped (an error only if the
  field is required), a legacy ``slave_id`` stands in for a missing ``agent_id``, and a
  ``uuid`` given as ``{"value": b64}`` is unwrapped. Anything else that does not fit
  raises :class:`mesos.errors.ValidationError` whose message names the JSON path.
* ``encode`` gives compact, ASCII-only JSON (non-ASCII escaped as ``\\uXXXX``), so the
  output never holds a raw newline and its length in bytes equals its length in
  characters (what RecordIO readers like mesoshttp assume).
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from mesos.errors import ValidationError
from mesos.v1 import recordio

__all__ = [
    "decode",
    "decode_obj",
    "encode",
    "encode_record",
    "encode_str",
    "to_builtins",
]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_raw_decoder = msgspec.json.Decoder()

_NON_ASCII = re.compile("[^\x00-\x7f]")

# At most this many lenient repairs per document before giving up.
_MAX_FIXUPS = 64

_AT = re.compile(r" - at `(\$[^`]*)`$")
_PATH_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def encode(obj: Any) -> bytes:
    """Compact ASCII-only JSON for a Struct, dict, list or scalar."""
    data = _encoder.encode(obj)
    if data.isascii():
        return data
    # Non-ASCII code points can only occur inside JSON strings, where a \\uXXXX
    # escape means the same thing.
    return _NON_ASCII.sub(_escape_char, data.decode("utf-8")).encode("ascii")


def encode_str(obj: Any) -> str:
    """``encode`` as ``str``."""
    return encode(obj).decode("ascii")


def encode_record(obj: Any) -> bytes:
    """``obj`` as one RecordIO record of compact JSON (a stream event)."""
    return recordio.encode(encode(obj))


def to_builtins(obj: Any) -> Any:
    """Structs to dicts/lists/str/numbers, bytes as base64 (JSON-shaped)."""
    return msgspec.to_builtins(obj)


def decode(data: bytes | str, type_: type[T]) -> T:
    """Parse JSON ``data`` into ``type_``; ValidationError names the bad field."""
    try:
        return msgspec.json.decode(data, type=type_, strict=False)
    except msgspec.ValidationError as exc:
        first = exc
    except msgspec.DecodeError as exc:
        raise ValidationError(f"Malformed JSON: {exc}") from None
    # Slow path: retry with the Mesos leniencies applied to the parsed document.
    return _lenient(_raw_decoder.decode(data), type_, first)


def decode_obj(obj: Any, type_: type[T]) -> T:
    """Like ``decode`` for an already parsed JSON value (dicts/lists/scalars)."""
    try:
        return msgspec.convert(obj, type_, strict=False)
    except msgspec.ValidationError as exc:
        first = exc
    return _lenient(_copy_json(obj), type_, first)


def _copy_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _copy_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_json(v) for v in obj]
    return obj


def _strip_nulls(obj: Any) -> Any:
    """Drop ``null`` members and elements in place: Mesos reads null as unset."""
    if isinstance(obj, dict):
        for key in [k for k, v in obj.items() if v is None]:
            del obj[key]
        for value in obj.values():
            _strip_nulls(value)
    elif isinstance(obj, list):
        if any(v is None for v in obj):
            obj[:] = [v for v in obj if v is not None]
        for value in obj:
            _strip_nulls(value)
    return obj


def _parse_path(path: str) -> list[str | int] | None:
    """``$.a.b[2].c`` -> ``["a", "b", 2, "c"]``; None if not understood."""
    if not path.startswith("$"):
        return None
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            return None
        steps.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return steps


def _locate(root: Any, steps: list[str | int]) -> tuple[Any, str | int] | None:
    """The container holding the value at ``steps`` and its key/index."""
    if not steps:
        return None
    node = root
    for step in steps[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    last = steps[-1]
    if isinstance(node, dict) and isinstance(last, str) and last in node:
        return node, last
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        return node, last
    return None


def _resolve(root: Any, steps: list[str | int]) -> Any:
    node = root
    for step in steps:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _fix(root: Any, message: str) -> bool:
    """Apply one leniency for the error ``message``; False if none applies."""
    m = _AT.search(message)
    steps = _parse_path(m.group(1)) if m else []
    if steps is None:
        return False
    head = message[: m.start()] if m else message
    if head.startswith("Invalid enum value"):
        # Unknown enum name: drop it (a required field then reports as missing).
        where = _locate(root, steps)
        if where is None:
            return False
        container, key = where
        del container[key]
        return True
    if head == "Object missing required field `agent_id`":
        node = _resolve(root, steps)
        if isinstance(node, dict) and isinstance(node.get("slave_id"), dict):
            node["agent_id"] = node.pop("slave_id")
            return True
        return False
    if head.endswith("got `object`") and steps and steps[-1] == "uuid":
        where = _locate(root, steps)
        if where is None:
            return False
        container, key = where
        value = container[key]
        if isinstance(value, dict) and isinstance(value.get("value"), str):
            container[key] = value["value"]
            return True
    return False


def _lenient(obj: Any, type_: type[T], first: msgspec.ValidationError) -> T:
    _strip_nulls(obj)
    error: msgspec.ValidationError = first
    for _ in range(_MAX_FIXUPS):
        try:
            return msgspec.convert(obj, type_, strict=False)
        except msgspec.ValidationError as exc:
            error = exc
        if not _fix(obj, str(error)):
            break
    raise ValidationError(str(error)) from None


def prepare_decoders() -> int:
    """Build msgspec's decoding information for every wire type now, on this thread.

    msgspec fills it in lazily on a type's first decode; two threads doing that for the
    same type at once crashed a daemon (SIGSEGV inside msgspec). Daemons that decode in
    worker threads (checkpoint recovery, the registry, ZooKeeper callbacks) call this
    first, at start-up (about 20 ms). Returns how many types were prepared.
    """
    import inspect

    from mesos.v1 import executor, internal, mesos, scheduler

    count = 0
    for module in (mesos, scheduler, executor, internal):
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, msgspec.Struct)
                    and obj.__module__ == module.__name__):
                msgspec.json.Decoder(obj)
                count += 1
    return count
