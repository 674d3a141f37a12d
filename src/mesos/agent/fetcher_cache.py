"""Bookkeeping of the fetcher cache: entries, sizes, LRU order, references, key locks.

This is the pure part of the cache: it never touches the disk. The fetcher asks it
for room (``reserve``), learns which entries to delete to make that room, and marks
entries in use while it copies them into a sandbox so that they cannot be evicted
under it. Keeping the decisions here lets them be tested without downloads.

An entry is keyed by ``(user, uri)`` as in Mesos: two users fetching the same URI get
two entries, so one user's files are never handed to another. The capacity counts
entries being downloaded too (their announced size is reserved up front), so that
the cache never grows past ``--fetcher_cache_size`` even while downloads run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["CacheEntry", "CacheKey", "FetcherCache"]

CacheKey = tuple[str, str]  # (user, uri); user "" when the task has none

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(eq=False)
class CacheEntry:
    """One cached download: where it lives, how big it is, who is using it."""

    key: CacheKey
    path: str
    size: int
    complete: bool = False
    references: int = 0

    @property
    def evictable(self) -> bool:
        """Only finished entries nobody is copying from may be deleted."""
        return self.complete and self.references == 0


@dataclass
class _KeyLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class FetcherCache:
    """The cache index of one agent. Loop-owned: call it only from the event loop."""

    def __init__(self, directory: str, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache capacity must not be negative, got {capacity}")
        self.directory = directory
        self.capacity = capacity
        # Least recently used first; a hit moves the entry to the end.
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self._locks: dict[CacheKey, _KeyLock] = {}
        self._serial = 0

    # ------------------------------------------------------------------ queries

    @property
    def used(self) -> int:
        """Bytes held or reserved by every entry, finished or not."""
        return sum(e.size for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[CacheKey]:
        """Keys from least to most recently used (for tests and logs)."""
        return list(self._entries)

    def pending(self, key: CacheKey) -> int:
        """Fetches of ``key`` holding or waiting for its lock (to observe coalescing)."""
        holder = self._locks.get(key)
        return 0 if holder is None else holder.users

    def lookup(self, key: CacheKey) -> CacheEntry | None:
        """The finished entry for ``key`` (a hit: it becomes most recently used)."""
        entry = self._entries.get(key)
        if entry is None or not entry.complete:
            return None
        self._entries.move_to_end(key)
        return entry

    # ------------------------------------------------------------------ changes

    def reserve(self, key: CacheKey, size: int) -> tuple[CacheEntry | None, list[CacheEntry]]:
        """Make room for ``size`` bytes under ``key``.

        Returns the new (unfinished) entry and the entries evicted for it, whose files
        the caller deletes; or ``(None, [])`` when the cache cannot hold it: bigger than
        the whole cache, or the space is held by entries in use. Nothing is evicted
        unless the new entry then fits.
        """
        if key in self._entries:
            raise ValueError(f"cache entry {key!r} already exists")
        if size > self.capacity:
            return None, []
        free = self.capacity - self.used
        victims: list[CacheEntry] = []
        for entry in self._entries.values():
            if free >= size:
                break
            if entry.evictable:
                victims.append(entry)
                free += entry.size
        if free < size:
            return None, []
        for victim in victims:
            del self._entries[victim.key]
        entry = CacheEntry(key=key, path=self._path_for(key), size=size)
        self._entries[key] = entry
        return entry, victims

    def commit(self, entry: CacheEntry, size: int) -> None:
        """The download finished with ``size`` bytes; the entry can now be hit."""
        entry.size = size
        entry.complete = True
        self._entries.move_to_end(entry.key)

    def discard(self, entry: CacheEntry) -> None:
        """Forget an entry (a failed download); the caller deletes its file."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    def clear(self) -> None:
        """Forget every entry (recovery wipes the directory)."""
        self._entries.clear()

    def acquire(self, entry: CacheEntry) -> None:
        """Hold ``entry`` in use (not evictable) while its file is copied out."""
        entry.references += 1

    def release(self, entry: CacheEntry) -> None:
        """The copy out of ``entry`` is done; it may be evicted again."""
        if entry.references <= 0:
            raise ValueError(f"cache entry {entry.key!r} released more often than acquired")
        entry.references -= 1

    @contextlib.asynccontextmanager
    async def key_lock(self, key: CacheKey) -> AsyncIterator[None]:
        """Serialise fetches of one key, so that concurrent fetches download it once."""
        holder = self._locks.get(key)
        if holder is None:
            holder = self._locks[key] = _KeyLock()
        holder.users += 1
        try:
            async with holder.lock:
                yield
        finally:
            holder.users -= 1
            if holder.users == 0:
                del self._locks[key]

    # ------------------------------------------------------------------ helpers

    def _path_for(self, key: CacheKey) -> str:
        """A unique file name: a serial, a digest of the key, and a readable tail."""
        self._serial += 1
        user, uri = key
        digest = hashlib.sha256(f"{user}\0{uri}".encode()).hexdigest()[:16]
        tail = _UNSAFE.sub("_", uri.rstrip("/").rsplit("/", 1)[-1])[-40:] or "uri"
        return os.path.join(self.directory, f"c{self._serial}-{digest}-{tail}")
