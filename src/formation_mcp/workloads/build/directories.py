"""The build directory: checked before a build, removed after it.

`work_dir` must be new or empty, and overlap neither the artifact or context directories,
`protected_dirs`, nor the server's working directory (else `BUILD_DIR_UNSAFE`). It is
removed at the end, success or failure, read-only directories left by a step included.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from pathlib import Path

from formation_mcp.errors import FailedPrecondition
from formation_mcp.workloads.build.request import BuildRequest


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_dirs(request: BuildRequest) -> None:
    """Refuse a `work_dir` that is not a new, empty directory of its own (see the module docs)."""
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


def remove_tree(path: Path) -> None:
    """Remove `path` (a link: only the link), read-only directories left inside included."""

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
