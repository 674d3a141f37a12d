"""Which master to talk to: ``--master`` / ``MESOS_MASTER`` resolved to the leader's ``host:port``.

``HOST:PORT`` (optionally ``http://HOST:PORT``) names a master directly; a standby
that is named answers with a redirect, which the client follows. ``zk://...`` (or
``file:///path`` holding such a URL) is resolved once through the ZooKeeper master
detector (:mod:`mesos.zookeeper`): the lowest member of the masters' group leads.
All of that lives in :func:`resolve_master`, the one place that knows about it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from typing import Any

from mesos.cli.mesos_cli.client import CliError

__all__ = ["DEFAULT_MASTER", "resolve_master"]

DEFAULT_MASTER = "127.0.0.1:5050"


def resolve_master(spec: str, timeout: float) -> str:
    """``host:port`` of the leading master named by ``spec``; CliError when it cannot be told."""
    spec = spec.strip()
    if spec.startswith("file://"):
        spec = _read_file_url(spec)
    if spec.startswith("zk://"):
        return _detect_with_zookeeper(spec, timeout)
    if "://" in spec:
        parts = urllib.parse.urlsplit(spec)
        if parts.scheme not in ("http", ""):
            raise CliError(f"unsupported master URL scheme '{parts.scheme}' in '{spec}'")
        spec = parts.netloc
    host, _, port = spec.rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"invalid master '{spec}': expected HOST:PORT or zk://HOST:PORT/PATH")
    return f"{host}:{port}"


def _read_file_url(spec: str) -> str:
    path = urllib.parse.urlsplit(spec).path
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError as exc:
        raise CliError(f"cannot read the master from '{path}': {exc.strerror or exc}") from None


def _detect_with_zookeeper(url: str, timeout: float) -> str:
    """The leader's ``host:port`` as the ZooKeeper master detector reads it, once."""
    try:
        from mesos.zookeeper import MasterDetector, parse_zk_url
    except ImportError as exc:
        raise CliError(f"cannot use '{url}': ZooKeeper detection is not available ({exc}); "
                       "pass the leading master as --master HOST:PORT") from None
    try:
        zk = parse_zk_url(url)
    except ValueError as exc:
        raise CliError(f"invalid ZooKeeper URL '{url}': {exc}") from None
    # kazoo logs every failed connection attempt; the one line we print is enough.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL + 1)
    logging.getLogger("mesos.zookeeper").setLevel(logging.CRITICAL + 1)

    async def detect() -> Any:
        detector = MasterDetector(zk, session_timeout=max(timeout, 4.0))
        try:
            try:
                await detector.start(timeout)
            except Exception as exc:
                raise CliError(f"cannot reach ZooKeeper at {zk.hosts}: "
                               f"{exc or type(exc).__name__}") from None
            try:
                return await asyncio.wait_for(detector.detect(None), timeout)
            except TimeoutError:
                raise CliError(f"no master is leading in {zk.redacted()} "
                               f"(waited {timeout:g}s)") from None
        finally:
            with contextlib.suppress(Exception):
                await detector.stop()

    return _address(asyncio.run(detect()), url)


def _address(info: Any, url: str) -> str:
    """``host:port`` to reach a leader's MasterInfo at: its address, else its pid."""
    address = getattr(info, "address", None)
    host = getattr(address, "ip", None) or getattr(address, "hostname", None) \
        or getattr(info, "hostname", None)
    port = getattr(address, "port", None) or getattr(info, "port", None)
    if host and port:
        return f"{host}:{port}"
    pid = getattr(info, "pid", None) or ""
    if "@" in pid:
        return pid.rsplit("@", 1)[1]
    raise CliError(f"the leader registered in '{url}' gives no address")
