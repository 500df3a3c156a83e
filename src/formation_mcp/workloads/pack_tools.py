"""The `pack.build` tool: a Formfile and its build context become a content-addressed pack.

The call is checked before anything is queued (schema, then the Formfile's own grammar); the
build runs on a worker (long-running), streams every output line, and a second identical
build is done at once from the cache. The CPU- and disk-heavy parts (parsing, decoding,
staging) run on threads, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formation_mcp.db.database import Database
from formation_mcp.errors import FieldViolation, InvalidArgument
from formation_mcp.events.model import PACK_BUILD_FAILED, PACK_BUILT, Severity
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.identity import Caller
from formation_mcp.offload import CONTEXT_STAGING
from formation_mcp.policies.quotas import Demand
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec
from formation_mcp.workloads.build import (
    BuildLimits,
    BuildRequest,
    BuildResult,
    build_id_for,
    build_pack,
    not_applied,
)
from formation_mcp.workloads.formfile import (
    Formfile,
    FormfileError,
    parse_formfile,
    parse_formfile_document,
)
from formation_mcp.workloads.packs import PackRecord, PackStore
from formation_mcp.workloads.sandbox import WorkloadSandbox
from formation_mcp.workloads.staging import (
    ContextDigest,
    StagingLimits,
    stage_files,
    stage_tar_gz,
)

MAX_FORMFILE_CHARS = 65_536
MAX_TAR_GZ_BASE64_CHARS = 96 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WorkloadEnvironment:
    """What the workload tools need from the process that runs them (a worker)."""

    database: Database
    artifact_dir: Path
    work_dir: Path
    run_as: str | None
    step_timeout_seconds: float
    node_id: str
    sandbox: WorkloadSandbox
    events: NodeEvents | None = None
    """Where this node reports its events (none: they are not reported)."""


PACK_BUILD_INPUT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "formfile": {
            "type": ["string", "object"],
            "minLength": 1,
            "maxLength": MAX_FORMFILE_CHARS,
            "minProperties": 1,
            "maxProperties": 64,
            "description": "The Formfile: a string in Formation's text form (NAME, RUN, COPY, "
            "...) or the JSON/YAML document, or the document itself as a JSON object (name, "
            "run, include, env, expose, entrypoint, resources).",
        },
        "context_files": {
            "type": "object",
            "maxProperties": 2000,
            "additionalProperties": {"type": "string"},
            "description": "The build context as relative path -> UTF-8 file content.",
        },
        "context_tar_gz": {
            "type": "string",
            "maxLength": MAX_TAR_GZ_BASE64_CHARS,
            "contentEncoding": "base64",
            "description": "The build context as a base64 .tar.gz (regular files and "
            "directories only).",
        },
    },
    "required": ["formfile"],
    "not": {"required": ["context_files", "context_tar_gz"]},
    "additionalProperties": False,
}

PACK_BUILD_OUTPUT: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "build_id": {"type": "string", "description": "The pack's id (use it to ship)."},
        "name": {"type": "string"},
        "digest": {"type": "string", "description": "sha256 of the pack archive."},
        "size_bytes": {"type": "integer"},
        "cached": {"type": "boolean", "description": "True when an identical build existed."},
        "not_applied": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Formfile directives recorded in the pack but not applied by the "
            "local driver (INSTALL, USER, user/service ENV, NETWORK settings).",
        },
        "steps_run": {"type": "integer"},
        "note": {"type": "string", "description": "Present when something was not applied."},
    },
    "required": ["build_id", "name", "digest", "size_bytes", "cached", "not_applied"],
}


def _formfile(arguments: dict[str, Any]) -> Formfile:
    value = arguments["formfile"]
    try:
        if isinstance(value, dict):  # the document form, sent as an object
            if len(json.dumps(value)) > MAX_FORMFILE_CHARS:
                raise InvalidArgument.for_field(
                    "arguments.formfile",
                    f"the Formfile document is over {MAX_FORMFILE_CHARS} characters as JSON",
                )
            return parse_formfile_document(value)
        return parse_formfile(value)
    except FormfileError as error:
        violations = [
            FieldViolation(field, description)
            for field, description in error.field_violations("arguments.formfile")
        ]
        raise InvalidArgument(
            f"the Formfile is not valid: {error.problems[0]}"  # `line 7: ...` or `env.X: ...`
            + (f" (and {len(violations) - 1} more)" if len(violations) > 1 else ""),
            reason="FORMFILE_INVALID",
            field_violations=violations,
        ) from None


def _tar_gz(arguments: dict[str, Any]) -> bytes | None:
    text = arguments.get("context_tar_gz")
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidArgument.for_field(
            "arguments.context_tar_gz", "not valid base64 (standard alphabet, with padding)"
        ) from None


def precheck_pack_build(arguments: dict[str, Any]) -> None:
    """At CallTool time (on the `offload.ARGUMENT_CHECKS` threads: see `tools.checks`)."""
    _decoded(arguments)


# The worker's share runs on the `offload.CONTEXT_STAGING` threads: decoding, staging and
# removing a context of megabytes and thousands of files would hold up the event loop (on the
# embedded default the API's too) for as long.


def _decoded(arguments: dict[str, Any]) -> tuple[Formfile, bytes | None]:
    return _formfile(arguments), _tar_gz(arguments)


def _stage(arguments: dict[str, Any], archive: bytes | None, root: Path) -> ContextDigest:
    if archive is not None:
        return stage_tar_gz(archive, root, StagingLimits())
    return stage_files(arguments.get("context_files", {}), root, StagingLimits())


def _remove(scratch: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(scratch)


class PackBuilder:
    def __init__(self, environment: WorkloadEnvironment) -> None:
        self._env = environment
        self._packs = PackStore(environment.database)

    async def __call__(self, context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
        formfile, archive = await CONTEXT_STAGING.run(_decoded, arguments)
        scratch = self._env.work_dir / "builds" / uuid.uuid4().hex
        try:
            staged = scratch / "context"
            await context.progress(1, "staging", "Staging the build context.")
            digest = await CONTEXT_STAGING.run(_stage, arguments, archive, staged)
            build_id = build_id_for(context.owner, formfile, str(digest))
            if (cached := await self._cached(build_id, context.owner)) is not None:
                await context.progress(100, "done", "An identical pack exists: reused.")
                return cached
            try:
                result = await self._build(context, formfile, staged, scratch, str(digest))
            except Exception as exc:
                self._report(
                    context,
                    build_id,
                    PACK_BUILD_FAILED,
                    Severity.ERROR,
                    f"pack {formfile.name} failed to build: "
                    + (getattr(exc, "message", None) or str(exc) or type(exc).__name__),
                    name=formfile.name,
                )
                raise
            await self._packs.add(
                PackRecord(
                    build_id=result.build_id,
                    owner=context.owner,
                    name=formfile.name,
                    digest=result.digest,
                    size_bytes=result.size_bytes,
                    formfile=formfile.normalized_json(),
                    node=self._env.node_id,
                )
            )
            self._report(
                context,
                result.build_id,
                PACK_BUILT,
                Severity.INFO,
                f"pack {formfile.name} built ({result.size_bytes} bytes, {result.steps_run} steps)",
                name=formfile.name,
                digest=result.digest,
                size_bytes=result.size_bytes,
            )
            return {"name": formfile.name, **result.to_output()}
        finally:
            await CONTEXT_STAGING.run(_remove, scratch)

    async def _build(
        self, context: ToolContext, formfile: Formfile, staged: Path, scratch: Path, digest: str
    ) -> BuildResult:
        return await build_pack(
            BuildRequest(
                owner=context.owner,
                formfile=formfile,
                context_root=staged,
                work_dir=scratch / "build",
                artifact_dir=self._env.artifact_dir,
                sandbox=self._env.sandbox,
                run_as=self._env.run_as or None,
                context_digest=digest,
                limits=BuildLimits(step_timeout_seconds=self._env.step_timeout_seconds),
            ),
            context,
        )

    def _report(
        self,
        context: ToolContext,
        build_id: str,
        kind: str,
        severity: Severity,
        message: str,
        **data: Any,
    ) -> None:
        if self._env.events is None:
            return
        try:
            self._env.events.report(
                kind,
                f"packs/{build_id}",
                context.owner,
                severity,
                message,
                operation=context.operation,
                **data,
            )
        except OSError:
            return  # the build's own outcome is in its operation

    async def _cached(self, build_id: str, owner: str) -> dict[str, Any] | None:
        pack = await self._packs.find(build_id, owner)
        archive = None if pack is None else self._env.artifact_dir / pack.archive_name
        if pack is None or archive is None or not archive.exists():
            return None
        cached = BuildResult(
            build_id=build_id,
            digest=pack.digest,
            archive_path=archive,
            size_bytes=pack.size_bytes,
            cached=True,
            not_applied=not_applied(parse_formfile(pack.formfile)),
            steps_run=0,
        )
        return {"name": pack.name, **cached.to_output()}


async def build_demand(_caller: Caller, _arguments: dict[str, Any]) -> Demand:
    """Every pack.build call counts as a build (max_builds_per_hour), cached or not."""
    return Demand(build=True)


def register(registry: ToolRegistry, environment: WorkloadEnvironment) -> None:
    registry.register(
        ToolSpec(
            name="pack.build",
            title="Build a pack",
            description=(
                "Build a workload pack from a Formfile and its build context: stage the files, "
                "run the RUN/COPY/ENV/WORKDIR steps (each output line is streamed as a log "
                "line), and store a content-addressed archive. Returns the build_id to ship. "
                "An identical build (same owner, Formfile and context) is reused at once."
            ),
            version="1.0.0",
            category="pack",
            input_schema=PACK_BUILD_INPUT,
            output_schema=PACK_BUILD_OUTPUT,
            idempotent=True,
            long_running=True,
            aliases=("form_pack_build",),
            precheck=precheck_pack_build,
            demand=build_demand,
        ),
        PackBuilder(environment),
    )
