"""Running a RUN step: in the sandbox, with rlimits, as the workload user, with a timeout.

RUN executes `/bin/sh -c <command>` in the workdir with stdin from /dev/null, the environment
it is given, a process group of its own (`start_new_session`), rlimits (address space, CPU,
open files, file size; process count only with `run_as`; set by the launcher script before
it switches to the workload user) and a timeout. A step that exits non-zero is
FAILED_PRECONDITION `STEP_FAILED` naming the step (number and command), its exit code and
its last `tail_lines` lines; a step over its timeout is stopped (SIGTERM to its process
group, SIGKILL after `kill_grace_seconds`) and fails with `STEP_TIMEOUT`; a cancelled build
stops the running group the same way and lets `asyncio.CancelledError` through. When a
step's command ends, its sandbox ends with everything it started (the PID namespace goes
with it).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.build.output import LogBatcher, pump_lines
from formation_mcp.workloads.build.request import STDERR, STDOUT, BuildRequest, ProgressSink
from formation_mcp.workloads.sandbox import RunAsIdentity, launcher_argv

SHELL: Final = "/bin/sh"


def _rlimits(request: BuildRequest, who: RunAsIdentity | None) -> list[tuple[int, int]]:
    """(resource, value) pairs, each clamped to this process's hard limit (computed here,
    in the worker, so the launcher only calls setrlimit)."""
    limits = request.limits
    wanted = [
        (resource.RLIMIT_AS, limits.address_space_bytes(request.formfile)),
        (resource.RLIMIT_NOFILE, limits.max_open_files),
        (resource.RLIMIT_FSIZE, limits.max_file_bytes),
    ]
    if limits.cpu_seconds is not None:
        wanted.append((resource.RLIMIT_CPU, limits.cpu_seconds))
    if who is not None:
        wanted.append((resource.RLIMIT_NPROC, limits.max_processes))
    clamped = []
    for kind, value in wanted:
        hard = resource.getrlimit(kind)[1]
        clamped.append((kind, value if hard == resource.RLIM_INFINITY else min(value, hard)))
    return clamped


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the process group, SIGKILL after `grace` seconds, then reap the leader."""
    _signal_group(process.pid, signal.SIGTERM)
    with suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


@dataclass(frozen=True)
class Command:
    number: int
    total: int
    command: str
    cwd: Path
    env: Mapping[str, str]

    @property
    def title(self) -> str:
        return f"step {self.number}/{self.total} (RUN {self.command})"


def _exit_text(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name} (exit code {code})"
    return f"failed with exit code {code}"


def _with_tail(message: str, tail: Sequence[str]) -> str:
    if not tail:
        return f"{message}; it printed nothing"
    return f"{message}; its last {len(tail)} lines:\n" + "\n".join(tail)


class Runner:
    """Runs RUN commands with the build's limits, identity and log sink."""

    def __init__(
        self, request: BuildRequest, sink: ProgressSink, who: RunAsIdentity | None
    ) -> None:
        self.limits = request.limits
        self.sink = sink
        self.who = who
        self.rlimits = _rlimits(request, who)
        self.sandbox = request.sandbox
        self.work_dir = request.work_dir

    async def _spawn(self, command: Command) -> asyncio.subprocess.Process:
        sandboxed = self.sandbox.command(
            [SHELL, "-c", command.command], writable=[self.work_dir], cwd=command.cwd
        )
        return await asyncio.create_subprocess_exec(
            *launcher_argv(sandboxed, self.rlimits, self.who, command.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=command.cwd,
            env=dict(command.env),
            start_new_session=True,
            close_fds=True,
            umask=0o022,
        )

    async def _start(self, command: Command) -> asyncio.subprocess.Process:
        """Spawn the command; a cancel that lands while it starts still stops its group."""
        spawn = asyncio.ensure_future(self._spawn(command))
        try:
            return await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with suppress(Exception):
                await _terminate(await spawn, self.limits.kill_grace_seconds)
            raise
        except (OSError, subprocess.SubprocessError) as exc:
            message = f"{command.title} could not start: {exc}"
            raise FailedPrecondition(message, reason="STEP_FAILED") from None

    async def run(self, command: Command) -> None:
        process = await self._start(command)
        batcher = LogBatcher(self.sink, self.limits)
        pumps = self._pumps(process, batcher)
        try:
            await self._supervise(command, process, pumps, batcher)
        except FailedPrecondition:
            raise  # the group was stopped already
        except BaseException:  # cancelled (or a log sink failed): stop the group
            batcher.abandon()
            await _terminate(process, self.limits.kill_grace_seconds)
            raise
        finally:
            if process.returncode is None:  # interrupted while stopping it
                _signal_group(process.pid, signal.SIGKILL)
            for pump in pumps:
                pump.cancel()

    def _pumps(
        self, process: asyncio.subprocess.Process, batcher: LogBatcher
    ) -> list[asyncio.Task[None]]:
        streams = [(process.stdout, STDOUT), (process.stderr, STDERR)]
        max_chars = self.limits.max_log_line_chars
        return [
            asyncio.create_task(pump_lines(reader, kind, batcher, max_chars))
            for reader, kind in streams
            if reader is not None
        ]

    async def _supervise(
        self,
        command: Command,
        process: asyncio.subprocess.Process,
        pumps: list[asyncio.Task[None]],
        batcher: LogBatcher,
    ) -> None:
        try:
            code = await asyncio.wait_for(process.wait(), self.limits.step_timeout_seconds)
        except TimeoutError:
            await _terminate(process, self.limits.kill_grace_seconds)
            await self._drain(pumps, batcher)
            raise self._timed_out(command, batcher) from None
        _signal_group(process.pid, signal.SIGKILL)  # background processes end with the step
        await self._drain(pumps, batcher)
        code = self.sandbox.exit_code(code)
        if code != 0:
            raise self._failed(command, code, batcher)

    async def _drain(self, pumps: list[asyncio.Task[None]], batcher: LogBatcher) -> None:
        """Let the readers reach the end of output (a grace period at most), then flush."""
        if pumps:
            await asyncio.wait(pumps, timeout=self.limits.kill_grace_seconds)
        for pump in pumps:
            error = pump.exception() if pump.done() and not pump.cancelled() else None
            if error is not None:
                raise error
        await batcher.close()

    def _timed_out(self, command: Command, batcher: LogBatcher) -> FailedPrecondition:
        seconds = self.limits.step_timeout_seconds
        message = f"{command.title} timed out after {seconds:g} seconds and was stopped"
        return FailedPrecondition(
            _with_tail(message, list(batcher.tail)),
            reason="STEP_TIMEOUT",
            metadata={"step": str(command.number), "command": command.command},
        )

    def _failed(self, command: Command, code: int, batcher: LogBatcher) -> FailedPrecondition:
        message = f"{command.title} {_exit_text(code)}"
        return FailedPrecondition(
            _with_tail(message, list(batcher.tail)),
            reason="STEP_FAILED",
            metadata={
                "step": str(command.number),
                "command": command.command,
                "exit_code": str(code),
            },
        )
