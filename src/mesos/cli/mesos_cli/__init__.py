"""The ``mesos`` command-line tool: operate a cluster through its master's HTTP API.

``mesos --help`` lists the commands; docs/cli.md describes them.
"""

from mesos.cli.mesos_cli.main import cli, main

__all__ = ["cli", "main"]
