"""``mesos-master``: the master daemon.

Alone it leads from the start. With ``--zk`` it contends for leadership in
ZooKeeper and leads only once elected (:mod:`mesos.master.leader`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from mesos.errors import ValidationError
from mesos.flags import Flags, exit_with_error, parse_flags
from mesos.master.flags import FLAGS

PROG = "mesos-master"

log = logging.getLogger("mesos.master")


def setup_logging(level: str, log_dir: str | None, name: str) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(log_dir, f"{name}.log")))
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        exit_with_error(name, f"Invalid --logging_level '{level}'")
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
        handlers=handlers,
    )


def check_ha_flags(flags: Flags) -> str | None:
    """The error in the election and registry flags, if any (exits are the caller's).

    ``--quorum`` belongs to Mesos' replicated log: it is required with ``--zk`` and
    ``--registry=replicated_log`` as in Mesos, and otherwise only checked to be
    positive (the ZooKeeper registry relies on ZooKeeper's own quorum)."""
    from mesos.zookeeper import parse_zk_url

    if flags.quorum is not None and flags.quorum < 1:
        return f"Invalid --quorum {flags.quorum}: expecting a positive integer"
    if float(flags.zk_session_timeout) <= 0:
        return "Invalid --zk_session_timeout: expecting a positive duration"
    if flags.registry not in (None, "zookeeper", "replicated_log", "sqlite", "in_memory"):
        return (f"Invalid --registry '{flags.registry}': expecting 'zookeeper', "
                "'replicated_log', 'sqlite' or 'in_memory'")
    if flags.zk is None:
        if flags.registry == "zookeeper":
            return "--registry=zookeeper needs --zk"
        return None
    try:
        parse_zk_url(flags.zk)
    except ValueError as exc:
        return f"Invalid --zk: {exc}"
    if flags.registry == "replicated_log" and flags.quorum is None:
        return "Need to specify --quorum for replicated log based registry when using ZooKeeper"
    return None


def main(argv: list[str] | None = None) -> None:
    flags = parse_flags(PROG, FLAGS, sys.argv[1:] if argv is None else argv, os.environ)
    error = check_ha_flags(flags)
    if error is not None:
        exit_with_error(PROG, error)
    setup_logging(flags.logging_level, flags.log_dir, PROG)
    from mesos.v1 import codec

    codec.prepare_decoders()  # before any worker thread decodes (see its docstring)
    if flags.zk is not None:
        _main_ha(flags)
        return
    from mesos.master.app import serve
    from mesos.master.service import Master

    try:
        master = Master(flags)
    except ValidationError as exc:
        exit_with_error(PROG, str(exc))
    try:
        asyncio.run(serve(master))
    except OSError as exc:
        exit_with_error(PROG, f"Failed to start: {exc}")


def _main_ha(flags: Flags) -> None:
    from mesos.master.leader import serve_ha

    if flags.registry in ("replicated_log", "sqlite"):
        log.warning("--registry=%s keeps the registry in SQLite under --work_dir on this "
                    "master only (Mesos' replicated log is not implemented): a new leader "
                    "will not see what this one wrote; use --registry=zookeeper (the "
                    "default with --zk) for failover", flags.registry)
    elif flags.registry == "in_memory":
        log.warning("--registry=in_memory: a new leader starts from an empty registry")
    try:
        asyncio.run(serve_ha(flags))
    except OSError as exc:
        exit_with_error(PROG, f"Failed to start: {exc}")


if __name__ == "__main__":
    main()
