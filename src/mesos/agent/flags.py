"""Every flag of ``mesos-agent``, declared once: name, type, default, help.

Defaults are Mesos' (ref §9.2). ``launcher`` has no fixed default: as in Mesos it
is ``linux`` when the agent runs as root on a host whose cgroups it can use, else
``posix`` (:func:`mesos.agent.launcher.default_launcher`). The isolators' own
flags are declared next to them (``containerizer/isolators/*.py``) and listed here.
"""

from __future__ import annotations

from mesos.agent import fetcher, gc
from mesos.agent.containerizer.isolators import disk, filesystem, gpu, ports
from mesos.flags import JSON, Duration, Flag

FLAGS: list[Flag] = [
    Flag("master", str, None,
         "The master to register with: 'host:port', or 'zk://host1:2181,host2:2181/mesos' "
         "to follow whichever master ZooKeeper elects (or 'file:///path' holding either).",
         required=True),
    Flag("ip", str, "127.0.0.1", "IP address to listen on."),
    Flag("port", int, 5051, "Port to listen on."),
    Flag("advertise_ip", str, None, "IP address advertised to the master and executors."),
    Flag("advertise_port", int, None, "Port advertised to the master and executors."),
    Flag("hostname", str, None,
         "Hostname advertised in AgentInfo; the advertised IP when unset or with "
         "--no-hostname_lookup."),
    Flag("hostname_lookup", bool, False,
         "Whether to look up the hostname of the advertised IP when --hostname is unset."),
    Flag("work_dir", str, None,
         "Directory for sandboxes (<work_dir>/slaves/<agent_id>/frameworks/...).",
         required=True),
    Flag("resources", str, None,
         "Total resources, e.g. 'cpus:4;mem:1024;ports:[31000-32000]' or a JSON array of "
         "Resource objects; names left out are detected."),
    Flag("attributes", str, None, "Attributes, e.g. 'rack:r1;level:10'."),
    Flag("domain", JSON, None,
         "Fault domain of this agent as JSON, e.g. "
         "'{\"fault_domain\":{\"region\":{\"name\":\"r1\"},\"zone\":{\"name\":\"z1\"}}}'."),
    Flag("default_role", str, "*", "Role of --resources entries that name none."),
    Flag("executor_registration_timeout", Duration, "1mins",
         "How long an executor may take to SUBSCRIBE before it is destroyed."),
    Flag("executor_shutdown_grace_period", Duration, "5secs",
         "Time an executor gets to exit after SHUTDOWN before it is killed "
         "(ExecutorInfo.shutdown_grace_period overrides)."),
    Flag("executor_reregistration_timeout", Duration, "2secs",
         "Exported to checkpointing executors as MESOS_SUBSCRIPTION_BACKOFF_MAX."),
    Flag("recovery_timeout", Duration, "15mins",
         "Exported to checkpointing executors as MESOS_RECOVERY_TIMEOUT."),
    Flag("recover", str, "reconnect",
         "On start with checkpoints: 'reconnect' to executors still running, or 'cleanup' "
         "(shut them down and start as a new agent)."),
    Flag("strict", bool, True,
         "Refuse to start when a checkpoint cannot be read (else skip it)."),
    Flag("registration_backoff_factor", Duration, "1secs",
         "First delay before re-subscribing with the master; doubles up to 1mins."),
    Flag("status_update_retry_interval", Duration, "10secs",
         "First resend interval of an unacknowledged status update; doubles up to 10mins "
         "(Mesos' fixed 10 s; settable here for tests)."),
    Flag("http_command_executor", bool, False,
         "Exported to executors as MESOS_HTTP_COMMAND_EXECUTOR (the command executor always "
         "speaks the v1 HTTP API here)."),
    Flag("executor_environment_variables", JSON, None,
         "JSON object of environment variables for executors; replaces the inherited "
         "environment."),
    Flag("isolation", str, "posix/cpu,posix/mem",
         "Comma-separated isolators of the Mesos containerizer: cgroups/cpu, cgroups/mem, "
         "cgroups/pids, cgroups/devices, namespaces/pid, filesystem/posix, disk/du, "
         "network/ports, gpu/nvidia, posix/cpu, posix/mem (or a 'mesos.isolator' plugin)."),
    Flag("launcher", str, None,
         "Launcher: 'linux' (each container tracked and killed through a cgroup; needed by "
         "cgroups isolation and namespaces) or 'posix' (a session per container). Default: "
         "'linux' when the agent runs as root on a host with usable cgroups, else 'posix'."),
    Flag("cgroups_root", str, "mesos",
         "Name of the cgroup under which every container gets its own (one per hierarchy). "
         "Cgroups under it that the agent does not know are destroyed on recovery."),
    Flag("cgroups_hierarchy", str, "/sys/fs/cgroup",
         "Where the cgroup hierarchies are mounted."),
    Flag("cgroups_enable_cfs", bool, False,
         "Cap each container's CPU time at its 'cpus' with a CFS quota (cgroups/cpu); "
         "without it 'cpus' only sets a relative share."),
    Flag("cgroups_limit_swap", bool, False,
         "Limit memory plus swap, not memory alone, to the container's 'mem' (cgroups/mem)."),
    Flag("cgroups_pids_max", int, None,
         "Process (and thread) limit of each container without a 'pids' resource "
         "(cgroups/pids); unset: no limit. Not a Mesos flag."),
    *disk.FLAGS,
    *ports.FLAGS,
    *filesystem.FLAGS,
    *gpu.FLAGS,
    *fetcher.FLAGS,
    *gc.FLAGS,
    Flag("sandbox_directory", str, "/mnt/mesos/sandbox",
         "Sandbox path inside a container with its own root filesystem."),
    Flag("max_completed_executors_per_framework", int, 150,
         "Completed executors kept per framework for the endpoints."),
    Flag("logging_level", str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
]
