"""CPU time of processes from /proc: one process, a process with its descendants, and every
process of a given name (a database or broker server we did not start)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 on), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rpartition(")")[2].split()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _seconds(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime + stime


def tree_cpu_seconds(roots: Iterable[int]) -> float:
    """User + system CPU used so far by `roots` and every live descendant (the CPU of children
    that already ended is in their parent's cutime only once reaped; supervisors reap theirs)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for pid in _pids():
        fields = _stat(pid)
        if fields is not None:
            parents[pid] = int(fields[1])
            times[pid] = _seconds(fields)
    members = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                grew = True
    return sum(times.get(pid, 0.0) for pid in members)


def cpu_by_name(groups: Mapping[str, Iterable[str]]) -> dict[str, float]:
    """CPU seconds so far of every process whose command name starts with one of a group's
    prefixes (`{"PostgreSQL": ["postgres"], "RabbitMQ": ["beam", "erl"]}`), per group."""
    totals = dict.fromkeys(groups, 0.0)
    for pid in _pids():
        comm = _comm(pid)
        for group, prefixes in groups.items():
            if any(comm.startswith(prefix) for prefix in prefixes):
                fields = _stat(pid)
                if fields is not None:
                    totals[group] += _seconds(fields)
                break
    return totals


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def postgres_cpu_seconds(database: str) -> float:
    """CPU seconds so far of the PostgreSQL server processes that work for `database`: the
    backends connected to it (their title names it) and the shared background processes
    (checkpointer, WAL writer, ...). Other databases' backends (other users of the server)
    are left out."""
    total = 0.0
    for pid in _pids():
        if not _comm(pid).startswith("postgres"):
            continue
        title = _cmdline(pid)
        is_backend = "(" in title or "[local]" in title
        if is_backend and f" {database} " not in title:
            continue
        fields = _stat(pid)
        if fields is not None:
            total += _seconds(fields)
    return total
