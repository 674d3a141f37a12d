"""Every flag of ``mesos-agent``, declared once: name, type, default, help.

Defaults are Mesos' (ref §9.2) except where this agent cannot do what Mesos does:
``launcher`` is always ``posix`` and ``isolation`` is recorded but only the posix
isolators (no enforcement) exist yet.
"""

from __future__ import annotations

from mesos.flags import JSON, Duration, Flag

FLAGS: list[Flag] = [
    Flag("master", str, None,
         "The master to register with: 'host:port' (or 'file:///path' holding it).",
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
    Flag("isolation", str, "posix/cpu,posix/mem", "Isolators to use (posix only for now)."),
    Flag("launcher", str, "posix", "Launcher: 'posix' (process groups via setsid)."),
    Flag("sandbox_directory", str, "/mnt/mesos/sandbox",
         "Sandbox path inside a container with its own root filesystem."),
    Flag("max_completed_executors_per_framework", int, 150,
         "Completed executors kept per framework for the endpoints."),
    Flag("logging_level", str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
]
