"""A :class:`~mesos.state.base.Storage` in one SQLite file.

Write-ahead logging with ``synchronous=FULL``: a put is one transaction and is on
disk when it returns. The connection is shared by the threads ``asyncio.to_thread``
uses, behind a lock, so calls are serialised.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from mesos.state.base import Entry, VersionConflict

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries ("
    " key TEXT PRIMARY KEY, value BLOB NOT NULL, version INTEGER NOT NULL)"
)


class SqliteStorage:
    def __init__(self, path: str) -> None:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def _version(self, key: str) -> int:
        row = self._db.execute("SELECT version FROM entries WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row is not None else 0

    def get(self, key: str) -> Entry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value, version FROM entries WHERE key = ?", (key,)
            ).fetchone()
        return Entry(bytes(row[0]), int(row[1])) if row is not None else None

    def put(self, key: str, value: bytes, expected_version: int) -> int:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                actual = self._version(key)
                if actual != expected_version:
                    raise VersionConflict(key, expected_version, actual)
                self._db.execute(
                    "INSERT INTO entries (key, value, version) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                    "version = excluded.version",
                    (key, bytes(value), actual + 1),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return actual + 1

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                actual = self._version(key)
                if expected_version is not None and actual != expected_version:
                    raise VersionConflict(key, expected_version, actual)
                self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return actual != 0

    def list(self, prefix: str = "") -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT key FROM entries ORDER BY key").fetchall()
        return [str(r[0]) for r in rows if str(r[0]).startswith(prefix)]

    def close(self) -> None:
        with self._lock:
            self._db.close()
