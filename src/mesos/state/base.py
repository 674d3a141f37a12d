"""The :class:`Storage` protocol every backend of :mod:`mesos.state` implements.

A key holds bytes and a version. Version 0 means "absent": ``put(key, value, 0)``
creates a key and fails if it exists. Every successful put returns the next
version, and a put whose ``expected_version`` is not the stored one raises
:class:`VersionConflict` and changes nothing, so two writers cannot silently
overwrite each other.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from mesos.errors import ConflictError


class VersionConflict(ConflictError):
    """A put or delete named a version that is not the stored one."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(
            f"Version conflict on '{key}': expected version {expected}, found {actual}"
        )
        self.key = key
        self.expected = expected
        self.actual = actual


class Entry(NamedTuple):
    value: bytes
    version: int


class Storage(Protocol):
    def get(self, key: str) -> Entry | None:
        """The value and version stored under ``key``, or None."""
        ...

    def put(self, key: str, value: bytes, expected_version: int) -> int:
        """Store ``value`` if ``key`` is at ``expected_version`` (0: absent); the new version."""
        ...

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        """Remove ``key`` (only at ``expected_version`` when given); whether it existed."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """The stored keys starting with ``prefix``, sorted."""
        ...

    def close(self) -> None:
        ...
