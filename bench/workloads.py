"""The workload tools on the embedded default (`fmcp serve`: SQLite, in-process broker and
worker): pack.build of a 10-file context, cache miss and cache hit, call to done; and instance
start, pack.ship call to the instance's first HTTP answer. Baselines from the same run: the
build's one step run directly as a process, and the same app started directly as a process up
to its first HTTP answer (both with the PATH instances get). The sandbox's own cost: that step
through the workload launcher with and without the sandbox (bwrap's namespaces)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import httpx
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format

from bench import identity
from bench.common import ROOT, figure, heading, note, percentile, ratio
from bench.processes import fmcp_server, running
from formation_mcp.settings import Settings
from formation_mcp.workloads.build import DEFAULT_PATH, SHELL
from formation_mcp.workloads.sandbox import WorkloadSandbox, launcher_argv, run_as_identity

BUILDS = 15
STARTS = 10
FORMFILE = """\
NAME bench-web
RUN python3 -m py_compile app.py
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080
"""
APP = (ROOT / "examples" / "hello-web" / "app.py").read_text()

Metadata = tuple[tuple[str, str], ...]


def _context(unique: str) -> dict[str, str]:
    files = {f"data/file-{n}.txt": f"{unique} {n}\n" * 20 for n in range(9)}
    return {"app.py": APP, **files}


async def _call(
    channel: grpc.aio.Channel, md: Metadata, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    request = tools_pb2.CallToolRequest(name=f"tools/{tool}")
    json_format.ParseDict(arguments, request.arguments)
    operation: lro_pb2.Operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
        request, metadata=md
    )
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    while not operation.done:
        operation = await operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), metadata=md
        )
    if operation.HasField("error"):
        raise RuntimeError(f"{tool} failed: {operation.error.message}")
    result = operations_pb2.ToolResult()
    operation.response.Unpack(result)
    return json_format.MessageToDict(result.output)


async def _first_answer(port: int, deadline: float = 20.0) -> None:
    async with httpx.AsyncClient() as client:
        end = time.perf_counter() + deadline
        while True:
            try:
                await client.get(f"http://127.0.0.1:{port}/", timeout=2)
                return
            except httpx.TransportError:
                if time.perf_counter() > end:
                    raise
                await asyncio.sleep(0.002)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _bare_step(directory: Path) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "python3", "-m", "py_compile", "app.py", cwd=directory, env={"PATH": DEFAULT_PATH}
    )
    await process.wait()
    return time.perf_counter() - started


async def _launched_step(directory: Path, sandbox: WorkloadSandbox) -> float:
    """The RUN step as a build runs it: launcher (limits, user), then the sandbox, then sh."""
    who = run_as_identity(Settings().effective_run_as)
    env = {"PATH": DEFAULT_PATH}
    argv = sandbox.command(
        [SHELL, "-c", "python3 -m py_compile app.py"], writable=[directory], cwd=directory
    )
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *launcher_argv(argv, (), who, env), cwd=directory, env=env
    )
    await process.wait()
    return time.perf_counter() - started


def _workload_dir() -> Path:
    """The app in a directory the workload user can reach and write."""
    directory = Path(tempfile.mkdtemp(prefix="fmcp-bench-sandbox-", dir="/tmp"))
    (directory / "app.py").write_text(APP)
    who = run_as_identity(Settings().effective_run_as)
    for path in (directory, directory / "app.py"):
        if who is not None:
            os.chown(path, who.uid, who.gid)
    return directory


async def _bare_start(directory: Path) -> float:
    port = _free_port()
    env = {"PATH": DEFAULT_PATH, "PORT": str(port), "FMCP_INSTANCE_NAME": "bare"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "python3", "app.py", cwd=directory, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        await _first_answer(port)
        return time.perf_counter() - started
    finally:
        process.terminate()
        await process.wait()


async def run() -> None:
    heading("workload tools on the embedded default (SQLite, in-process broker and worker)")
    note(f"{BUILDS} builds per case, {STARTS} instance starts; Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-workloads-") as scratch:
        data_dir = Path(scratch) / "data"
        app_dir = Path(scratch) / "app"
        app_dir.mkdir()
        (app_dir / "app.py").write_text(APP)
        caller = identity.for_server(data_dir)
        md = caller.metadata
        server = fmcp_server(data_dir, None, core=None)
        async with running(server) as ready, grpc.aio.insecure_channel(ready.group(1)) as channel:
            await _call(
                channel,
                md,
                "pack.build",
                {"formfile": FORMFILE, "context_files": _context("warm")},
            )
            misses, hits, build_ids = [], [], []
            for _ in range(BUILDS):
                files = _context(uuid.uuid4().hex)
                arguments = {"formfile": FORMFILE, "context_files": files}
                began = time.perf_counter()
                built = await _call(channel, md, "pack.build", arguments)
                misses.append(time.perf_counter() - began)
                began = time.perf_counter()
                again = await _call(channel, md, "pack.build", arguments)
                hits.append(time.perf_counter() - began)
                assert again["cached"] and not built["cached"]
                build_ids.append(built["build_id"])
            starts = []
            for index in range(STARTS):
                began = time.perf_counter()
                instance = await _call(
                    channel,
                    md,
                    "pack.ship",
                    {"build_id": build_ids[index], "instance_name": f"bench-{index}"},
                )
                await _first_answer(int(instance["ports"]["8080"]))
                starts.append(time.perf_counter() - began)
                await _call(channel, md, "vm.delete", {"id": f"bench-{index}", "force": True})
        bare_steps = [await _bare_step(app_dir) for _ in range(BUILDS)]
        bare_starts = [await _bare_start(app_dir) for _ in range(STARTS)]
        launched: dict[bool, list[float]] = {True: [], False: []}
        sandbox_dir = _workload_dir()
        try:
            for _ in range(BUILDS):
                for unsafe in (True, False):
                    sandbox = WorkloadSandbox(unsafe=unsafe)
                    launched[unsafe].append(await _launched_step(sandbox_dir, sandbox))
        finally:
            shutil.rmtree(sandbox_dir, ignore_errors=True)
    miss, hit = percentile(misses, 0.5) * 1000, percentile(hits, 0.5) * 1000
    start, bare_start = percentile(starts, 0.5) * 1000, percentile(bare_starts, 0.5) * 1000
    bare_step = percentile(bare_steps, 0.5) * 1000
    figure("pack.build, 10 files, cache miss, call to done p50", miss, "ms", 1)
    figure("pack.build, same again, cache hit, call to done p50", hit, "ms", 1)
    figure("baseline: its one RUN step as a bare process p50", bare_step, "ms", 1)
    ratio("miss / bare step", miss, bare_step)
    ratio("hit / miss", hit, miss)
    figure("instance start, pack.ship call to first HTTP answer p50", start, "ms", 1)
    figure("baseline: the same app as a bare process to first answer p50", bare_start, "ms", 1)
    ratio("ship / bare start", start, bare_start)
    plain = percentile(launched[True], 0.5) * 1000
    sandboxed = percentile(launched[False], 0.5) * 1000
    figure("the RUN step through the launcher, no sandbox p50", plain, "ms", 1)
    figure("the RUN step through the launcher, in the sandbox p50", sandboxed, "ms", 1)
    ratio("sandboxed / not", sandboxed, plain)
