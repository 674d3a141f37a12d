"""Process-tree statistics from /proc, for the posix isolators (no cgroups needed).

A container's processes are its first pid and every descendant of it. A process
that escaped with ``setsid`` and was re-parented to init is no longer counted:
that is the posix isolators' known blind spot, and why the cgroup ones exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ProcStat", "descendants", "proc_stat", "tree_usage"]

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    utime: float  # seconds
    stime: float  # seconds
    rss: int  # bytes
    threads: int


def proc_stat(pid: int) -> ProcStat | None:
    """One process's /proc/<pid>/stat, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces; split after it.
    rest = text[text.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        ppid=int(rest[1]),
        utime=int(rest[11]) / _TICKS,
        stime=int(rest[12]) / _TICKS,
        threads=int(rest[17]),
        rss=int(rest[21]) * _PAGE,
    )


def _all_stats() -> list[ProcStat]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None:
                out.append(st)
    return out


def descendants(root: int, stats: Iterable[ProcStat] | None = None) -> list[ProcStat]:
    """``root`` and all its descendants that are alive now."""
    table = list(stats) if stats is not None else _all_stats()
    children: dict[int, list[ProcStat]] = {}
    by_pid: dict[int, ProcStat] = {}
    for st in table:
        children.setdefault(st.ppid, []).append(st)
        by_pid[st.pid] = st
    if root not in by_pid:
        return []
    out: list[ProcStat] = []
    todo = [by_pid[root]]
    while todo:
        st = todo.pop()
        out.append(st)
        todo.extend(children.get(st.pid, []))
    return out


def tree_usage(root: int) -> dict[str, float]:
    """Summed cpu times, rss, process and thread counts of ``root``'s tree."""
    tree = descendants(root)
    return {
        "cpus_user_time_secs": sum(st.utime for st in tree),
        "cpus_system_time_secs": sum(st.stime for st in tree),
        "mem_rss_bytes": float(sum(st.rss for st in tree)),
        "processes": float(len(tree)),
        "threads": float(sum(st.threads for st in tree)),
    }


def _live_pids_where(field: int, value: int) -> list[int]:
    """Live (non-zombie) processes whose /proc stat ``field`` equals ``value``.

    Fields count from the one after the parenthesised command name: 0 state, 1 ppid,
    2 process group, 3 session.
    """
    pids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) > field and rest[0] != "Z" and int(rest[field]) == value:
            pids.append(int(entry))
    return pids


def group_pids(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    return _live_pids_where(2, pgid)


def session_pids(sid: int) -> list[int]:
    """Live processes in session ``sid`` (an executor's pid: it leads its session)."""
    return _live_pids_where(3, sid)


def child_pids(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    return _live_pids_where(1, pid)
