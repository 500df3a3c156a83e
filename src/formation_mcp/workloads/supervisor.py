"""Runs one instance's entrypoint as a supervised process group, and finds it again later.

Each instance gets a small supervisor process (`scripts/supervisor_process.py`, run by this
interpreter with -I -S in a session of its own). It forks the entrypoint into a process group
of its own with the instance's rlimits, CPU affinity and identity, copies the entrypoint's
output into a size-capped log (`output.log`, rotated once to `output.log.1`), waits for it,
kills whatever is left in its group, and writes `exit.json` (exit code, or minus the signal
number) before it exits. So:

- the exit status is recorded even when the worker is not running at that moment (a worker
  restart finds it: reconciliation);
- the worker supervises through the supervisor: it awaits it (its own child) or, after a
  restart, watches its pid with a pidfd and checks its start time against the recorded one
  (a reused pid is never mistaken for it);
- stopping signals the entrypoint's group (SIGTERM, SIGKILL after a grace period), never the
  supervisor, which then records how it ended. A sandboxed entrypoint (`sandboxed`: the argv
  starts bwrap) is in that group too; bwrap itself ignores the stop signals, so it lives until
  the workload ends and reports its exit (128 + N for signal N, recorded as -N).

Not `preexec_fn` in the worker: the worker is multi-threaded (gRPC); the supervisor is a fresh
single-threaded interpreter, where forking and setting limits before exec is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.scripts import SUPERVISOR_SCRIPT

PID_FILE: Final = "pid"  # the file names the supervisor script writes (it keeps its own copy)
EXIT_FILE: Final = "exit.json"
LOG_FILE: Final = "output.log"
START_TIMEOUT_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """What the supervisor needs to start an entrypoint."""

    directory: Path
    """The instance's own directory (pid, exit.json, logs); the workload's files are below."""
    cwd: Path
    argv: Sequence[str]
    env: Mapping[str, str]
    limits: Sequence[tuple[int, int]]
    cpus: Sequence[int]
    user: Mapping[str, Any] | None
    log_bytes: int
    sandboxed: bool
    """`argv` starts bwrap (see sandbox.WorkloadSandbox.command with restore_signals)."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "dir": str(self.directory),
                "cwd": str(self.cwd),
                "argv": list(self.argv),
                "env": dict(self.env),
                "limits": [list(pair) for pair in self.limits],
                "cpus": list(self.cpus),
                "user": None if self.user is None else dict(self.user),
                "log_bytes": self.log_bytes,
                "sandboxed": self.sandboxed,
            }
        )


@dataclass(frozen=True, slots=True)
class Exit:
    code: int | None
    """Exit code, or minus the signal that killed it; None when nobody recorded it."""
    end_time_us: int | None

    def describe(self) -> str:
        if self.code is None:
            return "its supervisor was gone and its exit status was not recorded"
        if self.code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-self.code).name}"
        return f"exited with code {self.code}"


def process_start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/<pid>/stat field 22), to tell
    a process from a later one that got the same pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def read_exit(directory: Path) -> Exit | None:
    try:
        data = json.loads((directory / EXIT_FILE).read_text())
        return Exit(int(data["exit_code"]), int(data["end_time_us"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class Supervised:
    """One running instance as this worker sees it: its supervisor and entrypoint pids and
    an event set once the supervisor has ended (the exit is then in `exit.json`)."""

    def __init__(self, directory: Path, pid: int, supervisor_pid: int, start_ticks: int) -> None:
        self.directory = directory
        self.pid = pid
        self.supervisor_pid = supervisor_pid
        self.start_ticks = start_ticks
        self.ended = asyncio.Event()
        self.watcher: asyncio.Task[None] | None = None

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    async def stop(self, grace: float) -> None:
        """SIGTERM to the entrypoint's group; SIGKILL after `grace` seconds; wait for the end."""
        self.signal_group(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), grace)
            return
        self.signal_group(signal.SIGKILL)
        await asyncio.wait_for(self.ended.wait(), START_TIMEOUT_SECONDS)

    def exit(self) -> Exit:
        return read_exit(self.directory) or Exit(None, None)


async def launch(spec: LaunchSpec) -> Supervised:
    """Start the supervisor and wait until it has started the entrypoint."""
    if not sys.executable:
        raise FailedPrecondition("no Python interpreter to start the instance's supervisor with")
    for name in (PID_FILE, EXIT_FILE):
        with contextlib.suppress(FileNotFoundError):
            (spec.directory / name).unlink()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-S",
        str(SUPERVISOR_SCRIPT),
        spec.to_json(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=spec.directory,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        start_new_session=True,
        close_fds=True,
    )
    ticks = process_start_ticks(process.pid) or 0
    pid = await _wait_for_pid(spec.directory, process)
    supervised = Supervised(spec.directory, pid, process.pid, ticks)

    async def watch() -> None:
        await process.wait()
        supervised.ended.set()

    supervised.watcher = asyncio.get_running_loop().create_task(watch())
    return supervised


async def _wait_for_pid(directory: Path, process: asyncio.subprocess.Process) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT_SECONDS
    delay = 0.002
    while True:
        with contextlib.suppress(OSError, ValueError):
            return int((directory / PID_FILE).read_text())
        if process.returncode is not None or loop.time() > deadline:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise FailedPrecondition(
                "the instance's supervisor did not start its entrypoint",
                reason="INSTANCE_START_FAILED",
            )
        await asyncio.sleep(delay)  # the supervisor writes the file within milliseconds
        delay = min(delay * 2, 0.05)


def adopt(directory: Path, pid: int, supervisor_pid: int, start_ticks: int) -> Supervised | None:
    """A supervisor started by an earlier worker, if it is still that same process."""
    if process_start_ticks(supervisor_pid) != start_ticks:
        return None
    try:
        pidfd = os.pidfd_open(supervisor_pid)
    except (ProcessLookupError, OSError):
        return None
    supervised = Supervised(directory, pid, supervisor_pid, start_ticks)
    loop = asyncio.get_running_loop()

    def ended() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        supervised.ended.set()

    loop.add_reader(pidfd, ended)
    return supervised
