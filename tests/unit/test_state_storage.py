"""The ``state/`` backends: versions, compare-and-swap, and persistence across reopen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos.state import MemoryStorage, SqliteStorage, Storage, VersionConflict


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store: Storage = MemoryStorage() if request.param == "memory" else SqliteStorage(
        str(tmp_path / "state.sqlite"))
    yield store
    store.close()


def test_put_creates_then_versions_each_write(storage: Storage) -> None:
    assert storage.get("k") is None
    assert storage.put("k", b"one", 0) == 1
    assert storage.put("k", b"two", 1) == 2
    assert storage.get("k") == (b"two", 2)


def test_a_stale_version_is_refused_and_changes_nothing(storage: Storage) -> None:
    storage.put("k", b"one", 0)
    with pytest.raises(VersionConflict, match="expected version 0, found 1"):
        storage.put("k", b"other", 0)
    with pytest.raises(VersionConflict):
        storage.put("k", b"other", 7)
    assert storage.get("k") == (b"one", 1)


def test_delete_and_list(storage: Storage) -> None:
    storage.put("a/1", b"x", 0)
    storage.put("a/2", b"y", 0)
    storage.put("b", b"z", 0)
    assert storage.list("a/") == ["a/1", "a/2"]
    assert storage.list() == ["a/1", "a/2", "b"]
    with pytest.raises(VersionConflict):
        storage.delete("a/1", expected_version=3)
    assert storage.delete("a/1", expected_version=1)
    assert not storage.delete("a/1")
    assert storage.get("a/1") is None
    # A deleted key starts again from version 0.
    assert storage.put("a/1", b"again", 0) == 1


def test_sqlite_keeps_entries_across_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "state.sqlite")
    first = SqliteStorage(path)
    first.put("registry", b"\x00payload", 0)
    first.put("registry", b"\x00payload2", 1)
    first.close()
    second = SqliteStorage(path)
    try:
        assert second.get("registry") == (b"\x00payload2", 2)
        with pytest.raises(VersionConflict):
            second.put("registry", b"late", 1)
        journal = second._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"
    finally:
        second.close()
