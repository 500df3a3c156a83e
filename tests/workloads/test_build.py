"""The local build engine: steps, logs, progress, failures, timeouts, cancel, cache, archives."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pwd
import re
import tarfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from tests.support.workloads import WORKLOAD_USER

from formation_mcp.errors import FailedPrecondition, InvalidArgument
from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.build import (
    BuildLimits,
    BuildRequest,
    BuildResult,
    build_id_for,
    build_pack,
)
from formation_mcp.workloads.formfile import Formfile, RunStep, parse_formfile
from formation_mcp.workloads.sandbox import WorkloadSandbox
from formation_mcp.workloads.staging import stage_files

STDOUT = operations_pb2.LogLine.STDOUT
STDERR = operations_pb2.LogLine.STDERR
SYSTEM = operations_pb2.LogLine.SYSTEM

APP_PY = """\
import os
import pathlib

pathlib.Path("out.txt").write_text("written by app\\n")
for i in range(3):
    print(f"line {i}", flush=True)
print("greeting=" + os.environ["GREETING"])
print("secret=" + os.environ.get("FMCP_SECRET", "<unset>"))
"""

APP_FORMFILE = """\
NAME tiny-app
WORKDIR /srv/app
INCLUDE app.py lib
ENV GREETING=hello world
RUN python3 app.py
RUN echo "$GREETING" > greeting.txt && echo "home=$HOME" && echo to-stderr >&2 && echo after
COPY data/config.txt /etc/app/config.txt
COPY data conf
COPY data/config.txt conf2/
INSTALL curl jq
USER username:alice
ENV --scope=user:alice EDITOR=vim
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080
"""

APP_CONTEXT: dict[str, str | bytes] = {
    "app.py": APP_PY,
    "lib/util.py": "X = 1\n",
    "data/config.txt": "port=8080\n",
    "data/nested/x.txt": "nested\n",
    "unused.txt": "not included\n",
}


@dataclass
class RecordingSink:
    """A ProgressSink that remembers everything, in order."""

    progress_calls: list[tuple[int, str, str]] = field(default_factory=list)
    log_calls: list[tuple[int, list[str]]] = field(default_factory=list)
    watch: str | None = None
    watch_stream: int = STDOUT
    seen: asyncio.Event = field(default_factory=asyncio.Event)

    async def progress(self, percent: int, stage: str = "", message: str = "") -> None:
        self.progress_calls.append((percent, stage, message))

    async def log(self, *lines: str, stream: int = STDOUT) -> None:
        self.log_calls.append((stream, list(lines)))
        if stream == self.watch_stream and self.watch and any(self.watch in x for x in lines):
            self.seen.set()

    def lines(self, stream: int) -> list[str]:
        return [line for kind, lines in self.log_calls if kind == stream for line in lines]


class Builds:
    """Requests over one artifact directory, each with a fresh context and work dir, built in
    the sandbox as the workload user (as pack.build does)."""

    def __init__(self, base: Path, sandbox: WorkloadSandbox | None = None) -> None:
        self.base = base
        self.artifact_dir = base / "artifacts"
        self.sandbox = sandbox or WorkloadSandbox(unsafe=False)

    def request(
        self,
        formfile: str | Formfile,
        files: dict[str, str | bytes] | None = None,
        *,
        owner: str = "alice",
        **overrides: Any,
    ) -> BuildRequest:
        name = uuid.uuid4().hex[:8]
        staged = stage_files(files or {}, self.base / f"context-{name}")
        parsed = parse_formfile(formfile) if isinstance(formfile, str) else formfile
        request = BuildRequest(
            owner=owner,
            formfile=parsed,
            context_root=self.base / f"context-{name}",
            work_dir=self.base / f"work-{name}",
            artifact_dir=self.artifact_dir,
            sandbox=self.sandbox,
            run_as=WORKLOAD_USER,
            context_digest=staged.digest,
        )
        return replace(request, **overrides)


@pytest.fixture
def builds(shared_dir: Path, sandbox: WorkloadSandbox) -> Builds:
    return Builds(shared_dir, sandbox)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {info.name: info for info in tar.getmembers()}


def read_member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def steps(*commands: str, name: str = "steps") -> Formfile:
    return Formfile(name=name, steps=tuple(RunStep(c) for c in commands))


def host_processes_with(marker: str) -> list[int]:
    """Pids (as the host sees them) of processes whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def wait_processes_gone(marker: str, deadline: float = 15.0) -> None:
    """Until no process on the host runs a command holding `marker`."""
    end = time.monotonic() + deadline
    while found := host_processes_with(marker):
        assert time.monotonic() < end, f"processes {found} running {marker!r} are still alive"
        await asyncio.sleep(0.05)


def unique_sleep() -> str:
    """A `sleep` command no other process runs: its processes can be found on the host."""
    return f"sleep 30.{uuid.uuid4().int % 10**9:09d}"


# -- a whole build -----------------------------------------------------------------------------


async def test_app_build_produces_the_pack(builds: Builds, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMCP_SECRET", "hunter2")
    request = builds.request(APP_FORMFILE, APP_CONTEXT)
    sink = RecordingSink()

    result = await build_pack(request, sink)

    assert not result.cached
    assert result.steps_run == 6  # ENV, 2 RUN, 3 COPY; INSTALL, USER, scoped ENV recorded
    assert result.not_applied == ["INSTALL curl jq", "USER alice", "ENV EDITOR=vim (user:alice)"]
    assert "not applied by the local driver" in result.note
    assert result.to_output()["not_applied"] == result.not_applied
    assert result.archive_path == builds.artifact_dir / f"{result.digest}.tar.gz"
    data = result.archive_path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == result.digest
    assert len(data) == result.size_bytes
    assert not request.work_dir.exists()

    found = members(result.archive_path)
    expected_files = {
        "srv/app/app.py": APP_PY.encode(),
        "srv/app/lib/util.py": b"X = 1\n",
        "srv/app/out.txt": b"written by app\n",
        "srv/app/greeting.txt": b"hello world\n",
        "etc/app/config.txt": b"port=8080\n",
        "srv/app/conf/config.txt": b"port=8080\n",
        "srv/app/conf/nested/x.txt": b"nested\n",
        "srv/app/conf2/config.txt": b"port=8080\n",
    }
    for name, content in expected_files.items():
        assert read_member(result.archive_path, name) == content, name
    assert "srv/app/unused.txt" not in found
    assert {"srv", "srv/app", "etc", ".formation", ".formation/pack.json"} <= set(found)
    for info in found.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    assert found["srv/app/app.py"].mode == 0o644
    assert found["srv"].mode == 0o755


async def test_manifest_describes_the_pack(builds: Builds) -> None:
    request = builds.request(APP_FORMFILE, APP_CONTEXT)
    result = await build_pack(request, RecordingSink())

    manifest = json.loads(read_member(result.archive_path, ".formation/pack.json"))
    assert manifest["build_id"] == result.build_id
    assert manifest["formfile"] == json.loads(request.formfile.normalized_json())
    assert manifest["not_applied"] == result.not_applied
    assert manifest["entrypoint"] == ["python3", "app.py"]
    assert manifest["expose"] == [8080]
    assert manifest["env"] == {"GREETING": "hello world"}
    assert manifest["workdir"] == "/srv/app"
    assert manifest["context_digest"] == request.context_digest


async def test_logs_and_progress_arrive_in_order(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMCP_SECRET", "hunter2")
    request = builds.request(APP_FORMFILE, APP_CONTEXT)
    sink = RecordingSink()
    await build_pack(request, sink)

    home = request.work_dir / "root" / "srv" / "app"
    assert sink.lines(STDOUT) == [
        "line 0",
        "line 1",
        "line 2",
        "greeting=hello world",
        "secret=<unset>",
        f"home={home}",
        "after",
    ]
    assert sink.lines(STDERR) == ["to-stderr"]
    system = sink.lines(SYSTEM)
    assert any(line.startswith("step 2/9: RUN python3 app.py") for line in system)
    assert any("INSTALL curl jq" in line and "not applied" in line for line in system)
    percents = [percent for percent, _, _ in sink.progress_calls]
    assert percents == sorted(percents)
    assert percents[-1] == 100
    assert len(set(percents)) > 5  # every step moved it


async def test_without_include_the_whole_context_is_in_the_workdir(builds: Builds) -> None:
    formfile = "NAME x\nWORKDIR /w\nRUN cat data/config.txt && cp app.py copy.py\n"
    sink = RecordingSink()
    result = await build_pack(builds.request(formfile, APP_CONTEXT), sink)

    assert sink.lines(STDOUT) == ["port=8080"]
    found = members(result.archive_path)
    for name in APP_CONTEXT:
        assert f"w/{name}" in found
    assert read_member(result.archive_path, "w/copy.py") == APP_PY.encode()


async def test_an_empty_context_builds(builds: Builds) -> None:
    result = await build_pack(builds.request(steps("echo made > f")), RecordingSink())
    assert read_member(result.archive_path, "app/f") == b"made\n"


async def test_output_is_batched(builds: Builds) -> None:
    sink = RecordingSink()
    await build_pack(builds.request(steps("seq 1 120")), sink)

    batches = [lines for kind, lines in sink.log_calls if kind == STDOUT]
    assert [line for batch in batches for line in batch] == [str(i) for i in range(1, 121)]
    assert all(len(batch) <= 50 for batch in batches)
    assert len(batches) < 10


async def test_a_long_line_is_cut(builds: Builds) -> None:
    limits = BuildLimits(max_log_line_chars=100)
    sink = RecordingSink()
    command = "python3 -c \"print('x' * 300000); print('next')\""
    await build_pack(builds.request(steps(command), limits=limits), sink)

    [long, following] = sink.lines(STDOUT)
    assert long == "x" * 100 + " [line truncated]"
    assert following == "next"


async def test_steps_do_not_see_the_server_environment(
    builds: Builds, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMCP_SECRET", "hunter2")
    sink = RecordingSink()
    await build_pack(builds.request(steps("env", 'echo "[${FMCP_SECRET:-absent}]"')), sink)

    output = sink.lines(STDOUT)
    assert "[absent]" in output
    assert not any("hunter2" in line for line in output)
    names = {line.split("=", 1)[0] for line in output if "=" in line}
    assert {"PATH", "HOME", "LANG", "TMPDIR"} <= names
    assert "FMCP_SECRET" not in names
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in output


async def test_the_environment_is_exactly_the_formfiles(builds: Builds) -> None:
    sink = RecordingSink()
    formfile = "NAME x\nENV LANG=C\nENV PATH=/bin\nRUN /usr/bin/env\n"
    request = builds.request(formfile)
    await build_pack(request, sink)

    home = request.work_dir / "root" / "app"
    tmp = request.work_dir / "tmp"
    names = {line.split("=", 1)[0] for line in sink.lines(STDOUT)}
    assert names <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD"}
    assert {"PATH=/bin", "LANG=C", f"HOME={home}", f"TMPDIR={tmp}"} <= set(sink.lines(STDOUT))


async def test_rlimits_apply_to_steps(builds: Builds) -> None:
    limits = BuildLimits(max_open_files=77, memory_bytes=256 * 1024 * 1024)
    sink = RecordingSink()
    formfile = steps("ulimit -n", "python3 -c 'bytearray(512 * 1024 * 1024)'")
    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(builds.request(formfile, limits=limits), sink)
    assert sink.lines(STDOUT)[0] == "77"
    assert "MemoryError" in caught.value.message


# -- failures ----------------------------------------------------------------------------------


async def test_failing_step_names_step_exit_code_and_last_lines(builds: Builds) -> None:
    command = "echo first; for i in $(seq 1 15); do echo l$i; done; echo oops >&2; exit 3"
    request = builds.request(steps("true", command))

    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(request, RecordingSink())

    error = caught.value
    assert error.reason == "STEP_FAILED"
    assert error.metadata == {"step": "2", "command": command, "exit_code": "3"}
    assert f"step 2/2 (RUN {command}) failed with exit code 3" in error.message
    tail = error.message.split("\n")[1:]
    assert tail == [f"l{i}" for i in range(7, 16)] + ["oops"]
    assert not request.work_dir.exists()
    assert not list(builds.artifact_dir.glob("*.tar.gz"))


async def test_step_timeout_kills_the_process_group(builds: Builds) -> None:
    limits = BuildLimits(step_timeout_seconds=0.5)
    sleep = unique_sleep()
    command = f"{sleep} & {sleep}; echo never"
    sink = RecordingSink()
    started = time.monotonic()

    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(builds.request(steps(command), limits=limits), sink)

    assert time.monotonic() - started < 10
    assert caught.value.reason == "STEP_TIMEOUT"
    assert f"step 1/1 (RUN {command}) timed out after 0.5 seconds" in caught.value.message
    await wait_processes_gone(sleep)


@pytest.mark.parametrize(("stream", "watch"), [(STDOUT, "started"), (SYSTEM, "step 1/1")])
async def test_cancellation_kills_the_process_group(
    builds: Builds, stream: int, watch: str
) -> None:
    """Cancelled mid-step (after its first line) or while the step is being started."""
    sleep = unique_sleep()
    sink = RecordingSink(watch=watch, watch_stream=stream)
    request = builds.request(steps(f"{sleep} & echo started; {sleep}; echo never"))
    task = asyncio.create_task(build_pack(request, sink))
    await asyncio.wait_for(sink.seen.wait(), 10)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await wait_processes_gone(sleep)
    assert not request.work_dir.exists()
    assert "never" not in sink.lines(STDOUT)


async def test_tool_context_works_as_the_sink(builds: Builds) -> None:
    events: list[queue_pb2.OperationEvent] = []

    async def emit(event: queue_pb2.OperationEvent) -> None:
        events.append(event)

    context = ToolContext(
        operation="operations/x", tool="pack.build", owner="alice", attempt=1, emit=emit
    )
    await build_pack(builds.request(steps("echo hi")), context)

    lines = [(line.stream, line.text) for e in events for line in e.logs.lines]
    assert (STDOUT, "hi") in lines
    assert events[-1].progress.percent == 100
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


async def test_missing_copy_source_is_invalid_before_anything_runs(builds: Builds) -> None:
    formfile = "NAME x\nRUN echo ran\nCOPY nothere /x\nINCLUDE gone.txt\n"
    sink = RecordingSink()
    with pytest.raises(InvalidArgument) as caught:
        await build_pack(builds.request(formfile, {"a": "b"}), sink)
    fields = [v.field for v in caught.value.field_violations]
    assert fields == ["formfile.include[0]", "formfile.steps[1].copy.from"]
    assert sink.lines(STDOUT) == []


async def test_writes_never_follow_links_planted_by_steps(builds: Builds, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    formfile = f"NAME x\nRUN ln -s {outside} escape\nCOPY a.txt escape/a.txt\n"
    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(builds.request(formfile, {"a.txt": "payload"}), RecordingSink())
    assert caught.value.reason == "STEP_FAILED"
    assert "escape" in caught.value.message
    assert list(outside.iterdir()) == []


async def test_steps_symlinks_are_kept_as_links(builds: Builds) -> None:
    result = await build_pack(builds.request(steps("ln -s /etc/hostname host")), RecordingSink())
    info = members(result.archive_path)["app/host"]
    assert info.issym()
    assert info.linkname == "/etc/hostname"


@pytest.mark.parametrize("where", ["artifacts", "inside-artifacts", "context"])
async def test_work_dir_must_stay_out_of_other_directories(builds: Builds, where: str) -> None:
    request = builds.request(steps("true"))
    work_dir = {
        "artifacts": builds.artifact_dir,
        "inside-artifacts": builds.artifact_dir / "work",
        "context": request.context_root / "work",
    }[where]
    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(replace(request, work_dir=work_dir), RecordingSink())
    assert caught.value.reason == "BUILD_DIR_UNSAFE"


async def test_a_non_empty_work_dir_is_refused_and_left_alone(builds: Builds) -> None:
    request = builds.request(steps("true"))
    request.work_dir.mkdir()
    (request.work_dir / "keep.txt").write_text("mine")
    with pytest.raises(FailedPrecondition, match="new, empty directory"):
        await build_pack(request, RecordingSink())
    assert (request.work_dir / "keep.txt").read_text() == "mine"


# -- identity, cache, determinism --------------------------------------------------------------


def test_build_id_changes_with_owner_formfile_and_context(tmp_path: Path) -> None:
    formfile = parse_formfile(APP_FORMFILE)
    context = stage_files(APP_CONTEXT, tmp_path / "a").digest
    base = build_id_for("alice", formfile, context)

    assert build_id_for("alice", formfile, context) == base
    assert build_id_for("bob", formfile, context) != base
    assert build_id_for("alice", replace(formfile, name="other"), context) != base
    changed = dict(APP_CONTEXT, **{"lib/util.py": "X = 2\n"})
    assert build_id_for("alice", formfile, stage_files(changed, tmp_path / "b").digest) != base
    assert re.fullmatch(r"[0-9a-f]{64}", base)


async def test_the_same_build_again_is_cached(builds: Builds) -> None:
    formfile = "NAME x\nRUN echo ran\nINSTALL curl\n"
    first_sink = RecordingSink()
    first = await build_pack(builds.request(formfile, {"a": "b"}), first_sink)
    sink = RecordingSink()
    request = builds.request(formfile, {"a": "b"})

    second = await build_pack(request, sink)

    assert second.cached
    assert second.steps_run == 0
    assert (second.build_id, second.digest, second.size_bytes) == (
        first.build_id,
        first.digest,
        first.size_bytes,
    )
    assert second.not_applied == ["INSTALL curl"]
    assert first_sink.lines(STDOUT) == ["ran"]
    assert sink.lines(STDOUT) == []
    assert sink.progress_calls[-1][0] == 100
    assert not request.work_dir.exists()


async def test_another_owner_is_not_served_from_the_cache(builds: Builds) -> None:
    first = await build_pack(builds.request(steps("true"), owner="alice"), RecordingSink())
    second = await build_pack(builds.request(steps("true"), owner="bob"), RecordingSink())
    assert not second.cached
    assert second.build_id != first.build_id


async def test_digest_is_computed_when_not_given(builds: Builds) -> None:
    request = builds.request(APP_FORMFILE, APP_CONTEXT)
    result = await build_pack(replace(request, context_digest=""), RecordingSink())
    assert result.build_id == build_id_for("alice", request.formfile, request.context_digest)


async def test_archives_are_byte_identical(shared_dir: Path) -> None:
    formfile = (
        "NAME det\nINCLUDE app.py lib\nRUN python3 app.py\nRUN seq 1 5 > numbers\n"
        "RUN mkdir -p empty/dir && chmod 700 empty\nCOPY data conf\n"
    )
    context = dict(APP_CONTEXT, **{"app.py": "open('out.txt', 'w').write('ok')\n"})
    results: list[BuildResult] = []
    for run in ("one", "two"):
        builds = Builds(shared_dir / run)
        results.append(await build_pack(builds.request(formfile, context), RecordingSink()))

    one, two = results
    assert one.archive_path.read_bytes() == two.archive_path.read_bytes()
    assert one.digest == two.digest
    assert not one.cached
    assert not two.cached


# -- running as another user -------------------------------------------------------------------


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("dropping privileges needs root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user named nobody")


async def test_run_as_drops_privileges(builds: Builds, shared_dir: Path) -> None:
    nobody = _nobody()
    request = builds.request(
        "NAME x\nINCLUDE a.txt\nRUN id -u && echo more >> a.txt && touch made\n",
        {"a.txt": "from context\n"},
        run_as="nobody",
        work_dir=shared_dir / "work",
    )
    sink = RecordingSink()
    result = await build_pack(request, sink)

    assert sink.lines(STDOUT) == [str(nobody.pw_uid)]
    assert read_member(result.archive_path, "app/a.txt") == b"from context\nmore\n"
    assert members(result.archive_path)["app/made"].uid == 0
    assert not request.work_dir.exists()


async def test_run_as_needs_a_reachable_work_dir(builds: Builds, tmp_path: Path) -> None:
    _nobody()
    request = builds.request(steps("true"), run_as="nobody", work_dir=tmp_path / "work")
    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(request, RecordingSink())
    assert caught.value.reason == "BUILD_DIR_UNREACHABLE"


async def test_run_as_unknown_user_is_refused(builds: Builds) -> None:
    request = builds.request(steps("true"), run_as="no-such-user-fmcp")
    with pytest.raises(FailedPrecondition) as caught:
        await build_pack(request, RecordingSink())
    assert caught.value.reason == "RUN_AS_UNKNOWN"
