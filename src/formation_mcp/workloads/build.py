"""The local build engine behind `pack.build`: a Formfile and a staged context become a pack.

A build runs in `work_dir` (a fresh directory handed over to the build and removed at the end,
success or failure): the image root is `work_dir/root`, the Formfile's WORKDIR is
`root/<workdir>`, and `work_dir/tmp` is the steps' TMPDIR.

1. The context is copied into the workdir, as Formation copies a build's artifacts to
   WORKDIR: all of it, or only the INCLUDE paths when there are any (keeping their relative
   paths).
2. Steps run in order. COPY copies from the context (a file, or a directory's contents) to an
   absolute destination (under root) or a relative one (under the workdir); a destination
   ending in `/`, or one that is already a directory, receives the file under its own name.
   ENV (system scope) changes the environment of later RUN steps. RUN executes
   `/bin/sh -c <command>` in the workdir with stdin from /dev/null, a scrubbed environment
   (`PATH`, `HOME` = the workdir, `LANG=C.UTF-8`, `TMPDIR`, then the Formfile's ENV: never the
   server's own variables), a process group of its own (`start_new_session`), rlimits (address
   space, CPU, open files, file size; process count only with `run_as`), and a timeout.
   INSTALL, USER and user/service-scope ENV are recorded in the manifest and reported in
   `BuildResult.not_applied`: the local driver does not apply them.
3. The archive is a deterministic tar.gz of root (sorted, mtime 0, uid/gid 0, no owner names,
   modes 0o755/0o644 by the exec bit, directories 0o755, symbolic links kept as links; other
   special files are left out and logged) plus the manifest `.formation/pack.json` (a
   `.formation` directory made by the steps is replaced). It is written to
   `artifact_dir/<sha256>.tar.gz` atomically, and `artifact_dir/builds/<build_id>.json`
   remembers it, so the same build id again is answered from the cache without running steps.

Errors: a COPY or INCLUDE source missing from the context is INVALID_ARGUMENT before anything
runs; a step that exits non-zero is FAILED_PRECONDITION `STEP_FAILED` naming the step (number
and command), its exit code and its last `tail_lines` lines; a step over its timeout is
stopped (SIGTERM to its process group, SIGKILL after `kill_grace_seconds`) and fails with
`STEP_TIMEOUT`; a cancelled build stops the running group the same way and lets
`asyncio.CancelledError` through. Bad directories are `BUILD_DIR_UNSAFE` (overlapping the
artifact or context directories, `protected_dirs` or the working directory, or not empty) and
`BUILD_DIR_UNREACHABLE` (with `run_as`); `run_as` problems are `RUN_AS_*`.

Output lines (stdout and stderr, read concurrently) are sent as log lines in batches (at most
every `log_flush_seconds` or `log_flush_lines` lines, and at the end of each step); lines of
the driver itself go to the SYSTEM stream. Progress advances with every step.

Safety: every RUN step runs in the sandbox of `sandbox.WorkloadSandbox` (its own namespaces,
seeing only the system's /usr and /etc read-only and this build's directory writable, as
`run_as` or the worker's own non-root user): it cannot see the worker's processes or read the
server's files. Everything the driver writes into root goes through directory descriptors
opened with O_NOFOLLOW and files are replaced by rename, so a link planted by a RUN step can
never redirect a write outside root. When a step's command ends, its sandbox ends with
everything it started (the PID namespace goes with it); on timeout or cancel its process
group is stopped. Rlimits and the user switch are done by the sandbox module's launcher.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import stat
import subprocess
import tarfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol, TypeAlias, TypeVar

from formation.mcp.v1 import operations_pb2

from formation_mcp.errors import FailedPrecondition, FieldViolation, InvalidArgument
from formation_mcp.errors import ResourceExhausted as _ResourceExhausted
from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.formfile import (
    SYSTEM_SCOPE,
    CopyStep,
    EnvStep,
    Formfile,
    InstallStep,
    RunStep,
    Step,
)
from formation_mcp.workloads.sandbox import (
    RunAsIdentity,
    WorkloadSandbox,
    check_reachable,
    launcher_argv,
    run_as_identity,
)
from formation_mcp.workloads.staging import digest_directory

_T = TypeVar("_T")

LogStream: TypeAlias = operations_pb2.LogLine.Stream.ValueType
STDOUT: Final = operations_pb2.LogLine.STDOUT
STDERR: Final = operations_pb2.LogLine.STDERR
SYSTEM: Final = operations_pb2.LogLine.SYSTEM

GIB: Final = 1024**3
PACK_FORMAT: Final = 1
MANIFEST_DIR: Final = ".formation"
MANIFEST_NAME: Final = "pack.json"
DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"
SHELL: Final = "/bin/sh"
NOT_APPLIED_NOTE: Final = (
    "recorded in the pack's manifest but not applied by the local driver"
    " (it installs no packages, creates no users and sets no user or service environment)"
)
_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")
_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK: Final = 64 * 1024


# -- the API -----------------------------------------------------------------------------------


class ProgressSink(Protocol):
    """Where a build reports: `ToolContext` is one."""

    async def progress(self, percent: int, stage: str = "", message: str = "") -> None: ...

    async def log(self, *lines: str, stream: LogStream = ...) -> None: ...


@dataclass(frozen=True)
class BuildLimits:
    step_timeout_seconds: float = 600.0
    max_log_line_chars: int = 4096
    cpu_seconds: int | None = None
    memory_bytes: int | None = None  # address space; None: resources.memory_mb, else default
    default_memory_bytes: int = 4 * GIB
    max_file_bytes: int = 4 * GIB  # RLIMIT_FSIZE: the largest file a step may write
    max_open_files: int = 1024
    max_processes: int = 512  # RLIMIT_NPROC, a per-user count: only applied with run_as
    max_pack_bytes: int = 8 * GIB  # the image root's total size (uncompressed)
    kill_grace_seconds: float = 2.0
    log_flush_seconds: float = 0.1
    log_flush_lines: int = 50
    tail_lines: int = 10

    def address_space_bytes(self, formfile: Formfile) -> int:
        if self.memory_bytes is not None:
            return self.memory_bytes
        if formfile.resources.memory_mb is not None:
            return formfile.resources.memory_mb * 1024 * 1024
        return self.default_memory_bytes


@dataclass(frozen=True)
class BuildRequest:
    owner: str
    formfile: Formfile
    context_root: Path  # staged by formation_mcp.workloads.staging
    work_dir: Path  # fresh, empty or absent, outside the server's directories; removed at the end
    artifact_dir: Path
    sandbox: WorkloadSandbox
    run_as: str | None = None
    context_digest: str = ""  # from staging; "" computes it from context_root
    limits: BuildLimits = field(default_factory=BuildLimits)
    protected_dirs: tuple[Path, ...] = ()  # the server's directories: work_dir stays out


@dataclass(frozen=True)
class BuildResult:
    build_id: str
    digest: str  # sha256 (hex) of the archive
    archive_path: Path
    size_bytes: int
    cached: bool
    not_applied: list[str]
    steps_run: int
    context_digest: str = ""

    @property
    def note(self) -> str:
        """What a caller should be told about `not_applied` ("" when nothing was skipped)."""
        return f"{', '.join(self.not_applied)}: {NOT_APPLIED_NOTE}" if self.not_applied else ""

    def to_output(self) -> dict[str, object]:
        """JSON-ready fields for a tool result (no server paths)."""
        output: dict[str, object] = {
            "build_id": self.build_id,
            "digest": self.digest,
            "size_bytes": self.size_bytes,
            "cached": self.cached,
            "not_applied": list(self.not_applied),
            "steps_run": self.steps_run,
        }
        if self.note:
            output["note"] = self.note
        return output


def build_id_for(owner: str, formfile: Formfile, context_digest: str) -> str:
    """Hex sha256 of the owner, the normalized Formfile and the context digest."""
    payload = {
        "format": PACK_FORMAT,
        "owner": owner,
        "formfile": formfile.normalized_json(),
        "context": context_digest,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def describe_step(step: Step) -> str:
    """A step as a Formfile line: `RUN make`, `COPY a /b`, `INSTALL curl jq`, `USER alice`."""
    if isinstance(step, RunStep):
        return f"RUN {step.command}"
    if isinstance(step, CopyStep):
        return f"COPY {step.source} {step.destination}"
    if isinstance(step, InstallStep):
        return f"INSTALL {' '.join(step.packages)}"
    if isinstance(step, EnvStep):
        scope = "" if step.scope == SYSTEM_SCOPE else f" ({step.scope})"
        return f"ENV {step.key}={step.value}{scope}"
    return f"USER {step.user.username}"


def is_applied(step: Step) -> bool:
    """Whether the local driver carries a step out (else it is only recorded)."""
    if isinstance(step, EnvStep):
        return step.scope == SYSTEM_SCOPE
    return isinstance(step, RunStep | CopyStep)


def not_applied(formfile: Formfile) -> list[str]:
    """The steps the local driver records but does not apply, as `describe_step` lines."""
    return [describe_step(step) for step in formfile.steps if not is_applied(step)]


async def build_pack(request: BuildRequest, context: ProgressSink) -> BuildResult:
    """Build (or find in the cache) the pack for `request`; see the module docs."""
    _check_dirs(request)
    try:
        return await _build_or_reuse(request, context)
    finally:  # on a thread: a big image takes a while to remove, the loop serves calls
        await _in_thread(lambda _abort: _remove_tree(request.work_dir))


# -- directories -------------------------------------------------------------------------------


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def _check_dirs(request: BuildRequest) -> None:
    work = request.work_dir.resolve()
    guarded = [request.artifact_dir, request.context_root, *request.protected_dirs]
    for other in (p.resolve() for p in guarded):
        if _inside(work, other) or _inside(other, work):
            raise _unsafe_dir(f"the build directory {work} overlaps {other}")
    if _inside(Path.cwd().resolve(), work):
        raise _unsafe_dir(f"the build directory {work} holds the server's working directory")
    if work.is_symlink() or (work.exists() and (not work.is_dir() or any(work.iterdir()))):
        raise _unsafe_dir(f"the build directory {work} must be a new, empty directory")


def _unsafe_dir(message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason="BUILD_DIR_UNSAFE")


def _remove_tree(path: Path) -> None:
    def make_writable(_function: object, failed: str, _error: object) -> None:
        with suppress(OSError):  # a step may have left read-only directories behind
            os.chmod(os.path.dirname(failed), 0o700)
            if os.path.isdir(failed) and not os.path.islink(failed):
                os.chmod(failed, 0o700)
                shutil.rmtree(failed, ignore_errors=True)
            else:
                os.unlink(failed)

    if path.is_symlink():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path, onerror=make_writable)


# -- identity and limits -----------------------------------------------------------------------


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


# -- writing into the image without following links --------------------------------------------


class _UnsafeTarget(Exception):
    """A write into the image would go through a link or onto something that is not a file."""


def _parts(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _UnsafeTarget(f"{path!r} has a .. segment")
    return parts


@contextmanager
def _directory(
    base: Path, parts: Sequence[str], owner: RunAsIdentity | None = None, *, create: bool = True
) -> Iterator[int]:
    """A descriptor of base/parts, walked without following links; missing directories are
    created (owned by `owner`) unless `create` is false."""
    fd = os.open(base, _DIR_FLAGS)
    try:
        for depth, part in enumerate(parts):
            created = False
            if create:
                with suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                    created = True
            try:
                inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                where = "/".join(parts[: depth + 1])
                raise _UnsafeTarget(f"{where} is not a plain directory ({exc.strerror})") from None
            os.close(fd)
            fd = inner
            if created:
                _own(fd, 0o755, owner)
        yield fd
    finally:
        os.close(fd)


def _own(fd: int, mode: int, owner: RunAsIdentity | None) -> None:
    os.fchmod(fd, mode)
    if owner is not None:
        os.fchown(fd, owner.uid, owner.gid)


def _lstat_in(base: Path, parts: Sequence[str]) -> os.stat_result | None:
    """lstat of base/parts without following links on the way, or None if it is not there."""
    if not parts:
        return os.lstat(base)
    try:
        with _directory(base, parts[:-1], create=False) as fd:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
    except (OSError, _UnsafeTarget):
        return None


class _Image:
    """The image root: every write goes through directory descriptors (see the module docs)."""

    def __init__(self, root: Path, owner: RunAsIdentity | None) -> None:
        self.root = root
        self.owner = owner

    def ensure_dir(self, parts: Sequence[str]) -> None:
        with _directory(self.root, parts, self.owner):
            pass

    def is_dir(self, parts: Sequence[str]) -> bool:
        info = _lstat_in(self.root, parts)
        return info is not None and stat.S_ISDIR(info.st_mode)

    def write_file(self, parts: Sequence[str], source: IO[bytes], executable: bool) -> None:
        if not parts:
            raise _UnsafeTarget("the image root is a directory, not a file")
        with _directory(self.root, parts[:-1], self.owner) as dir_fd:
            temporary = f".fmcp-{secrets.token_hex(8)}"
            fd = os.open(temporary, _WRITE_FLAGS, 0o600, dir_fd=dir_fd)
            try:
                with os.fdopen(fd, "wb", closefd=False) as target:
                    shutil.copyfileobj(source, target, _CHUNK)
                _own(fd, 0o755 if executable else 0o644, self.owner)
                os.close(fd)
                fd = -1
                os.rename(temporary, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                if fd >= 0:
                    os.close(fd)
                with suppress(OSError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise


def _context_files(context_root: Path, parts: Sequence[str]) -> Iterator[tuple[list[str], Path]]:
    """(parts relative to `parts`, host path) of every regular file at or under context/parts."""
    info = _lstat_in(context_root, parts)
    if info is None:
        raise _UnsafeTarget(f"{'/'.join(parts) or '.'} is not in the build context")
    path = context_root.joinpath(*parts)
    if stat.S_ISREG(info.st_mode):
        yield [], path
        return
    if not stat.S_ISDIR(info.st_mode):
        raise _UnsafeTarget(f"{'/'.join(parts)} in the build context is not a file or directory")
    for directory, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            host = Path(directory, name)
            yield list(host.relative_to(path).parts), host


def _copy_into_image(
    image: _Image, context_root: Path, source: str, dest: list[str], into_dir: bool
) -> int:
    """Copy context/source to dest in the image; returns the number of files copied."""
    parts = _parts(source)
    source_info = _lstat_in(context_root, parts)
    is_file = source_info is not None and stat.S_ISREG(source_info.st_mode)
    if is_file and (into_dir or not dest or image.is_dir(dest)):
        dest = [*dest, parts[-1]]
    elif not is_file:
        image.ensure_dir(dest)
    count = 0
    for relative, host in _context_files(context_root, parts):
        fd = os.open(host, _READ_FLAGS)
        with os.fdopen(fd, "rb") as handle:
            executable = bool(os.fstat(fd).st_mode & 0o111)
            image.write_file([*dest, *relative], handle, executable)
        count += 1
    return count


# -- running a command -------------------------------------------------------------------------


def _decode(raw: bytes, max_chars: int) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    return text if len(text) <= max_chars else text[:max_chars] + " [line truncated]"


class _LogBatcher:
    """Sends output lines in order, in batches: when `max_lines` are waiting, `interval`
    after the first waiting line, and on `close`. Keeps the last lines for error messages."""

    def __init__(self, sink: ProgressSink, limits: BuildLimits) -> None:
        self._sink = sink
        self._interval = limits.log_flush_seconds
        self._max_lines = limits.log_flush_lines
        self._pending: list[tuple[LogStream, str]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.tail: deque[str] = deque(maxlen=limits.tail_lines)
        self._task = asyncio.create_task(self._timer())

    async def add(self, stream: LogStream, line: str) -> None:
        self._pending.append((stream, line))
        self.tail.append(line)
        if len(self._pending) >= self._max_lines:
            await self.flush()
        else:
            self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            for stream, lines in _runs(batch):
                await self._sink.log(*lines, stream=stream)

    async def _timer(self) -> None:
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)
            await self.flush()

    async def close(self) -> None:
        """Stop the timer and send what is waiting."""
        self._closing.set()
        self._wake.set()
        await self._task
        await self.flush()

    def abandon(self) -> None:
        self._task.cancel()


def _runs(batch: list[tuple[LogStream, str]]) -> Iterator[tuple[LogStream, list[str]]]:
    """Consecutive lines of one stream together, in order."""
    current: list[str] = []
    stream: LogStream | None = None
    for line_stream, line in batch:
        if line_stream != stream and current and stream is not None:
            yield stream, current
            current = []
        stream = line_stream
        current.append(line)
    if current and stream is not None:
        yield stream, current


async def _pump(
    reader: asyncio.StreamReader, stream: LogStream, batcher: _LogBatcher, max_chars: int
) -> None:
    """Read `reader` to its end, line by line; an endless line is cut at `max_chars`."""
    buffer = bytearray()
    skipping = False
    max_bytes = 4 * max_chars + 4
    while chunk := await reader.read(_CHUNK):
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if not skipping:
                await batcher.add(stream, _decode(line, max_chars))
            skipping = False
        if len(buffer) > max_bytes:
            if not skipping:
                await batcher.add(stream, _decode(bytes(buffer), max_chars))
            skipping = True
            buffer.clear()
    if buffer and not skipping:
        await batcher.add(stream, _decode(bytes(buffer), max_chars))


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
class _Command:
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


class _Runner:
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

    async def _spawn(self, command: _Command) -> asyncio.subprocess.Process:
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

    async def _start(self, command: _Command) -> asyncio.subprocess.Process:
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

    async def run(self, command: _Command) -> None:
        process = await self._start(command)
        batcher = _LogBatcher(self.sink, self.limits)
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
        self, process: asyncio.subprocess.Process, batcher: _LogBatcher
    ) -> list[asyncio.Task[None]]:
        streams = [(process.stdout, STDOUT), (process.stderr, STDERR)]
        max_chars = self.limits.max_log_line_chars
        return [
            asyncio.create_task(_pump(reader, kind, batcher, max_chars))
            for reader, kind in streams
            if reader is not None
        ]

    async def _supervise(
        self,
        command: _Command,
        process: asyncio.subprocess.Process,
        pumps: list[asyncio.Task[None]],
        batcher: _LogBatcher,
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

    async def _drain(self, pumps: list[asyncio.Task[None]], batcher: _LogBatcher) -> None:
        """Let the readers reach the end of output (a grace period at most), then flush."""
        if pumps:
            await asyncio.wait(pumps, timeout=self.limits.kill_grace_seconds)
        for pump in pumps:
            error = pump.exception() if pump.done() and not pump.cancelled() else None
            if error is not None:
                raise error
        await batcher.close()

    def _timed_out(self, command: _Command, batcher: _LogBatcher) -> FailedPrecondition:
        seconds = self.limits.step_timeout_seconds
        message = f"{command.title} timed out after {seconds:g} seconds and was stopped"
        return FailedPrecondition(
            _with_tail(message, list(batcher.tail)),
            reason="STEP_TIMEOUT",
            metadata={"step": str(command.number), "command": command.command},
        )

    def _failed(self, command: _Command, code: int, batcher: _LogBatcher) -> FailedPrecondition:
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


# -- background work ---------------------------------------------------------------------------


class _Aborted(Exception):
    """Background work was told to stop (its build was cancelled)."""


async def _in_thread(work: Callable[[threading.Event], _T]) -> _T:
    """Run blocking `work` in a thread; on cancellation tell it to stop and wait for it."""
    abort = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(work, abort))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        abort.set()
        with suppress(Exception, asyncio.CancelledError):
            await future
        raise


# -- the archive -------------------------------------------------------------------------------


class _HashingWriter:
    def __init__(self, target: IO[bytes]) -> None:
        self._target = target
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._target.write(data)

    def flush(self) -> None:
        self._target.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _entry(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Archiver:
    """Writes the image root and the manifest as a deterministic tar stream."""

    def __init__(self, tar: tarfile.TarFile, max_bytes: int, abort: threading.Event) -> None:
        self.tar = tar
        self.max_bytes = max_bytes
        self.abort = abort
        self.total = 0
        self.skipped: list[str] = []

    def add_manifest(self, manifest: bytes) -> None:
        self.tar.addfile(_entry(MANIFEST_DIR, tarfile.DIRTYPE, 0o755))
        name = f"{MANIFEST_DIR}/{MANIFEST_NAME}"
        info = _entry(name, tarfile.REGTYPE, 0o644, len(manifest))
        self.tar.addfile(info, _BytesReader(manifest))

    def add_tree(self, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as listing:
            names = sorted(entry.name for entry in listing)
        for name in names:
            if self.abort.is_set():
                raise _Aborted
            if not prefix and name == MANIFEST_DIR:
                continue  # reserved for the manifest
            self._add(dir_fd, name, prefix + name)

    def _add(self, dir_fd: int, name: str, path: str) -> None:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISDIR(info.st_mode):
            self.tar.addfile(_entry(path, tarfile.DIRTYPE, 0o755))
            inner = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                self.add_tree(inner, path + "/")
            finally:
                os.close(inner)
        elif stat.S_ISLNK(info.st_mode):
            link = _entry(path, tarfile.SYMTYPE, 0o777)
            link.linkname = os.readlink(name, dir_fd=dir_fd)
            self.tar.addfile(link)
        elif stat.S_ISREG(info.st_mode):
            self._add_file(dir_fd, name, path)
        else:
            self.skipped.append(path)

    def _add_file(self, dir_fd: int, name: str, path: str) -> None:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                self.skipped.append(path)
                return
            self.total += info.st_size
            if self.total > self.max_bytes:
                raise _ResourceExhausted(
                    f"the built image is larger than max_pack_bytes = {self.max_bytes} bytes",
                    reason="PACK_TOO_LARGE",
                    metadata={"limit": "max_pack_bytes", "limit_value": str(self.max_bytes)},
                )
            mode = 0o755 if info.st_mode & 0o111 else 0o644
            self.tar.addfile(_entry(path, tarfile.REGTYPE, mode, info.st_size), handle)


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk = bytes(self._data[self._offset : end])
        self._offset += len(chunk)
        return chunk


@dataclass(frozen=True)
class _Archive:
    digest: str
    size: int
    path: Path
    skipped: list[str]


def _write_archive(
    root: Path, manifest: bytes, artifact_dir: Path, max_bytes: int, abort: threading.Event
) -> _Archive:
    artifact_dir.mkdir(parents=True, exist_ok=True)
    temporary = artifact_dir / f".pack-{secrets.token_hex(8)}.tmp"
    try:
        with open(temporary, "xb") as raw:
            hashing = _HashingWriter(raw)
            archiver = _write_tar(root, manifest, hashing, max_bytes, abort)
            raw.flush()
            os.fsync(raw.fileno())
        final = artifact_dir / f"{hashing.hexdigest()}.tar.gz"
        os.chmod(temporary, 0o644)
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return _Archive(hashing.hexdigest(), hashing.size, final, archiver.skipped)


def _write_tar(
    root: Path, manifest: bytes, out: _HashingWriter, max_bytes: int, abort: threading.Event
) -> _Archiver:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        archiver = _Archiver(tar, max_bytes, abort)
        archiver.add_manifest(manifest)
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            archiver.add_tree(root_fd, "")
        finally:
            os.close(root_fd)
    return archiver


def _manifest(request: BuildRequest, build_id: str, context_digest: str) -> bytes:
    formfile = request.formfile
    document = {
        "format": PACK_FORMAT,
        "build_id": build_id,
        "context_digest": context_digest,
        "name": formfile.name,
        "formfile": json.loads(formfile.normalized_json()),
        "workdir": formfile.workdir,
        "entrypoint": list(formfile.entrypoint),
        "expose": list(formfile.expose),
        "env": formfile.env,
        "not_applied": not_applied(formfile),
    }
    text = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# -- the cache ---------------------------------------------------------------------------------


def _index_path(artifact_dir: Path, build_id: str) -> Path:
    return artifact_dir / "builds" / f"{build_id}.json"


def _cached(request: BuildRequest, build_id: str, context_digest: str) -> BuildResult | None:
    try:
        record = json.loads(_index_path(request.artifact_dir, build_id).read_text("utf-8"))
        digest, size = record["digest"], record["size_bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest):
        return None
    archive = request.artifact_dir / f"{digest}.tar.gz"
    with suppress(OSError):
        if archive.stat().st_size == size:
            return BuildResult(
                build_id=build_id,
                digest=digest,
                archive_path=archive,
                size_bytes=size,
                cached=True,
                not_applied=not_applied(request.formfile),
                steps_run=0,
                context_digest=context_digest,
            )
    return None


def _remember(artifact_dir: Path, result: BuildResult) -> None:
    index = _index_path(artifact_dir, result.build_id)
    index.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "build_id": result.build_id,
        "digest": result.digest,
        "size_bytes": result.size_bytes,
        "context_digest": result.context_digest,
        "not_applied": result.not_applied,
        "steps_run": result.steps_run,
    }
    temporary = index.with_name(f".{index.name}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(json.dumps(record, sort_keys=True) + "\n", "utf-8")
    os.replace(temporary, index)


# -- the build ---------------------------------------------------------------------------------


async def _build_or_reuse(request: BuildRequest, sink: ProgressSink) -> BuildResult:
    context_digest = request.context_digest or (
        await _in_thread(lambda _abort: digest_directory(request.context_root).digest)
    )
    build_id = build_id_for(request.owner, request.formfile, context_digest)
    cached = _cached(request, build_id, context_digest)
    if cached is not None:
        await sink.progress(100, "done", f"pack {build_id} was already built; reused")
        return cached
    _check_sources(request)
    who = run_as_identity(request.run_as)
    await request.sandbox.check(who)
    build = _Build(request, sink, who, build_id, context_digest)
    return await build.run()


def _check_sources(request: BuildRequest) -> None:
    """Every INCLUDE and COPY source must be in the context, before anything runs."""
    formfile = request.formfile
    wanted = [(f"formfile.include[{i}]", path) for i, path in enumerate(formfile.includes)]
    wanted += [
        (f"formfile.steps[{i}].copy.from", step.source)
        for i, step in enumerate(formfile.steps)
        if isinstance(step, CopyStep)
    ]
    violations = []
    for where, source in wanted:
        try:
            info = _lstat_in(request.context_root, _parts(source))
        except _UnsafeTarget as exc:
            violations.append(FieldViolation(where, str(exc), "CONTEXT_PATH_MISSING"))
            continue
        if info is None or not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            description = f"{source!r} is not in the build context; add it or fix the path"
            violations.append(FieldViolation(where, description, "CONTEXT_PATH_MISSING"))
    if violations:
        first = violations[0]
        raise InvalidArgument(
            f"{first.field}: {first.description}",
            reason="CONTEXT_PATH_MISSING",
            metadata={"field": first.field},
            field_violations=violations,
        )


class _Build:
    def __init__(
        self,
        request: BuildRequest,
        sink: ProgressSink,
        who: RunAsIdentity | None,
        build_id: str,
        context_digest: str,
    ) -> None:
        self.request = request
        self.sink = sink
        self.who = who
        self.build_id = build_id
        self.context_digest = context_digest
        self.root = request.work_dir / "root"
        self.workdir_parts = _parts(request.formfile.workdir)
        self.image = _Image(self.root, who)
        self.env = self._base_env()
        self.total = len(request.formfile.steps)
        self.steps_run = 0

    @property
    def workdir(self) -> Path:
        return self.root.joinpath(*self.workdir_parts)

    def _base_env(self) -> dict[str, str]:
        return {
            "PATH": DEFAULT_PATH,
            "HOME": str(self.root.joinpath(*self.workdir_parts)),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.request.work_dir / "tmp"),
        }

    def _percent(self, done: int) -> int:
        return min(95, 5 + (90 * done) // max(1, self.total))

    async def run(self) -> BuildResult:
        await self.sink.progress(1, "prepare", "preparing the build directory")
        await _in_thread(lambda _abort: self._prepare())
        await self._include()
        for number, step in enumerate(self.request.formfile.steps, start=1):
            self._check_cancelled()
            await self._step(number, step)
            await self.sink.progress(self._percent(number), "build", f"step {number} done")
        await self.sink.progress(96, "archive", "writing the pack archive")
        return await self._archive()

    def _check_cancelled(self) -> None:
        if isinstance(self.sink, ToolContext):
            self.sink.check_cancelled()

    def _prepare(self) -> None:
        work = self.request.work_dir
        work.mkdir(mode=0o711, parents=True, exist_ok=True)
        os.chmod(work, 0o711)
        for path in (self.root, work / "tmp"):
            path.mkdir(mode=0o755)
            if self.who is not None:
                os.chown(path, self.who.uid, self.who.gid)
        os.chmod(work / "tmp", 0o700)
        self.image.ensure_dir(self.workdir_parts)
        if self.who is not None:
            check_reachable(self.workdir, self.who)

    async def _include(self) -> None:
        """The INCLUDE paths, or the whole context when there are none, into the workdir."""
        if not self.request.context_root.is_dir():
            return  # an empty context
        for source in self.request.formfile.includes or (".",):
            dest = [*self.workdir_parts, *_parts(source)]
            count = await self._copy(f"INCLUDE {source}", source, dest, into_dir=False)
            label = f"INCLUDE {source}" if self.request.formfile.includes else "the context"
            await self.sink.log(f"{label}: {count} files copied to the workdir", stream=SYSTEM)

    async def _copy(self, title: str, source: str, dest: list[str], into_dir: bool) -> int:
        context_root = self.request.context_root

        def work(_abort: threading.Event) -> int:
            return _copy_into_image(self.image, context_root, source, dest, into_dir)

        try:
            return await _in_thread(work)
        except (_UnsafeTarget, OSError) as exc:
            raise FailedPrecondition(
                f"{title} failed: {exc}", reason="STEP_FAILED", metadata={"step": title}
            ) from None

    async def _step(self, number: int, step: Step) -> None:
        title = f"step {number}/{self.total}"
        described = describe_step(step)
        if not is_applied(step):
            await self.sink.log(f"{title}: {described}: {NOT_APPLIED_NOTE}", stream=SYSTEM)
            return
        await self.sink.progress(self._percent(number - 1), "build", f"{title}: {described}")
        await self.sink.log(f"{title}: {described}", stream=SYSTEM)
        if isinstance(step, RunStep):
            await self._run(number, step)
        elif isinstance(step, CopyStep):
            await self._copy_step(number, step)
        elif isinstance(step, EnvStep):
            self.env[step.key] = step.value
        self.steps_run += 1

    async def _copy_step(self, number: int, step: CopyStep) -> None:
        absolute = step.destination.startswith("/")
        dest = _parts(step.destination)
        if not absolute:
            dest = [*self.workdir_parts, *dest]
        into_dir = step.destination.endswith("/")
        title = f"step {number}/{self.total} (COPY {step.source} {step.destination})"
        await self._copy(title, step.source, dest, into_dir)

    async def _run(self, number: int, step: RunStep) -> None:
        try:
            self.image.ensure_dir(self.workdir_parts)
        except _UnsafeTarget as exc:
            title = f"step {number}/{self.total} (RUN {step.command})"
            message = f"{title} cannot start: the workdir is unusable: {exc}"
            raise FailedPrecondition(message, reason="STEP_FAILED") from None
        command = _Command(number, self.total, step.command, self.workdir, dict(self.env))
        await _Runner(self.request, self.sink, self.who).run(command)

    async def _archive(self) -> BuildResult:
        request = self.request
        manifest = _manifest(request, self.build_id, self.context_digest)
        max_bytes = request.limits.max_pack_bytes

        def work(abort: threading.Event) -> _Archive:
            return _write_archive(self.root, manifest, request.artifact_dir, max_bytes, abort)

        archive = await _in_thread(work)
        if archive.skipped:
            skipped = ", ".join(archive.skipped[:20])
            await self.sink.log(f"left out of the pack (special files): {skipped}", stream=SYSTEM)
        result = BuildResult(
            build_id=self.build_id,
            digest=archive.digest,
            archive_path=archive.path,
            size_bytes=archive.size,
            cached=False,
            not_applied=not_applied(request.formfile),
            steps_run=self.steps_run,
            context_digest=self.context_digest,
        )
        _remember(request.artifact_dir, result)
        await self.sink.log(f"pack {archive.digest} ({archive.size} bytes)", stream=SYSTEM)
        await self.sink.progress(100, "done", f"pack {self.build_id} built")
        return result
