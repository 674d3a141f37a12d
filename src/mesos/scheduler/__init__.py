"""Client library for framework authors: the v1 Scheduler HTTP API, asynchronously.

::

    from mesos.scheduler import Scheduler, SchedulerDriver, fit_tasks, task_info

    class Hello(Scheduler):
        async def on_offers(self, driver, offers):
            ...

    driver = SchedulerDriver("127.0.0.1:5050", {"name": "hello"}, Hello())
    await driver.run()

``SchedulerDriver`` speaks the wire protocol (subscribe, RecordIO events, calls,
redirects, reconnection with failover); the helpers from ``_offers`` are pure
functions over Mesos v1 JSON dicts for reading offers and building tasks.
"""

from ._driver import (
    API_PATH,
    CallError,
    DisconnectedError,
    NotSubscribedError,
    Scheduler,
    SchedulerDriver,
    SchedulerError,
    current_user,
)
from ._offers import (
    TERMINAL_STATES,
    command_info,
    fit_tasks,
    fits,
    is_terminal,
    launch_operation,
    scalar,
    scalar_resources,
    scalars,
    take,
    task_info,
    to_id,
)

__all__ = [
    "API_PATH",
    "TERMINAL_STATES",
    "CallError",
    "DisconnectedError",
    "NotSubscribedError",
    "Scheduler",
    "SchedulerDriver",
    "SchedulerError",
    "command_info",
    "current_user",
    "fit_tasks",
    "fits",
    "is_terminal",
    "launch_operation",
    "scalar",
    "scalar_resources",
    "scalars",
    "take",
    "task_info",
    "to_id",
]
