"""procfs: an instance's processes (its group and descendants) and what they use, read from a
real process tree."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from formation_mcp.workloads.metrics.procfs import ProcessTable, disk_bytes, read_listening

TREE = """
import os, socket, subprocess, sys, time
# A child that burns CPU and exits (reaped by us): its time must still count.
BURN = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"
subprocess.run([sys.executable, "-c", BURN])
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen()
# A child in a session of its own: still a descendant.
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
print(listener.getsockname()[1], flush=True)
time.sleep(60)
"""


@pytest.fixture
def tree() -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen(
        [sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    try:
        yield process, port
    finally:
        for stat in ProcessTable.read().members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stat.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()


def test_members_are_the_group_and_every_descendant(
    tree: tuple[subprocess.Popen[str], int],
) -> None:
    process, _port = tree
    members = ProcessTable.read().members(process.pid)
    assert process.pid in {m.pid for m in members}
    assert len(members) == 2


def test_usage_counts_cpu_of_exited_children_and_sums_memory(
    tree: tuple[subprocess.Popen[str], int],
) -> None:
    process, port = tree
    usage = ProcessTable.read().usage(process.pid)
    assert usage.cpu_seconds >= 0.3
    assert usage.processes == 2 and usage.threads >= 2
    assert usage.rss_bytes > 4 * 1024 * 1024
    assert usage.open_fds is not None and usage.open_fds >= 4
    assert usage.ports == (port,)


def test_listening_sockets_are_found_by_inode() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        inode = os.fstat(listener.fileno()).st_ino
        assert read_listening()[inode] == listener.getsockname()[1]


def test_disk_bytes_counts_blocks_and_stops_at_the_entry_cap(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_bytes(b"x" * 100_000)
    total, complete = disk_bytes(tmp_path, 100)
    assert complete and total >= 500_000
    partial, complete = disk_bytes(tmp_path, 2)
    assert not complete and partial < total
