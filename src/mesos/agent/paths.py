"""Where things live under ``--work_dir`` (pure string arithmetic, no I/O).

The sandbox of one executor run is::

    <work_dir>/slaves/<agent_id>/frameworks/<framework_id>/executors/<executor_id>/runs/<container_id>

with a ``latest`` symlink next to the runs pointing at the newest one. The files
endpoints also expose each sandbox under the virtual path
``/frameworks/<framework_id>/executors/<executor_id>/runs/latest``.
"""

from __future__ import annotations

import os

__all__ = [
    "executor_dir",
    "latest_run_link",
    "sandbox_dir",
    "virtual_sandbox_path",
]


def executor_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(
        work_dir, "slaves", agent_id, "frameworks", framework_id, "executors", executor_id
    )


def sandbox_dir(
    work_dir: str, agent_id: str, framework_id: str, executor_id: str, container_id: str
) -> str:
    return os.path.join(
        executor_dir(work_dir, agent_id, framework_id, executor_id), "runs", container_id
    )


def latest_run_link(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(executor_dir(work_dir, agent_id, framework_id, executor_id), "runs",
                        "latest")


def virtual_sandbox_path(framework_id: str, executor_id: str) -> str:
    return f"/frameworks/{framework_id}/executors/{executor_id}/runs/latest"
