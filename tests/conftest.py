"""Session-wide test settings.

Test agents share this host (and other people's test runs). An agent with the linux
launcher destroys, on start, every container under its ``--cgroups_root`` that it
did not checkpoint (Mesos' orphan cleanup), so agents sharing the default root
would kill each other's executors. Agents started by tests therefore default to
the posix launcher (through ``MESOS_LAUNCHER``, which a command-line flag
overrides); tests of cgroups isolation pass ``--launcher=linux`` and a
``--cgroups_root`` of their own (tests/integration/test_agent_isolation.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("MESOS_LAUNCHER", "posix")
