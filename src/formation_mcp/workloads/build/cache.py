"""Built packs remembered by build id: `artifact_dir/builds/<build_id>.json`.

The record names the archive by digest; a build id whose record and archive (of the recorded
size) are both there is answered without running any step.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from contextlib import suppress
from pathlib import Path
from typing import Final

from formation_mcp.workloads.build.request import BuildRequest, BuildResult
from formation_mcp.workloads.build.steps import not_applied

_HEX_DIGEST: Final = re.compile(r"[0-9a-f]{64}")


def _index_path(artifact_dir: Path, build_id: str) -> Path:
    return artifact_dir / "builds" / f"{build_id}.json"


def cached_result(request: BuildRequest, build_id: str, context_digest: str) -> BuildResult | None:
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


def remember(artifact_dir: Path, result: BuildResult) -> None:
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
