"""What a build takes and gives: `BuildRequest`, `BuildLimits`, `BuildResult`, the build id.

The build id (`build_id_for`) is the hex sha256 of the owner, the normalized Formfile and the
context digest: the same inputs again are answered from the cache (`cache`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, TypeAlias

from formation.mcp.v1 import operations_pb2

from formation_mcp.workloads.build.steps import NOT_APPLIED_NOTE
from formation_mcp.workloads.formfile import Formfile
from formation_mcp.workloads.sandbox import WorkloadSandbox

LogStream: TypeAlias = operations_pb2.LogLine.Stream.ValueType
STDOUT: Final = operations_pb2.LogLine.STDOUT
STDERR: Final = operations_pb2.LogLine.STDERR
SYSTEM: Final = operations_pb2.LogLine.SYSTEM

GIB: Final = 1024**3
PACK_FORMAT: Final = 1


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
