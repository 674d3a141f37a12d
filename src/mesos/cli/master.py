"""``mesos-master``: the master daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from mesos.errors import ValidationError
from mesos.flags import exit_with_error, parse_flags
from mesos.master.flags import FLAGS

PROG = "mesos-master"


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


def main(argv: list[str] | None = None) -> None:
    flags = parse_flags(PROG, FLAGS, sys.argv[1:] if argv is None else argv, os.environ)
    setup_logging(flags.logging_level, flags.log_dir, PROG)
    from mesos.v1 import codec

    codec.prepare_decoders()  # before any worker thread decodes (see its docstring)
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


if __name__ == "__main__":
    main()
