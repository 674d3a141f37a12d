"""Every flag of ``mesos-master``, declared once: name, type, default, help."""

from __future__ import annotations

from mesos.flags import JSON, Duration, Flag

FLAGS: list[Flag] = [
    Flag("ip", str, "127.0.0.1", "IP address to listen on."),
    Flag("port", int, 5050, "Port to listen on."),
    Flag("advertise_ip", str, None, "IP address advertised to reach this master."),
    Flag("advertise_port", int, None, "Port advertised to reach this master."),
    Flag("hostname", str, None,
         "Hostname advertised in MasterInfo; the IP when unset or with --no-hostname_lookup."),
    Flag("hostname_lookup", bool, False,
         "Whether to look up the hostname of --ip when --hostname is unset."),
    Flag("work_dir", str, None, "Directory for the master's durable state (the registry)."),
    Flag("registry", str, None,
         "Where the registry (admitted, unreachable and gone agents, frameworks, weights, "
         "quota) is kept: 'zookeeper' (under the --zk path, shared by the masters so a new "
         "leader recovers what the last one wrote; the default with --zk), 'sqlite' (a file "
         "under --work_dir; the default without --zk when --work_dir is set; "
         "'replicated_log', Mesos' default, is accepted as its alias) or 'in_memory' (lost "
         "on exit; the default without --zk and --work_dir)."),
    Flag("zk", str, None,
         "ZooKeeper URL for leader election among several masters, e.g. "
         "'zk://host1:2181,host2:2181/mesos' (or 'file:///path' holding it); with "
         "credentials 'zk://user:password@host:2181/mesos'. Without it the master leads "
         "alone."),
    Flag("zk_session_timeout", Duration, "10secs",
         "ZooKeeper session timeout: a leader cut off from ZooKeeper for about this long "
         "is replaced (it stops acting as leader as soon as its connection is in doubt)."),
    Flag("quorum", int, None,
         "Size of the replicated log's quorum (more than half the masters). Mesos needs it "
         "with --zk and --registry=replicated_log; the ZooKeeper registry does not use it "
         "(ZooKeeper's own quorum keeps it), so it is only checked to be positive."),
    Flag("agent_reregister_timeout", Duration, "10mins",
         "How long a recovered master waits for the agents in its registry to re-register "
         "before marking them unreachable.",
         aliases=("slave_reregister_timeout",)),
    Flag("recovery_agent_removal_limit", str, "100%",
         "Most agents, as a percentage of those in the recovered registry, that may be "
         "marked unreachable when --agent_reregister_timeout expires after a restart; "
         "above it the master exits instead (an operator must look).",
         aliases=("recovery_slave_removal_limit",)),
    Flag("registry_max_agent_age", Duration, "2weeks",
         "How long an unreachable agent stays in the registry before it is forgotten."),
    Flag("registry_max_agent_count", int, 102400,
         "Most unreachable agents kept in the registry; the oldest beyond it are forgotten."),
    Flag("registry_gc_interval", Duration, "15mins",
         "How often the registry's unreachable agents are pruned by age and count."),
    Flag("cluster", str, None, "Human readable name for the cluster, shown in the web UI."),
    Flag("allocation_interval", Duration, "1secs",
         "Time between batch allocations; resources freed in between trigger one sooner."),
    Flag("offer_timeout", Duration, None,
         "How long an offer may stay outstanding before it is rescinded (default: never)."),
    Flag("agent_ping_timeout", Duration, "15secs",
         "How long the master waits for an agent to answer a ping.",
         aliases=("slave_ping_timeout",)),
    Flag("max_agent_ping_timeouts", int, 5,
         "Missed pings after which an agent is marked unreachable.",
         aliases=("max_slave_ping_timeouts",)),
    Flag("max_completed_frameworks", int, 50, "Completed frameworks kept for the endpoints."),
    Flag("max_completed_tasks_per_framework", int, 1000,
         "Completed tasks kept per framework for the endpoints."),
    Flag("max_unreachable_tasks_per_framework", int, 1000,
         "Unreachable tasks kept per framework for the endpoints."),
    Flag("min_allocatable_resources", str, "cpus:0.01|mem:32",
         "Offer an agent only when its free resources reach one of these ('|' separated)."),
    Flag("roles", str, None, "Deprecated: comma-separated whitelist of roles."),
    Flag("weights", str, None, "Comma-separated role=weight pairs, e.g. 'eng=2,ops=1'."),
    Flag("allocator", str, "hierarchical",
         "Allocator to use: a name in the 'mesos.allocator' entry-point group "
         "('hierarchical' is the default) or 'package.module:Class'."),
    Flag("framework_sorter", str, "drf",
         "Policy for sorting frameworks within a role: 'drf' or 'random'."),
    Flag("role_sorter", str, "drf", "Policy for sorting roles: 'drf' or 'random'."),
    Flag("filter_gpu_resources", bool, True,
         "Offer agents with GPUs only to frameworks with the GPU_RESOURCES capability."),
    Flag("domain", JSON, None,
         "Fault domain of the master as JSON ({\"fault_domain\":{\"region\":{\"name\":...},"
         "\"zone\":{\"name\":...}}}); agents of other regions are offered only to "
         "REGION_AWARE frameworks."),
    Flag("root_submissions", bool, True, "Whether root may subscribe frameworks."),
    Flag("heartbeat_interval", Duration, "15secs",
         "Interval of HEARTBEAT events on scheduler streams (Mesos' fixed 15 s)."),
    Flag("logging_level", str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
    Flag("log_dir", str, None, "Directory for the log file (default: stderr only)."),
    Flag("max_operator_event_stream_subscribers", int, 1000,
         "Most operator API SUBSCRIBE streams open at once; past it the oldest is closed."),
]
