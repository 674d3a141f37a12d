"""Declare-once command-line flags in the Mesos manner.

A daemon lists its flags once::

    FLAGS = [
        Flag("port", int, 5050, "Port to listen on."),
        Flag("work_dir", str, None, "Where to keep state.", required=True),
        Flag("allocation_interval", Duration, "1secs", "Time between allocations."),
    ]
    flags = parse_flags("mesos-master", FLAGS, sys.argv[1:], os.environ)
    flags.port, flags.allocation_interval   # 5050, 1.0

Rules (as in Mesos' stout flags):

* ``--name=value`` and ``--name value``; booleans also as ``--name`` / ``--no-name``
  and ``--name=true|false``.
* ``MESOS_<NAME>`` in the environment supplies a value the command line did not give.
* A value ``file:///path`` is replaced by the contents of that file (the generic
  loader), unless the flag was declared with ``load_file=False``.
* ``--help`` prints every flag with its default and help text and exits 0.
* An unknown flag, a bad value or a missing required flag prints one line
  ``<prog>: <message>`` on stderr and raises ``SystemExit(1)``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

__all__ = [
    "JSON",
    "Bytes",
    "Duration",
    "Flag",
    "FlagType",
    "Flags",
    "exit_with_error",
    "format_bytes",
    "format_duration",
    "parse_bool",
    "parse_bytes",
    "parse_duration",
    "parse_flags",
    "redact_credentials",
]


# --------------------------------------------------------------------------- durations

_NS_PER_UNIT: dict[str, int] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "secs": 1_000_000_000,
    "mins": 60 * 1_000_000_000,
    "hrs": 3600 * 1_000_000_000,
    "days": 86400 * 1_000_000_000,
    "weeks": 7 * 86400 * 1_000_000_000,
}
# Largest first; used by the printer.
_UNITS_DESC: list[tuple[str, int]] = sorted(_NS_PER_UNIT.items(), key=lambda kv: -kv[1])

_DURATION_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-z]+)\s*$")


def parse_duration(text: str) -> float:
    """Parse a Mesos duration (``200ms``, ``1secs``, ``0.5mins``, ``2weeks``) to seconds.

    Raises ``ValueError`` naming the text when it has no number, no unit or an
    unknown unit.
    """
    m = _DURATION_RE.match(text)
    if m is None:
        raise ValueError(f"Invalid duration '{text}'")
    number, unit = m.groups()
    scale = _NS_PER_UNIT.get(unit)
    if scale is None:
        raise ValueError(f"Unknown duration unit '{unit}' in '{text}'")
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"Invalid duration '{text}'")
    return value * scale / 1e9


def _fmt_number(value: float) -> str:
    # 15 significant digits, like stout's stream precision (digits10).
    return f"{value:.15g}"


def format_duration(seconds: float) -> str:
    """Print seconds the way Mesos prints a Duration.

    The bucket is the largest unit not bigger than the duration; if the value is
    not whole in that unit but is whole in the next smaller unit, the smaller unit
    is used (``90secs`` not ``1.5mins``, ``10days`` not ``1.43weeks``); otherwise
    the bucket unit with a fraction.
    """
    ns = round(seconds * 1e9)
    sign = ""
    if ns < 0:
        sign, ns = "-", -ns
    if ns < 1_000:
        return f"{sign}{ns}ns"
    for i, (unit, scale) in enumerate(_UNITS_DESC):
        if ns >= scale:
            if ns % scale == 0:
                return f"{sign}{ns // scale}{unit}"
            lower_unit, lower_scale = _UNITS_DESC[i + 1]
            if ns % lower_scale == 0:
                return f"{sign}{ns // lower_scale}{lower_unit}"
            return f"{sign}{_fmt_number(ns / scale)}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- bytes

_BYTES_PER_UNIT: dict[str, int] = {
    "B": 1,
    "KB": 1 << 10,
    "MB": 1 << 20,
    "GB": 1 << 30,
    "TB": 1 << 40,
}
_BYTES_RE = re.compile(r"^\s*(\d+\.?\d*|\.\d+)\s*([A-Za-z]+)\s*$")


def parse_bytes(text: str) -> int:
    """Parse a Mesos byte size (``512MB``, ``1GB``, ``100B``) to a number of bytes."""
    m = _BYTES_RE.match(text)
    if m is None:
        raise ValueError(f"Invalid bytes '{text}'")
    number, unit = m.groups()
    scale = _BYTES_PER_UNIT.get(unit.upper())
    if scale is None:
        raise ValueError(f"Unknown bytes unit '{unit}' in '{text}'")
    return int(float(number) * scale)


def format_bytes(count: int) -> str:
    """Print a byte count with the largest unit that keeps it whole (``1GB``, ``1536KB``)."""
    for unit, scale in sorted(_BYTES_PER_UNIT.items(), key=lambda kv: -kv[1]):
        if count >= scale and count % scale == 0:
            return f"{count // scale}{unit}"
    return f"{count}B"


# --------------------------------------------------------------------------- types


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``), case-insensitive."""
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"Expecting a boolean (e.g., true or false), got '{text}'")


@dataclass(frozen=True)
class FlagType:
    """A flag value type: how to parse the text and how to print the value back."""

    name: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str]


def _format_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


Duration = FlagType("duration", parse_duration, format_duration)
Bytes = FlagType("bytes", parse_bytes, format_bytes)
JSON = FlagType("JSON", json.loads, lambda v: json.dumps(v, separators=(",", ":")))

_BUILTIN_TYPES: dict[Any, FlagType] = {
    bool: FlagType("bool", parse_bool, _format_scalar),
    int: FlagType("int", int, _format_scalar),
    float: FlagType("float", float, _format_scalar),
    str: FlagType("string", str, str),
}


def _as_flag_type(type_: FlagType | Callable[[str], Any]) -> FlagType:
    if isinstance(type_, FlagType):
        return type_
    builtin = _BUILTIN_TYPES.get(type_)
    if builtin is not None:
        return builtin
    return FlagType(getattr(type_, "__name__", "value"), type_, _format_scalar)


# --------------------------------------------------------------------------- redaction

REDACTED = "********"

# ``scheme://user:password@``: the userinfo of a URL that carries a password (zk URLs,
# Mesos' ``--zk`` and ``--master``). The ZooKeeper URL parser ends the password at the
# last ``@`` before the first ``/``, but a password may hold ``@``, ``:`` and ``/``, so
# when in doubt more is hidden, never less: the password runs to the last ``@`` before
# the next whitespace or the next ``scheme://`` (several URLs in one value are each
# redacted), else, when there is none, to the next ``@`` at all.
_SCHEME = r"[A-Za-z][A-Za-z0-9+.-]*://"
_URL_PASSWORD_RE = re.compile(
    rf"({_SCHEME}[^:/@\s]*):(?:(?:(?!{_SCHEME})\S)*@|[^@\s]*@)")


def redact_credentials(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@...`` replaced by
    ``********`` (``zk://user:********@host:2181/mesos``), the way Mesos shows a
    ZooKeeper URL: who connects stays visible, the secret does not."""
    return _URL_PASSWORD_RE.sub(lambda m: f"{m.group(1)}:{REDACTED}@", text)


# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Flag:
    """One declared flag.

    ``type`` is ``bool``, ``int``, ``float``, ``str``, one of ``Duration``, ``Bytes``,
    ``JSON``, another ``FlagType``, or any callable ``str -> value`` that raises
    ``ValueError`` on bad text. A ``str`` default for a non-string type is parsed with
    that type (``Flag("gc_delay", Duration, "1weeks", ...)``). ``aliases`` are older
    names accepted on the command line and in the environment (``slave_ping_timeout``).
    ``secret`` flags (credentials, secrets) are never shown by ``Flags.as_dict``: the
    ``file://`` path they were loaded from is, else ``********``.
    """

    name: str
    type: FlagType | Callable[[str], Any]
    default: Any
    help: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    load_file: bool = True
    secret: bool = False

    @property
    def kind(self) -> FlagType:
        return _as_flag_type(self.type)

    @property
    def is_bool(self) -> bool:
        return self.type is bool

    def default_value(self) -> Any:
        if isinstance(self.default, str) and self.type is not str:
            return self.kind.parse(self.default)
        return self.default


class Flags:
    """The parsed flags: one attribute per declared flag (``None`` when unset)."""

    def __init__(
        self, declared: Sequence[Flag], values: dict[str, Any], explicit: set[str],
        sources: Mapping[str, str] | None = None,
    ) -> None:
        self.__dict__["_declared"] = {f.name: f for f in declared}
        self.__dict__["_explicit"] = frozenset(explicit)
        # name -> the ``file://`` reference a value was loaded from (shown for secrets).
        self.__dict__["_sources"] = dict(sources or {})
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not declared flags.
        raise AttributeError(f"no flag named '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._declared:
            raise AttributeError(f"no flag named '{name}'")
        self.__dict__[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self._declared

    def __repr__(self) -> str:
        # Through as_dict, so a logged Flags holds no secret either.
        inner = ", ".join(f"{n}={v!r}" for n, v in self.as_dict().items())
        return f"Flags({inner})"

    def is_set(self, name: str) -> bool:
        """Whether ``name`` was given on the command line or in the environment."""
        return name in self._explicit

    def as_dict(self) -> dict[str, str]:
        """``{name: value as text}`` for every flag that has a value: the one rendering
        every output uses (``/flags``, ``/state``, ``GET_FLAGS``), so it is also where
        secrets are kept out. A ``secret`` flag shows only the ``file://`` path it came
        from (else ``********``); in every other value a URL's password is replaced
        (``zk://user:********@host:2181/mesos``)."""
        out: dict[str, str] = {}
        for name, flag in sorted(self._declared.items()):
            value = self.__dict__[name]
            if value is None:
                continue
            if flag.secret:
                out[name] = self._sources.get(name, REDACTED)
                continue
            out[name] = redact_credentials(flag.kind.format(value))
        return out


# --------------------------------------------------------------------------- parsing


class _FlagError(Exception):
    pass


def exit_with_error(prog: str, message: str) -> NoReturn:
    """Print ``<prog>: <message>`` on stderr and exit 1 (for checks after parsing)."""
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(1)


def _load_value(flag: Flag, raw: str) -> Any:
    text = raw
    if flag.load_file and raw.startswith("file://"):
        path = raw[len("file://") :]
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise _FlagError(
                f"Failed to load value for flag '{flag.name}' from '{path}': {exc.strerror or exc}"
            ) from None
        text = text.strip()
    try:
        return flag.kind.parse(text)
    except (ValueError, TypeError) as exc:
        detail = str(exc) or f"'{text}'"
        raise _FlagError(f"Failed to load flag '{flag.name}': {detail}") from None


def _index(flags: Iterable[Flag]) -> dict[str, Flag]:
    by_name: dict[str, Flag] = {}
    for flag in flags:
        for name in (flag.name, *flag.aliases):
            if name in by_name:
                raise ValueError(f"flag '{name}' declared twice")
            by_name[name] = flag
    return by_name


def _parse_argv(by_name: Mapping[str, Flag], argv: Sequence[str]) -> dict[str, str | bool]:
    """Map canonical flag name -> raw text (or bool for bare/--no- booleans)."""
    given: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise _FlagError(f"Unexpected argument '{arg}'")
        body = arg[2:]
        name, eq, value = body.partition("=")
        negated = False
        flag = by_name.get(name)
        if flag is None and name.startswith("no-"):
            flag = by_name.get(name[3:])
            if flag is not None:
                if not flag.is_bool:
                    raise _FlagError(f"Failed to load non-boolean flag '{flag.name}' via '{arg}'")
                if eq:
                    raise _FlagError(f"Flag '{arg}' does not take a value")
                negated = True
        if flag is None:
            raise _FlagError(f"Failed to load unknown flag '{name}'")
        if flag.name in given:
            raise _FlagError(f"Flag '{flag.name}' given more than once")
        raw: str | bool
        if negated:
            raw = False
        elif eq:
            raw = value
        elif flag.is_bool:
            raw = True
        else:
            if i >= len(argv):
                raise _FlagError(f"Missing value for flag '{flag.name}'")
            raw = argv[i]
            i += 1
        given[flag.name] = raw
    return given


def _from_environ(flags: Sequence[Flag], environ: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for flag in flags:
        for name in (flag.name, *flag.aliases):
            key = "MESOS_" + name.upper()
            if key in environ:
                found[flag.name] = environ[key]
                break
    return found


def _usage(prog: str, flags: Sequence[Flag]) -> str:
    lines = [f"Usage: {prog} [options]", ""]
    for flag in sorted(flags, key=lambda f: f.name):
        head = f"  --[no-]{flag.name}" if flag.is_bool else f"  --{flag.name}=VALUE"
        lines.append(head)
        for part in flag.help.splitlines() or [""]:
            lines.append(f"      {part}".rstrip())
        extra: list[str] = []
        if flag.aliases:
            extra.append("aliases: " + ", ".join(f"--{a}" for a in flag.aliases))
        if flag.required:
            extra.append("required")
        if flag.default is not None:
            default = flag.default
            shown = default if isinstance(default, str) else flag.kind.format(default)
            extra.append(f"default: {shown}")
        extra.append(f"env: MESOS_{flag.name.upper()}")
        lines.append("      (" + "; ".join(extra) + ")")
        lines.append("")
    return "\n".join(lines)


def parse_flags(
    prog: str,
    flags: Sequence[Flag],
    argv: Sequence[str],
    environ: Mapping[str, str] | None = None,
) -> Flags:
    """Parse ``argv`` (without the program name) with ``MESOS_*`` fallbacks.

    Exits (``SystemExit``) on ``--help`` (0) and on any error (1, one line on stderr).
    """
    by_name = _index(flags)
    if "--help" in argv or "-h" in argv:
        print(_usage(prog, flags))
        raise SystemExit(0)
    env = _from_environ(flags, environ if environ is not None else {})
    try:
        given = _parse_argv(by_name, argv)
        values: dict[str, Any] = {}
        explicit: set[str] = set()
        sources: dict[str, str] = {}
        for flag in flags:
            raw: str | bool | None = given.get(flag.name)
            if raw is None:
                raw = env.get(flag.name)
            if raw is None:
                if flag.required:
                    raise _FlagError(f"Flag '--{flag.name}' is required, but it was not provided")
                try:
                    values[flag.name] = flag.default_value()
                except ValueError as exc:  # a declaration bug, reported like bad input
                    raise _FlagError(f"Bad default for flag '{flag.name}': {exc}") from None
                continue
            explicit.add(flag.name)
            values[flag.name] = raw if isinstance(raw, bool) else _load_value(flag, raw)
            if isinstance(raw, str) and flag.load_file and raw.startswith("file://"):
                sources[flag.name] = raw
    except _FlagError as exc:
        exit_with_error(prog, str(exc))
    return Flags(flags, values, explicit, sources)
