"""An instance's supervisor: `python -I -S supervisor_process.py <spec JSON>`.

Started by `formation_mcp.workloads.supervisor.launch` (in a session of its own, in the
instance's directory), with the spec of `supervisor.LaunchSpec.to_json`: `dir`, `cwd`, `argv`,
`env`, `limits`, `cpus`, `user`, `log_bytes`, `sandboxed`.

It forks the entrypoint into a process group of its own (stdin /dev/null, stdout and stderr
into a pipe each) with the rlimits, CPU affinity, identity and working directory of the spec;
writes the entrypoint's pid to `pid` once it runs (exec'd: in its own group, with its own
signal dispositions, so the worker's stop reaches it); copies its output into `output.log` one
record per line,
`<time in microseconds> <o|e|s> <text>\n` (stdout, stderr, or the supervisor itself; a line
longer than 16 KiB is cut into records of that size), capped at half of `log_bytes` (at least
4 KiB) and rotated once to `output.log.1` (appending to what an earlier run of the instance
wrote: logs survive restarts). When a rotation drops the older `output.log.1`, the bytes
dropped so far are added up in `output.dropped`, so a reader can tell each record's offset in
everything the instance ever wrote. It waits for the entrypoint to end (and for its output to
end, or 0.2 s of quiet after it ended); kills whatever is left in its group; and
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
DROPPED_FILE = "output.dropped"
MAX_RECORD_TEXT = 16384
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


def start_entrypoint(spec: SupervisorSpec, out_w: int, err_w: int) -> NoReturn:
    """In the forked child: become the entrypoint (never returns)."""
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
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
    """`output.log`, rotated once to `output.log.1` when the next write would pass `cap`;
    the bytes of every `output.log.1` a rotation replaced are counted in `output.dropped`."""

    def __init__(self, home: str, cap: int) -> None:
        self.home = home
        self.path = os.path.join(home, LOG_FILE)
        self.cap = cap
        self.file: BinaryIO = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        self.file.seek(0, os.SEEK_END)

    def record(self, data: bytes) -> None:
        if self.file.tell() + len(data) > self.cap:
            self.file.close()
            older = self.path + ".1"
            with contextlib.suppress(OSError):
                dropped = os.path.getsize(older)
                write_atomically(self.home, DROPPED_FILE, str(read_dropped(self.home) + dropped))
            os.replace(self.path, older)
            self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (kept open)
        if len(data) > self.cap:  # whole records only
            cut = data.find(b"\n", len(data) - self.cap)
            data = data[cut + 1 :] if cut >= 0 else b""
        self.file.write(data)


def read_dropped(home: str) -> int:
    try:
        with open(os.path.join(home, DROPPED_FILE)) as handle:
            return int(handle.read().strip() or 0)
    except (OSError, ValueError):
        return 0


class LineLog:
    """Splits each stream's output into lines and records each with its time and stream."""

    def __init__(self, log: CappedLog) -> None:
        self.log = log
        self.partial: dict[bytes, bytes] = {b"o": b"", b"e": b""}

    def feed(self, stream: bytes, data: bytes) -> None:
        pieces = (self.partial[stream] + data).split(b"\n")
        rest = pieces.pop()
        while len(rest) > MAX_RECORD_TEXT:
            pieces.append(rest[:MAX_RECORD_TEXT])
            rest = rest[MAX_RECORD_TEXT:]
        self.partial[stream] = rest
        self.write(stream, pieces)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.write(stream, [rest])
            self.partial[stream] = b""

    def write(self, stream: bytes, lines: list[bytes]) -> None:
        if lines:
            now = b"%d " % (time.time_ns() // 1000) + stream + b" "
            self.log.record(b"".join(now + line.replace(b"\r", b"") + b"\n" for line in lines))


def copy_output_until_exit(pid: int, out_r: int, err_r: int, wake_r: int, log: LineLog) -> int:
    """Copy the entrypoint's output into `log` until it has ended and its output is done
    (or quiet for a moment); its wait status."""
    status: int | None = None
    open_fds = [out_r, err_r, wake_r]
    streams = {out_r: b"o", err_r: b"e"}
    while True:
        if status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = code
        if status is not None and out_r not in open_fds and err_r not in open_fds:
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
        for fd in (out_r, err_r):
            if fd in ready:
                data = os.read(fd, 65536)
                if data:
                    log.feed(streams[fd], data)
                else:
                    open_fds.remove(fd)


def main(argv: list[str]) -> None:
    spec: SupervisorSpec = json.loads(argv[1])
    home = spec["dir"]
    for signum in STOP_SIGNALS:
        signal.signal(signum, ignore_signal)  # the worker signals the workload's group, not us
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, ignore_signal)
    signal.set_wakeup_fd(wake_w)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    # Closed by the child's exec (or its exit): until then it has no process group of its own
    # and its stop signals are still ours, so a stop sent earlier would be lost.
    started_r, started_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(started_r)
        start_entrypoint(spec, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    os.close(started_w)
    os.read(started_r, 1)  # EOF once the entrypoint runs (or could not start)
    os.close(started_r)
    write_atomically(home, PID_FILE, str(pid))
    log = LineLog(CappedLog(home, max(spec["log_bytes"] // 2, 4096)))
    status = copy_output_until_exit(pid, out_r, err_r, wake_r, log)
    log.flush()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # nothing of the instance outlives it
    code = os.waitstatus_to_exitcode(status)
    if spec["sandboxed"] and 128 < code <= 192:  # bwrap: 128 + N for a workload killed by N
        code = 128 - code  # as WorkloadSandbox.exit_code
    ended = {"exit_code": code, "end_time_us": time.time_ns() // 1000}
    write_atomically(home, EXIT_FILE, json.dumps(ended))


if __name__ == "__main__":
    main(sys.argv)
