"""Where things live under ``--work_dir`` (pure string arithmetic, no I/O).

The sandbox of one executor run is::

    <work_dir>/slaves/<agent_id>/frameworks/<framework_id>/executors/<executor_id>/runs/<container_id>

with a ``latest`` symlink next to the runs pointing at the newest one. The files
endpoints also expose each sandbox under the virtual path
``/frameworks/<framework_id>/executors/<executor_id>/runs/latest``.

Ids become path components, so :func:`id_error` refuses the ones that would not stay
one component (Mesos' ``common::validation::validateID``).
"""

from __future__ import annotations

import os

__all__ = [
    "MAX_ID_LENGTH",
    "executor_dir",
    "id_error",
    "latest_run_link",
    "sandbox_dir",
    "virtual_sandbox_path",
]


# NAME_MAX: one path component.
MAX_ID_LENGTH = 255


def id_error(value: str) -> str | None:
    """Why ``value`` cannot be a task, executor or framework id (None if it can).

    As Mesos: not empty, not ``.`` or ``..``, at most 255 bytes, no control characters
    (NUL included) and no path separators (``/`` or ``\\``).
    """
    if not value:
        return "ID must not be empty"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_LENGTH:
        return f"ID must not be longer than {MAX_ID_LENGTH} bytes"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(c in "/\\" or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return f"{value!r} contains invalid characters"
    return None


def framework_dir(work_dir: str, agent_id: str, framework_id: str) -> str:
    return os.path.join(work_dir, "slaves", agent_id, "frameworks", framework_id)


def executor_dir(work_dir: str, agent_id: str, framework_id: str, executor_id: str) -> str:
    return os.path.join(framework_dir(work_dir, agent_id, framework_id), "executors", executor_id)


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
