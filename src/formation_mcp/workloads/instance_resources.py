"""What an instance of the local driver gets from its node: rlimits, CPUs and loopback ports
(its resources come from `instances.formfile_resources`)."""

from __future__ import annotations

import os
import resource
import socket
from typing import Final

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.instances import Resources

MAX_OPEN_FILES: Final = 4096
MAX_PROCESSES: Final = 512
MIB: Final = 1024**2
GIB: Final = 1024**3


def limits(resources: Resources, *, with_user: bool) -> list[tuple[int, int]]:
    """(resource, value) pairs clamped to this process's hard limits."""
    wanted = [
        (resource.RLIMIT_AS, resources.memory_mb * MIB),
        (resource.RLIMIT_FSIZE, resources.disk_gb * GIB),
        (resource.RLIMIT_NOFILE, MAX_OPEN_FILES),
    ]
    if with_user:
        wanted.append((resource.RLIMIT_NPROC, MAX_PROCESSES))
    clamped = []
    for kind, value in wanted:
        hard = resource.getrlimit(kind)[1]
        clamped.append((kind, value if hard == resource.RLIM_INFINITY else min(value, hard)))
    return clamped


def cpus(vcpus: int) -> list[int]:
    available = sorted(os.sched_getaffinity(0))
    return available[: max(1, min(vcpus, len(available)))]


def free_port(preferred: int | None, taken: set[int]) -> int:
    """A free loopback port: the one the instance had before when it is still free."""
    candidates = [preferred] if preferred and preferred not in taken else []
    for candidate in [*candidates, 0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            port: int = probe.getsockname()[1]
            if port not in taken:
                return port
    raise FailedPrecondition("no free loopback port for the instance", reason="NO_FREE_PORT")
