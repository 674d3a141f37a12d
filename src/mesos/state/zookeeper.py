"""A :class:`~mesos.state.base.Storage` in ZooKeeper, for masters that fail over.

Each key is one "head" znode under ``<root>/entries`` (the key percent-encoded into a
single name). The storage version is the head's znode version plus one, and every
write names the znode version it expects, so ZooKeeper itself refuses a write from
anyone who has not seen the latest value: a deposed leader cannot overwrite what its
successor wrote. With ``fence`` (say :meth:`MasterContender.fence`: the writer's
election znode while it leads, else None) each write is also a multi-op that checks
that znode still exists, so a master whose session has expired cannot write at all,
even before it has heard of the expiry.

A znode holds about 1 MB, so a larger value is cut into chunk znodes under
``<root>/chunks/<uuid>/`` written *before* the head that names them is swapped in;
old chunks are deleted only after the swap. Readers follow the head alone and
retry if a concurrent writer removed the chunks they were about to read. A writer
that dies between writing chunks and swapping the head leaves unreferenced chunks
behind (never a torn value); :meth:`ZooKeeperStorage.collect_garbage` removes them.

Calls block: callers on an event loop use ``asyncio.to_thread``, as for SQLite.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from mesos.errors import MesosError
from mesos.state.base import Entry, VersionConflict
from mesos.zookeeper.group import DEFAULT_SESSION_TIMEOUT, make_client
from mesos.zookeeper.url import ZkUrl, parse_zk_url

# Stay well under ZooKeeper's default 1 MB (jute.maxbuffer) per znode and request.
CHUNK_SIZE = 512 * 1024
_INLINE = b"V"  # head = marker + the value itself
_CHUNKED = b"C"  # head = marker + JSON manifest naming the chunks
_READ_ATTEMPTS = 5
_CREATE_ATTEMPTS = 5


class StorageError(MesosError):
    """The stored data is not readable as written (a chunk is missing or damaged)."""


class FencedError(MesosError):
    """The writer's election znode is gone: it no longer leads and must not write."""


class ZooKeeperStorage:
    def __init__(
        self,
        url: ZkUrl | str,
        root: str | None = None,
        *,
        client: KazooClient | None = None,
        session_timeout: float = DEFAULT_SESSION_TIMEOUT,
        fence: Callable[[], str | None] | None = None,
        chunk_size: int = CHUNK_SIZE,
        connect_timeout: float = 30.0,
    ) -> None:
        """Use ``root`` (default ``<url path>/state``) in the ensemble ``url`` names.

        ``client``, when given, must be started and stays the caller's to stop.
        """
        self.url = parse_zk_url(url) if isinstance(url, str) else url
        self.root = root if root is not None else posixpath.join(self.url.path, "state")
        self.fence = fence
        self.chunk_size = chunk_size
        self._owns_client = client is None
        self.client = client if client is not None else make_client(self.url, session_timeout)
        if self._owns_client:
            self.client.start(timeout=connect_timeout)
        self._entries = posixpath.join(self.root, "entries")
        self._chunks = posixpath.join(self.root, "chunks")
        self.client.ensure_path(self._entries)
        self.client.ensure_path(self._chunks)

    # ------------------------------------------------------------------ Storage

    def get(self, key: str) -> Entry | None:
        head = self._head(key)
        for _ in range(_READ_ATTEMPTS):
            try:
                data, stat = self.client.get(head)
            except NoNodeError:
                return None
            try:
                return Entry(self._decode(key, data), stat.version + 1)
            except NoNodeError:
                continue  # a writer replaced the value and removed these chunks: re-read
        raise StorageError(f"'{key}' changed under {_READ_ATTEMPTS} reads in a row or lost a chunk")

    def put(self, key: str, value: bytes, expected_version: int) -> int:
        head = self._head(key)
        if expected_version < 0:
            raise VersionConflict(key, expected_version, self._version(head))
        data, chunk_id = self._encode(bytes(value))
        try:
            if expected_version == 0:
                return self._create(key, head, data)
            old, stat = self._read_head(key, head, expected_version)
            try:
                self._write("set", head, data, stat.version)
            except BadVersionError:
                raise VersionConflict(key, expected_version, self._version(head)) from None
            except NoNodeError:
                raise VersionConflict(key, expected_version, 0) from None
        except (VersionConflict, FencedError, StorageError, NodeExistsError):
            # Refused for certain, so nothing names the new chunks. After any other
            # error (a lost connection) the write may have landed: keep them.
            if chunk_id is not None:
                self._drop_chunks(chunk_id)
            raise
        self._drop_chunks_of(old)
        return expected_version + 1

    def delete(self, key: str, expected_version: int | None = None) -> bool:
        head = self._head(key)
        for _ in range(_CREATE_ATTEMPTS):
            try:
                old, stat = self.client.get(head)
            except NoNodeError:
                if expected_version:
                    raise VersionConflict(key, expected_version, 0) from None
                return False
            if expected_version is not None and stat.version + 1 != expected_version:
                raise VersionConflict(key, expected_version, stat.version + 1)
            try:
                self._write("delete", head, b"", stat.version)
            except (BadVersionError, NoNodeError):
                continue  # changed since we read it: decide again on the new state
            self._drop_chunks_of(old)
            return True
        raise StorageError(f"'{key}' kept changing while being deleted")

    def list(self, prefix: str = "") -> list[str]:
        keys = (_decode_key(name) for name in self.client.get_children(self._entries))
        return sorted(k for k in keys if k.startswith(prefix))

    def close(self) -> None:
        if self._owns_client:
            self.client.stop()
            self.client.close()

    # ------------------------------------------------------------------ maintenance

    def collect_garbage(self, min_age: float = 600.0) -> int:
        """Delete chunk sets no head names that are older than ``min_age`` seconds.

        The age guard keeps a writer's fresh chunks (not yet swapped in) safe.
        """
        live: set[str] = set()
        for name in self.client.get_children(self._entries):
            try:
                data, _ = self.client.get(posixpath.join(self._entries, name))
            except NoNodeError:
                continue
            if data[:1] == _CHUNKED:
                live.add(str(json.loads(data[1:])["id"]))
        removed = 0
        now_ms = time.time() * 1000
        for chunk_id in self.client.get_children(self._chunks):
            stat = self.client.exists(posixpath.join(self._chunks, chunk_id))
            if chunk_id in live or stat is None or now_ms - stat.ctime < min_age * 1000:
                continue
            self._drop_chunks(chunk_id)
            removed += 1
        return removed

    # ------------------------------------------------------------------ internals

    def _head(self, key: str) -> str:
        return posixpath.join(self._entries, _encode_key(key))

    def _version(self, head: str) -> int:
        stat = self.client.exists(head)
        return stat.version + 1 if stat is not None else 0

    def _create(self, key: str, head: str, data: bytes) -> int:
        for _ in range(_CREATE_ATTEMPTS):
            try:
                self._write("create", head, data, -1)
                return 1
            except NodeExistsError:
                actual = self._version(head)
                if actual:
                    raise VersionConflict(key, 0, actual) from None
                # Deleted again in between: "absent" is what the caller expected, retry.
        raise StorageError(f"'{key}' kept appearing and disappearing while being created")

    def _read_head(self, key: str, head: str, expected_version: int) -> tuple[bytes, Any]:
        try:
            old, stat = self.client.get(head)
        except NoNodeError:
            raise VersionConflict(key, expected_version, 0) from None
        if stat.version + 1 != expected_version:
            raise VersionConflict(key, expected_version, stat.version + 1)
        return old, stat

    def _write(self, op: str, path: str, data: bytes, version: int) -> None:
        """One create/set/delete, conditional on the fence znode when there is one."""
        fence_path = self.fence() if self.fence is not None else None
        if self.fence is not None and fence_path is None:
            raise FencedError(f"Not writing {path}: this master does not lead")
        if fence_path is None:
            if op == "create":
                self.client.create(path, data)
            elif op == "set":
                self.client.set(path, data, version=version)
            else:
                self.client.delete(path, version=version)
            return
        txn = self.client.transaction()
        txn.check(fence_path, -1)
        if op == "create":
            txn.create(path, data)
        elif op == "set":
            txn.set_data(path, data, version=version)
        else:
            txn.delete(path, version=version)
        results = txn.commit()
        if isinstance(results[0], NoNodeError):
            raise FencedError(f"Not writing {path}: election znode {fence_path} is gone")
        if isinstance(results[1], Exception):
            raise results[1]

    def _encode(self, value: bytes) -> tuple[bytes, str | None]:
        """The head's data for ``value``, writing chunks first when it is large."""
        if len(value) <= self.chunk_size:
            return _INLINE + value, None
        chunk_id = uuid.uuid4().hex
        base = posixpath.join(self._chunks, chunk_id)
        try:
            self.client.create(base, b"")
            count = 0
            for offset in range(0, len(value), self.chunk_size):
                self.client.create(_chunk_path(base, count), value[offset:offset + self.chunk_size])
                count += 1
        except BaseException:
            self._drop_chunks(chunk_id)
            raise
        manifest = {"id": chunk_id, "count": count, "size": len(value),
                    "sha256": hashlib.sha256(value).hexdigest()}
        return _CHUNKED + json.dumps(manifest, sort_keys=True).encode(), chunk_id

    def _decode(self, key: str, data: bytes) -> bytes:
        """The value a head names; NoNodeError if its chunks were removed meanwhile."""
        marker, body = data[:1], data[1:]
        if marker == _INLINE:
            return body
        if marker != _CHUNKED:
            raise StorageError(f"'{key}' holds data this backend did not write")
        manifest = json.loads(body)
        base = posixpath.join(self._chunks, str(manifest["id"]))
        parts = [self.client.get(_chunk_path(base, i))[0] for i in range(int(manifest["count"]))]
        value = b"".join(parts)
        if len(value) != manifest["size"] or hashlib.sha256(value).hexdigest() != manifest["sha256"]:
            raise StorageError(f"'{key}' does not match its checksum")
        return value

    def _drop_chunks_of(self, head_data: bytes) -> None:
        if head_data[:1] == _CHUNKED:
            self._drop_chunks(str(json.loads(head_data[1:])["id"]))

    def _drop_chunks(self, chunk_id: str) -> None:
        """Best effort: a failure leaves garbage for :meth:`collect_garbage`, never damage."""
        try:
            self.client.delete(posixpath.join(self._chunks, chunk_id), recursive=True)
        except Exception:  # the write itself already succeeded or failed
            pass


def _chunk_path(base: str, index: int) -> str:
    return posixpath.join(base, f"{index:010d}")


def _encode_key(key: str) -> str:
    """One znode name per key: percent-encoded (no '/'), '.' escaped, never empty."""
    return "k" + quote(key, safe="").replace(".", "%2E")


def _decode_key(name: str) -> str:
    return unquote(name[1:])
