"""The local build engine behind `pack.build`: a Formfile and a staged context become a pack.

A build runs in `work_dir` (a fresh directory handed over to the build and removed at the end,
success or failure): the image root is `work_dir/root`, the Formfile's WORKDIR is
`root/<workdir>`, and `work_dir/tmp` is the steps' TMPDIR.

1. The context is copied into the workdir, as Formation copies a build's artifacts to
   WORKDIR: all of it, or only the INCLUDE paths when there are any (keeping their relative
   paths).
2. Steps run in order: COPY from the context into the image, ENV (system scope) into the
   environment of later RUN steps, RUN as `/bin/sh -c <command>` in the sandbox with a
   scrubbed environment, rlimits and a timeout. INSTALL, USER and user/service-scope ENV are
   recorded in the manifest and reported in `BuildResult.not_applied`: the local driver does
   not apply them.
3. The archive is a deterministic tar.gz of root plus the manifest `.formation/pack.json`,
   written to `artifact_dir/<sha256>.tar.gz`; `artifact_dir/builds/<build_id>.json`
   remembers it, so the same build id again is answered from the cache without running steps.

Errors: a COPY or INCLUDE source missing from the context is INVALID_ARGUMENT before anything
runs; a failed step is FAILED_PRECONDITION `STEP_FAILED` and a step over its timeout
`STEP_TIMEOUT`; a cancelled build stops the running step and lets `asyncio.CancelledError`
through. Bad directories are `BUILD_DIR_UNSAFE` and `BUILD_DIR_UNREACHABLE` (with `run_as`);
`run_as` problems are `RUN_AS_*`.

Safety: every RUN step runs in the sandbox of `sandbox.WorkloadSandbox` (its own namespaces,
seeing only the system's /usr and /etc read-only and this build's directory writable, as
`run_as` or the worker's own non-root user): it cannot see the worker's processes or read the
server's files. Everything the driver writes into root goes through directory descriptors
opened with O_NOFOLLOW, so a link planted by a RUN step can never redirect a write outside
root.

The modules: `request` (what a build takes and gives), `steps` (which steps are applied),
`engine` (a build from start to end), `directories` (the build directory), `image` (writing
into the image root), `runner` and `output` (a RUN step and its output), `background`
(blocking work on a thread), `archive` (the pack) and `cache` (packs by build id).
"""

from formation_mcp.workloads.build.archive import MANIFEST_DIR, MANIFEST_NAME
from formation_mcp.workloads.build.engine import DEFAULT_PATH, build_pack
from formation_mcp.workloads.build.request import (
    GIB,
    PACK_FORMAT,
    STDERR,
    STDOUT,
    SYSTEM,
    BuildLimits,
    BuildRequest,
    BuildResult,
    LogStream,
    ProgressSink,
    build_id_for,
)
from formation_mcp.workloads.build.runner import SHELL
from formation_mcp.workloads.build.steps import (
    NOT_APPLIED_NOTE,
    describe_step,
    is_applied,
    not_applied,
)

__all__ = [
    "DEFAULT_PATH",
    "GIB",
    "MANIFEST_DIR",
    "MANIFEST_NAME",
    "NOT_APPLIED_NOTE",
    "PACK_FORMAT",
    "SHELL",
    "STDERR",
    "STDOUT",
    "SYSTEM",
    "BuildLimits",
    "BuildRequest",
    "BuildResult",
    "LogStream",
    "ProgressSink",
    "build_id_for",
    "build_pack",
    "describe_step",
    "is_applied",
    "not_applied",
]
