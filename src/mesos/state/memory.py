"""An in-memory :class:`~mesos.state.base.Storage`: nothing survives the process."""

from __future__ import annotations

import threading

from mesos.state.base import Entry, VersionConflict


class MemoryStorage:
    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        # Callers may use it from threads (asyncio.to_thread), like the SQLite backend.
        self._lock = threading.Lock()

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: bytes, expected_version: int) -> int:
        with self._lock:
            current = self._entries.get(key)
            actual = current.version if current is not None else 0
            if actual != expected_version:
                raise VersionConflict(key, expected_version, actual)
            self._entries[key] = Entry(bytes(value), actual + 1)
            return actual + 1

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        with self._lock:
            current = self._entries.get(key)
            if current is None:
                if expected_version:
                    raise VersionConflict(key, expected_version, 0)
                return False
            if expected_version is not None and current.version != expected_version:
                raise VersionConflict(key, expected_version, current.version)
            del self._entries[key]
            return True

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._entries if k.startswith(prefix))

    def close(self) -> None:
        pass
