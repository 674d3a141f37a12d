"""Durable key/value storage with versions (compare-and-swap).

:class:`Storage` is the protocol; :class:`MemoryStorage` keeps entries in a dict
(tests, ``--registry=in_memory``) and :class:`SqliteStorage` in one SQLite file
(the master's default with ``--work_dir``). Both are synchronous: callers on an
event loop run them in a thread (``asyncio.to_thread``).
"""

from mesos.state.base import Entry, Storage, VersionConflict
from mesos.state.memory import MemoryStorage
from mesos.state.sqlite import SqliteStorage

__all__ = ["Entry", "MemoryStorage", "SqliteStorage", "Storage", "VersionConflict"]
