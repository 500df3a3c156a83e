"""What an instance's processes use, read from /proc (Linux): one pass over /proc per sampling
tick serves every instance of the node.

An instance's processes are its entrypoint's process group plus every descendant of the
entrypoint (one that made a group or session of its own is still its descendant). CPU time of
the whole group, including processes that came and went: each live member's own time plus the
time of the children it has waited for (`cutime`/`cstime`, which include theirs in turn), so a
child that exited and was reaped by a member still counts. The local driver gives instances no
cgroup of their own, so /proc is the source; a child reaped by a process outside the group
(none: the supervisor reaps only the entrypoint, whose time is the sum) would be lost.

Memory is the sum of the members' resident sets (pages shared between them count once per
process, as `ps` and `docker stats` without cgroups count them). Open descriptors and sockets
need the right to read /proc/<pid>/fd (the worker's own user or root); when it is missing they
are reported as unknown (None), never as 0.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")
PAGE_BYTES: Final = os.sysconf("SC_PAGE_SIZE")
LISTEN_STATE: Final = "0A"
MAX_FDS_READ: Final = 4096
"""Descriptors looked at per process for sockets (the count itself is always complete)."""
MAX_PORTS: Final = 16


@dataclass(frozen=True, slots=True)
class ProcessStat:
    pid: int
    ppid: int
    pgrp: int
    cpu_ticks: int
    """utime + stime + cutime + cstime."""
    threads: int
    rss_pages: int


@dataclass(frozen=True, slots=True)
class GroupUsage:
    cpu_seconds: float
    rss_bytes: int
    processes: int
    threads: int
    open_fds: int | None
    ports: tuple[int, ...]


class ProcessTable:
    """One snapshot of /proc: every process's stat line, and the listening TCP sockets."""

    def __init__(self, processes: dict[int, ProcessStat], listening: dict[int, int]) -> None:
        self.processes = processes
        self.listening = listening
        self._children: defaultdict[int, list[int]] = defaultdict(list)
        self._groups: defaultdict[int, list[int]] = defaultdict(list)
        for stat in processes.values():
            self._children[stat.ppid].append(stat.pid)
            self._groups[stat.pgrp].append(stat.pid)

    @classmethod
    def read(cls, proc: Path = Path("/proc")) -> ProcessTable:
        processes: dict[int, ProcessStat] = {}
        with contextlib.suppress(OSError):
            for entry in os.scandir(proc):
                if entry.name.isdigit():
                    stat = read_stat(proc / entry.name / "stat")
                    if stat is not None:
                        processes[stat.pid] = stat
        return cls(processes, read_listening(proc))

    def members(self, leader: int) -> list[ProcessStat]:
        """The leader's process group and all its descendants."""
        found: set[int] = set(self._groups.get(leader, ()))
        stack = [leader]
        while stack:
            pid = stack.pop()
            if pid in self.processes:
                found.add(pid)
            stack.extend(child for child in self._children.get(pid, ()) if child not in found)
        return [self.processes[pid] for pid in sorted(found) if pid in self.processes]

    def usage(self, leader: int, proc: Path = Path("/proc")) -> GroupUsage:
        members = self.members(leader)
        fds: int | None = 0
        ports: set[int] = set()
        for member in members:
            count, inodes = read_fds(proc / str(member.pid) / "fd")
            if count is None or fds is None:
                fds = None
            else:
                fds += count
            ports.update(self.listening[i] for i in inodes if i in self.listening)
        return GroupUsage(
            cpu_seconds=sum(m.cpu_ticks for m in members) / CLOCK_TICKS,
            rss_bytes=sum(m.rss_pages for m in members) * PAGE_BYTES,
            processes=len(members),
            threads=sum(m.threads for m in members),
            open_fds=fds,
            ports=tuple(sorted(ports)[:MAX_PORTS]),
        )


def read_stat(path: Path) -> ProcessStat | None:
    """/proc/<pid>/stat, or None when the process is gone."""
    try:
        text = path.read_bytes().decode("ascii", "replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return ProcessStat(
            pid=int(text[: text.index(" ")]),
            ppid=int(fields[1]),
            pgrp=int(fields[2]),
            cpu_ticks=int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]),
            threads=int(fields[17]),
            rss_pages=max(0, int(fields[21])),
        )
    except (IndexError, ValueError):
        return None


def read_fds(directory: Path) -> tuple[int | None, set[int]]:
    """How many descriptors a process has open, and the inodes of its sockets."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None, set()
    inodes: set[int] = set()
    for name in names[:MAX_FDS_READ]:
        try:
            target = os.readlink(directory / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            with contextlib.suppress(ValueError):
                inodes.add(int(target[8:-1]))
    return len(names), inodes


def read_listening(proc: Path = Path("/proc")) -> dict[int, int]:
    """Socket inode -> port of every listening TCP socket (IPv4 and IPv6) in this network
    namespace (the instances share the node's)."""
    listening: dict[int, int] = {}
    for name in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), (proc / "net" / name).open() as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) > 9 and fields[3] == LISTEN_STATE:
                    with contextlib.suppress(ValueError):
                        listening[int(fields[9])] = int(fields[1].rsplit(":", 1)[1], 16)
    return listening


def disk_bytes(root: Path, max_entries: int) -> tuple[int, bool]:
    """Bytes allocated on disk below `root` (blocks, not apparent sizes; hard links once),
    and whether the walk saw everything (it stops after `max_entries` entries: the sum is
    then a lower bound)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    entries = 0
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            iterator = os.scandir(directory)
        except OSError:
            continue
        with iterator:
            for entry in iterator:
                entries += 1
                if entries > max_entries:
                    return total, False
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                key = (info.st_dev, info.st_ino)
                if key in seen:
                    continue
                seen.add(key)
                total += info.st_blocks * 512
    return total, True
