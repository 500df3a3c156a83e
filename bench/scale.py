"""`scale`: completed long-running tool calls per second, and CPU per call of every component,
for N API and M worker processes on one PostgreSQL and one RabbitMQ:

    python -m bench scale --api N --workers M [--processes P] [--load L] [--callers C]

starts N `fmcp serve --no-worker --processes P` (each on its own port) and M `fmcp worker
--processes P` (so N x P API and M x P worker processes), and L load processes
(`bench/call_load.py`, default one per API process) whose C callers in all (default 128 per
API process) call the no-op tool one call after the other. Nothing is pinned: the scheduler
places every process, so the same command runs unchanged on a bigger machine. Printed:
completed calls/s, the callers' call-to-done p50/p99, and, per component (API, worker,
PostgreSQL, RabbitMQ, load), CPU ms per completed call and the cores it kept busy, which shows
where the next bottleneck is. PostgreSQL counts the backends of the benchmark's own database
and the server's background processes; RabbitMQ counts every process of the broker (other
users of it show up there)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import identity
from bench.common import FMCP, PYTHON, ROOT, percentile
from bench.cpu import cpu_by_name, postgres_cpu_seconds, tree_cpu_seconds
from bench.databases import scratch_postgres
from bench.processes import ServerProcess
from bench.tool_calls import WORKER_READY, bench_env, delete_topology

API_READY = re.compile(r"fmcp: gRPC on (\S+), HTTP on (\S+)")
RABBITMQ_PROCESSES = ("beam", "erl_child_setup", "epmd", "inet_gethost")
CALLERS_PER_API_PROCESS = 128
WARM_UP_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Options:
    api: int
    workers: int
    processes: int
    load: int
    callers: int
    seconds: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        api_processes = args.api * args.processes
        return cls(
            api=args.api,
            workers=args.workers,
            processes=args.processes,
            load=args.load or api_processes,
            callers=args.callers or CALLERS_PER_API_PROCESS * api_processes,
            seconds=args.seconds,
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale")
    group.add_argument("--api", type=int, default=1, help="scale: API commands (default 1)")
    group.add_argument("--workers", type=int, default=1, help="scale: worker commands")
    group.add_argument(
        "--processes", type=int, default=1, help="scale: --processes of each command"
    )
    group.add_argument("--load", type=int, default=0, help="scale: load processes")
    group.add_argument("--callers", type=int, default=0, help="scale: callers in all")
    group.add_argument("--seconds", type=float, default=20.0, help="scale: measured seconds")


def _processes_argv(processes: int) -> list[str]:
    return ["--processes", str(processes)] if processes > 1 else []


def _api(index: int, options: Options, data_dir: Path, url: str, prefix: str) -> ServerProcess:
    env = bench_env(data_dir, url, prefix, f"api{index}")
    return ServerProcess(
        [FMCP, "serve", "--no-worker", *_processes_argv(options.processes)],
        log_path=data_dir.parent / f"api{index}.log",
        ready=API_READY,
        env=env,
        core=None,
        ready_count=options.processes,
    )


def _worker(index: int, options: Options, data_dir: Path, url: str, prefix: str) -> ServerProcess:
    return ServerProcess(
        [FMCP, "worker", *_processes_argv(options.processes)],
        log_path=data_dir.parent / f"worker{index}.log",
        ready=WORKER_READY,
        env=bench_env(data_dir, url, prefix, f"worker{index}"),
        core=None,
        ready_count=options.processes,
    )


def _nodes(prefix: str, options: Options) -> list[str]:
    names = [f"{prefix}-api{i}" for i in range(options.api)]
    names += [f"{prefix}-worker{i}" for i in range(options.workers)]
    if options.processes == 1:
        return names
    return [f"{name}-{j}" for name in names for j in range(1, options.processes + 1)]


def _sample(
    apis: list[ServerProcess],
    workers: list[ServerProcess],
    loads: list[asyncio.subprocess.Process],
    database: str,
) -> dict[str, float]:
    named = cpu_by_name({"RabbitMQ": RABBITMQ_PROCESSES})
    return {
        "API": tree_cpu_seconds(server.pid for server in apis),
        "worker": tree_cpu_seconds(server.pid for server in workers),
        "PostgreSQL": postgres_cpu_seconds(database),
        "RabbitMQ": named["RabbitMQ"],
        "load": tree_cpu_seconds(process.pid for process in loads),
    }


async def run(options: Options) -> None:
    print(
        f"\n== scale: {options.api} API x {options.processes} and {options.workers} worker x "
        f"{options.processes} processes, {options.load} load processes, {options.callers} "
        f"callers, {os.cpu_count()} cores =="
    )
    prefix = f"fmcp-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-scale-") as scratch:
        data_dir = Path(scratch) / "data"  # shared, like the children of --processes
        caller = identity.for_server(data_dir)
        async with scratch_postgres() as url, contextlib.AsyncExitStack() as stack:
            apis = [_api(i, options, data_dir, url, prefix) for i in range(options.api)]
            workers = [_worker(i, options, data_dir, url, prefix) for i in range(options.workers)]
            for server in (*apis, *workers):
                stack.push_async_callback(server.stop)
            readies = await asyncio.gather(*(server.start() for server in apis))
            await asyncio.gather(*(server.start() for server in workers))
            addresses = [ready.group(1) for ready in readies]
            try:
                await _drive(options, addresses, caller.metadata, apis, workers, url)
            finally:
                await stack.aclose()
                await delete_topology(prefix, _nodes(prefix, options))


async def _drive(
    options: Options,
    addresses: list[str],
    metadata: tuple[tuple[str, str], ...],
    apis: list[ServerProcess],
    workers: list[ServerProcess],
    url: str,
) -> None:
    database = url.rpartition("/")[2]
    start = time.time() + WARM_UP_SECONDS
    end = start + options.seconds
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FMCP_BENCH_METADATA": json.dumps(metadata)}
    loads = []
    for index in range(options.load):
        callers = options.callers // options.load + (index < options.callers % options.load)
        # each load process starts on another address, so callers spread over every API
        rotated = addresses[index % len(addresses) :] + addresses[: index % len(addresses)]
        argv = ["--callers", str(callers), "--start", str(start), "--end", str(end)]
        loads.append(
            await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "bench.call_load",
                *argv,
                *rotated,
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    try:
        await asyncio.sleep(max(0.0, start - time.time()))
        before = _sample(apis, workers, loads, database)
        await asyncio.sleep(max(0.0, end - time.time()))
        after = _sample(apis, workers, loads, database)
        outputs = [await process.communicate() for process in loads]
    finally:
        for process in loads:
            if process.returncode is None:
                process.kill()
                await process.wait()
    completed, latencies = 0, []
    for (out, _), process in zip(outputs, loads, strict=True):
        if process.returncode != 0:
            raise RuntimeError(f"a load process exited with {process.returncode}")
        result = json.loads(out)
        completed += result["completed"]
        latencies += result["latencies"]
    _report(options, completed, latencies, before, after)


def _report(
    options: Options,
    completed: int,
    latencies: list[float],
    before: dict[str, float],
    after: dict[str, float],
) -> None:
    rate = completed / options.seconds
    p50, p99 = (percentile(latencies, f) * 1000 for f in (0.5, 0.99))
    print(f"completed calls/s: {rate:,.0f} ({completed:,} in {options.seconds:.0f} s)")
    print(f"call-to-done at that load: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    counts = {
        "API": options.api * options.processes,
        "worker": options.workers * options.processes,
        "load": options.load,
    }
    print("component   CPU ms/call   cores busy   processes")
    busiest = ("", 0.0)
    for name in ("API", "worker", "PostgreSQL", "RabbitMQ", "load"):
        used = after[name] - before[name]
        per_call = used * 1000 / completed if completed else float("nan")
        cores = used / options.seconds
        count = counts.get(name)
        print(f"{name:<11} {per_call:>11.3f}   {cores:>10.2f}   {count if count else '-':>9}")
        if count and cores / count > busiest[1]:
            busiest = (name, cores / count)
    total = sum(after[name] - before[name] for name in after)
    print(
        f"all: {total * 1000 / max(1, completed):.3f} ms/call, {total / options.seconds:.2f} of "
        f"{os.cpu_count()} cores; busiest per process: {busiest[0]} at {busiest[1]:.2f} cores"
    )
