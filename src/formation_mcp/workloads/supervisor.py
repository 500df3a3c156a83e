"""Runs one instance's entrypoint as a supervised process group, and finds it again later.

Each instance gets a small supervisor process (`SUPERVISOR`, run by this interpreter with
-I -S in a session of its own). It forks the entrypoint into a process group of its own with
the instance's rlimits, CPU affinity and identity, copies the entrypoint's output into a
size-capped log (`output.log`, rotated once to `output.log.1`), waits for it, kills whatever
is left in its group, and writes `exit.json` (exit code, or minus the signal number) before
it exits. So:

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
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from formation_mcp.errors import FailedPrecondition

PID_FILE: Final = "pid"
EXIT_FILE: Final = "exit.json"
LOG_FILE: Final = "output.log"
START_TIMEOUT_SECONDS: Final = 10.0

SUPERVISOR: Final = r"""
import errno, json, os, resource, select, signal, sys, time
spec = json.loads(sys.argv[1])
home = spec["dir"]

def write_atomically(name, text):
    tmp = os.path.join(home, name + ".tmp")
    with open(tmp, "w") as out:
        out.write(text)
    os.replace(tmp, os.path.join(home, name))

for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, lambda *_: None)  # the worker signals the workload's group, not us
wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
signal.signal(signal.SIGCHLD, lambda *_: None)
signal.set_wakeup_fd(wake_w)
out_r, out_w = os.pipe2(os.O_CLOEXEC)
pid = os.fork()
if pid == 0:
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        # Sandboxed, bwrap ignores stop signals (they reach the workload, which gets them back
        # at their defaults inside): so it lives until the workload has ended, and reports how.
        stop = signal.SIG_IGN if spec["sandboxed"] else signal.SIG_DFL
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, stop)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for kind, value in spec["limits"]:
            resource.setrlimit(kind, (value, value))
        if spec["cpus"]:
            os.sched_setaffinity(0, spec["cpus"])
        program = spec["argv"][0]
        if "/" not in program:  # looked up here: os.execvpe imports modules, which the
            for folder in spec["env"].get("PATH", "").split(":"):  # user may not read
                candidate = os.path.join(folder or ".", program)
                if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                    program = candidate
                    break
        who = spec["user"]
        if who is not None:
            os.setgroups(who["groups"])
            os.setresgid(who["gid"], who["gid"], who["gid"])
            os.setresuid(who["uid"], who["uid"], who["uid"])
        os.chdir(spec["cwd"])
        os.execve(program, spec["argv"], spec["env"])
    except BaseException as exc:
        os.write(2, f"formation: cannot start {spec['argv'][0]!r}: {exc}\n".encode())
    os._exit(127)
os.close(out_w)
write_atomically("pid", str(pid))
cap = max(spec["log_bytes"] // 2, 4096)
log_path = os.path.join(home, "output.log")
log = open(log_path, "ab", buffering=0)
status = None

def record(data):
    global log
    if log.tell() + len(data) > cap:
        log.close()
        os.replace(log_path, log_path + ".1")
        log = open(log_path, "ab", buffering=0)
    log.write(data[-cap:])

def reap():
    global status
    if status is None:
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            status = code

open_fds = [out_r, wake_r]
while True:
    reap()
    if status is not None and out_r not in open_fds:
        break
    timeout = 0.2 if status is not None else None  # leftovers may hold the pipe open
    try:
        ready, _, _ = select.select(open_fds, [], [], timeout)
    except InterruptedError:
        continue
    if not ready and status is not None:
        break
    if wake_r in ready:
        try:
            os.read(wake_r, 512)
        except BlockingIOError:
            pass
    if out_r in ready:
        data = os.read(out_r, 65536)
        if data:
            record(data)
        else:
            open_fds.remove(out_r)
try:
    os.killpg(pid, signal.SIGKILL)  # nothing of the instance outlives it
except (ProcessLookupError, PermissionError):
    pass
code = os.waitstatus_to_exitcode(status)
if spec["sandboxed"] and 128 < code <= 192:  # bwrap: 128 + N for a workload killed by signal N
    code = 128 - code  # as WorkloadSandbox.exit_code
ended = {"exit_code": code, "end_time_us": time.time_ns() // 1000}
write_atomically("exit.json", json.dumps(ended))
"""


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


def log_tail(directory: Path, lines: int) -> list[str]:
    """The last `lines` lines of the instance's output (both log generations)."""
    tail: deque[str] = deque(maxlen=lines)
    for path in (directory / f"{LOG_FILE}.1", directory / LOG_FILE):
        with contextlib.suppress(OSError), path.open("rb") as handle:
            for raw in handle:
                tail.append(raw.rstrip(b"\n").decode("utf-8", "replace")[:2000])
    return list(tail)


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
        "-c",
        SUPERVISOR,
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
