"""An instance's supervisor: `python -I -S supervisor_process.py <spec JSON>`.

Started by `formation_mcp.workloads.supervisor.launch` (in a session of its own, in the
instance's directory), with the spec of `supervisor.LaunchSpec.to_json`: `dir`, `cwd`, `argv`,
`env`, `limits`, `cpus`, `user`, `log_bytes`, `sandboxed`.

It forks the entrypoint into a process group of its own (stdin /dev/null, stdout and stderr
into one pipe) with the rlimits, CPU affinity, identity and working directory of the spec;
writes the entrypoint's pid to `pid`; copies its output into `output.log`, capped at half of
`log_bytes` (at least 4 KiB) and rotated once to `output.log.1`; waits for it to end (and for
its output to end, or 0.2 s of quiet after it ended); kills whatever is left in its group; and
writes `exit.json`: `exit_code` (minus the signal number for a signal; for a sandboxed
entrypoint bwrap's 128 + N is recorded as -N, as `WorkloadSandbox.exit_code` does) and
`end_time_us`. An entrypoint that cannot be started exits 127, saying why in its output.

The supervisor ignores SIGTERM, SIGINT and SIGHUP: the worker signals the entrypoint's group,
never the supervisor, which then records how it ended. Standard library only (see
`formation_mcp.workloads.scripts`).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would slow every start
if TYPE_CHECKING:
    from typing import BinaryIO, NoReturn, TypedDict

    class Identity(TypedDict):
        name: str
        uid: int
        gid: int
        groups: list[int]

    class SupervisorSpec(TypedDict):
        dir: str
        cwd: str
        argv: list[str]
        env: dict[str, str]
        limits: list[list[int]]
        cpus: list[int]
        user: Identity | None
        log_bytes: int
        sandboxed: bool


PID_FILE = "pid"
EXIT_FILE = "exit.json"
LOG_FILE = "output.log"
CANNOT_START = 127
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
QUIET_AFTER_EXIT_SECONDS = 0.2  # leftovers may hold the pipe open after the entrypoint ended


def ignore_signal(_signum: int, _frame: object) -> None:
    """A handler that does nothing: the signal only interrupts a wait (or is not ours)."""


def write_atomically(home: str, name: str, text: str) -> None:
    tmp = os.path.join(home, name + ".tmp")
    with open(tmp, "w") as out:
        out.write(text)
    os.replace(tmp, os.path.join(home, name))


def find_program(program: str, env: dict[str, str]) -> str:
    """`program` looked up in the entrypoint's PATH (os.execvpe imports modules, which the
    workload's user may not be able to read)."""
    if "/" in program:
        return program
    for folder in env.get("PATH", "").split(":"):
        candidate = os.path.join(folder or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return program


def start_entrypoint(spec: SupervisorSpec, out_w: int) -> NoReturn:
    """In the forked child: become the entrypoint (never returns)."""
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(out_w, 2)
        # Sandboxed, bwrap ignores stop signals (they reach the workload, which gets them back
        # at their defaults inside): so it lives until the workload has ended, and reports how.
        stop = signal.SIG_IGN if spec["sandboxed"] else signal.SIG_DFL
        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for kind, value in spec["limits"]:
            resource.setrlimit(kind, (value, value))
        if spec["cpus"]:
            os.sched_setaffinity(0, spec["cpus"])
        program = find_program(spec["argv"][0], spec["env"])
        who = spec["user"]
        if who is not None:
            os.setgroups(who["groups"])
            os.setresgid(who["gid"], who["gid"], who["gid"])
            os.setresuid(who["uid"], who["uid"], who["uid"])
        os.chdir(spec["cwd"])
        os.execve(program, spec["argv"], spec["env"])
    except BaseException as exc:
        os.write(2, f"formation: cannot start {spec['argv'][0]!r}: {exc}\n".encode())
    os._exit(CANNOT_START)


class CappedLog:
    """`output.log`, rotated once to `output.log.1` when the next write would pass `cap`."""

    def __init__(self, path: str, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.file: BinaryIO = open(path, "ab", buffering=0)  # noqa: SIM115 (kept open)

    def record(self, data: bytes) -> None:
        if self.file.tell() + len(data) > self.cap:
            self.file.close()
            os.replace(self.path, self.path + ".1")
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        self.file.write(data[-self.cap :])


def copy_output_until_exit(pid: int, out_r: int, wake_r: int, log: CappedLog) -> int:
    """Copy the entrypoint's output into `log` until it has ended and its output is done
    (or quiet for a moment); its wait status."""
    status: int | None = None
    open_fds = [out_r, wake_r]
    while True:
        if status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
        if status is not None and out_r not in open_fds:
            return status
        timeout = QUIET_AFTER_EXIT_SECONDS if status is not None else None
        try:
            ready, _, _ = select.select(open_fds, [], [], timeout)
        except InterruptedError:
            continue
        if not ready and status is not None:
            return status
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
        if out_r in ready:
            data = os.read(out_r, 65536)
            if data:
                log.record(data)
            else:
                open_fds.remove(out_r)


def main(argv: list[str]) -> None:
    spec: SupervisorSpec = json.loads(argv[1])
    home = spec["dir"]
    for signum in STOP_SIGNALS:
        signal.signal(signum, ignore_signal)  # the worker signals the workload's group, not us
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, ignore_signal)
    signal.set_wakeup_fd(wake_w)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        start_entrypoint(spec, out_w)
    os.close(out_w)
    write_atomically(home, PID_FILE, str(pid))
    log = CappedLog(os.path.join(home, LOG_FILE), max(spec["log_bytes"] // 2, 4096))
    status = copy_output_until_exit(pid, out_r, wake_r, log)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # nothing of the instance outlives it
    code = os.waitstatus_to_exitcode(status)
    if spec["sandboxed"] and 128 < code <= 192:  # bwrap: 128 + N for a workload killed by N
        code = 128 - code  # as WorkloadSandbox.exit_code
    ended = {"exit_code": code, "end_time_us": time.time_ns() // 1000}
    write_atomically(home, EXIT_FILE, json.dumps(ended))


if __name__ == "__main__":
    main(sys.argv)
