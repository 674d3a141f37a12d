"""``python -m mesos.cli.mesos_cli``: the same as the ``mesos`` command."""

from mesos.cli.mesos_cli.main import main

main()
