"""``mesos-agent``: the agent daemon."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

from mesos.agent.flags import FLAGS
from mesos.flags import Flags, exit_with_error, parse_flags
from mesos.resources import Resources

PROG = "mesos-agent"


def setup_logging(level: str) -> None:
    numeric = getattr(logging, level.upper(), None)
    if not isinstance(numeric, int):
        exit_with_error(PROG, f"Invalid --logging_level '{level}'")
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
        stream=sys.stderr,
    )


def _hostname(flags: Flags) -> str:
    if flags.hostname:
        return str(flags.hostname)
    ip = flags.advertise_ip or flags.ip
    if flags.hostname_lookup:
        try:
            return socket.gethostbyaddr(ip)[0]
        except OSError:
            pass
    return str(ip)


def _detect_gpus(flags: Flags) -> Resources:
    """With ``gpu/nvidia`` isolation, the GPUs ``nvidia-smi`` lists (narrowed by
    ``--nvidia_gpu_devices``) become a ``gpus`` resource unless ``--resources`` names
    one, as in Mesos; without that isolator no GPU is offered."""
    from mesos.agent.containerizer.isolators.gpu import GpuError, discover_gpus

    if "gpu/nvidia" not in [i.strip() for i in (flags.isolation or "").split(",")]:
        return Resources.empty()
    devices = tuple(flags.nvidia_gpu_devices) if flags.nvidia_gpu_devices else None
    try:
        gpus = discover_gpus(devices)
    except GpuError as exc:
        exit_with_error(PROG, f"Cannot discover GPUs for --isolation=gpu/nvidia: {exc}")
    if not gpus:
        return Resources.empty()
    return Resources.parse(f"gpus:{len(gpus)}", flags.default_role)


def main(argv: list[str] | None = None) -> None:
    flags = parse_flags(PROG, FLAGS, sys.argv[1:] if argv is None else argv, os.environ)
    from mesos import attributes
    from mesos.agent.master_link import master_url
    from mesos.resources import ResourcesError, detect_resources, merge_with_detected

    try:
        master_url(flags.master)
    except ValueError as exc:
        exit_with_error(PROG, str(exc))
    try:
        detected = detect_resources(flags.work_dir, flags.default_role)
        detected = detected + _detect_gpus(flags)
        resources = merge_with_detected(flags.resources, detected, flags.default_role)
    except (ResourcesError, ValueError) as exc:
        exit_with_error(PROG, f"Invalid --resources: {exc}")
    if not 0.0 <= flags.gc_disk_headroom <= 1.0:
        exit_with_error(PROG, f"Invalid --gc_disk_headroom: {flags.gc_disk_headroom} is not "
                              "within [0.0, 1.0]")
    try:
        attrs = attributes.parse(flags.attributes)
    except ValueError as exc:
        exit_with_error(PROG, f"Invalid --attributes: {exc}")
    env = flags.executor_environment_variables
    if env is not None and not (
        isinstance(env, dict) and all(isinstance(v, str) for v in env.values())
    ):
        exit_with_error(PROG, "Invalid --executor_environment_variables: expecting a JSON "
                              "object of strings")
    setup_logging(flags.logging_level)
    from mesos.v1 import codec

    codec.prepare_decoders()  # before any worker thread decodes (see its docstring)
    from mesos.agent.app import serve
    from mesos.agent.service import Agent

    try:
        os.makedirs(flags.work_dir, exist_ok=True)
    except OSError as exc:
        exit_with_error(PROG, f"Cannot create --work_dir '{flags.work_dir}': {exc}")

    agents: list[Agent] = []

    async def run() -> None:
        agent = Agent(flags, resources=resources, attributes=attrs,
                      hostname=_hostname(flags), python=sys.executable)
        agents.append(agent)
        # SIGTERM/SIGINT (handled by serve) stop the agent; SIGUSR1 shuts it down
        # with every executor, as Mesos' agent does.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, agent.request_shutdown, "SIGUSR1")
        try:
            await serve(agent)
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    try:
        asyncio.run(run())
    except OSError as exc:
        exit_with_error(PROG, f"Failed to start: {exc}")
    if agents and agents[0].left_running:
        # Executors were left running for the next agent to recover. asyncio's
        # subprocess transport kills a child still running when it is closed or
        # finalized; leave now, so that interpreter teardown cannot get to that.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
