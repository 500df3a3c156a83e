"""A build from start to end: check, reuse or prepare, include, run the steps, archive.

The image root is `work_dir/root`, the Formfile's WORKDIR is `root/<workdir>`, and
`work_dir/tmp` is the steps' TMPDIR. The context is copied into the workdir first (all of it,
or only the INCLUDE paths when there are any); then the steps run in order: COPY into the
image (an absolute destination under root, a relative one under the workdir; one ending in
`/` receives the file under its own name), ENV (system scope) into the environment of later
RUN steps, RUN in the sandbox (`runner`). RUN steps get a scrubbed environment: `PATH`,
`HOME` = the workdir, `LANG=C.UTF-8`, `TMPDIR`, then the Formfile's ENV, never the server's
own variables. A COPY or INCLUDE source missing from the context is INVALID_ARGUMENT
`CONTEXT_PATH_MISSING` before anything runs. Progress advances with every step; lines of the
driver itself go to the SYSTEM stream.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Final

from formation_mcp.errors import FailedPrecondition, FieldViolation, InvalidArgument
from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.build.archive import Archive, manifest_bytes, write_archive
from formation_mcp.workloads.build.background import in_thread
from formation_mcp.workloads.build.cache import cached_result, remember
from formation_mcp.workloads.build.directories import check_dirs, remove_tree
from formation_mcp.workloads.build.image import (
    Image,
    UnsafeTarget,
    copy_into_image,
    lstat_in,
    path_parts,
)
from formation_mcp.workloads.build.request import (
    SYSTEM,
    BuildRequest,
    BuildResult,
    ProgressSink,
    build_id_for,
)
from formation_mcp.workloads.build.runner import Command, Runner
from formation_mcp.workloads.build.steps import (
    NOT_APPLIED_NOTE,
    describe_step,
    is_applied,
    not_applied,
)
from formation_mcp.workloads.formfile import CopyStep, EnvStep, RunStep, Step
from formation_mcp.workloads.sandbox import RunAsIdentity, check_reachable, run_as_identity
from formation_mcp.workloads.staging import digest_directory

DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"


async def build_pack(request: BuildRequest, context: ProgressSink) -> BuildResult:
    """Build (or find in the cache) the pack for `request`; see the module docs."""
    check_dirs(request)
    try:
        return await _build_or_reuse(request, context)
    finally:  # on a thread: a big image takes a while to remove, the loop serves calls
        await in_thread(lambda _abort: remove_tree(request.work_dir))


async def _build_or_reuse(request: BuildRequest, sink: ProgressSink) -> BuildResult:
    context_digest = request.context_digest or (
        await in_thread(lambda _abort: digest_directory(request.context_root).digest)
    )
    build_id = build_id_for(request.owner, request.formfile, context_digest)
    cached = cached_result(request, build_id, context_digest)
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
            info = lstat_in(request.context_root, path_parts(source))
        except UnsafeTarget as exc:
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
        self.workdir_parts = path_parts(request.formfile.workdir)
        self.image = Image(self.root, who)
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
        await in_thread(lambda _abort: self._prepare())
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
            dest = [*self.workdir_parts, *path_parts(source)]
            count = await self._copy(f"INCLUDE {source}", source, dest, into_dir=False)
            label = f"INCLUDE {source}" if self.request.formfile.includes else "the context"
            await self.sink.log(f"{label}: {count} files copied to the workdir", stream=SYSTEM)

    async def _copy(self, title: str, source: str, dest: list[str], into_dir: bool) -> int:
        context_root = self.request.context_root

        def work(_abort: threading.Event) -> int:
            return copy_into_image(self.image, context_root, source, dest, into_dir)

        try:
            return await in_thread(work)
        except (UnsafeTarget, OSError) as exc:
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
        dest = path_parts(step.destination)
        if not absolute:
            dest = [*self.workdir_parts, *dest]
        into_dir = step.destination.endswith("/")
        title = f"step {number}/{self.total} (COPY {step.source} {step.destination})"
        await self._copy(title, step.source, dest, into_dir)

    async def _run(self, number: int, step: RunStep) -> None:
        try:
            self.image.ensure_dir(self.workdir_parts)
        except UnsafeTarget as exc:
            title = f"step {number}/{self.total} (RUN {step.command})"
            message = f"{title} cannot start: the workdir is unusable: {exc}"
            raise FailedPrecondition(message, reason="STEP_FAILED") from None
        command = Command(number, self.total, step.command, self.workdir, dict(self.env))
        await Runner(self.request, self.sink, self.who).run(command)

    async def _archive(self) -> BuildResult:
        request = self.request
        manifest = manifest_bytes(request, self.build_id, self.context_digest)
        max_bytes = request.limits.max_pack_bytes

        def work(abort: threading.Event) -> Archive:
            return write_archive(self.root, manifest, request.artifact_dir, max_bytes, abort)

        archive = await in_thread(work)
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
        remember(request.artifact_dir, result)
        await self.sink.log(f"pack {archive.digest} ({archive.size} bytes)", stream=SYSTEM)
        await self.sink.progress(100, "done", f"pack {self.build_id} built")
        return result
