"""Completed long-running tool calls per second through RabbitMQ and PostgreSQL, one API process
(`fmcp serve --no-worker`, core 0) plus one worker (`fmcp worker`, core 1), the CPU each spends
per completed call, and call-to-done latency at half that rate. A call is done when the client
sees it done (CallTool with `wait`, then WaitOperation while not: what `call_and_wait` does).

The CPU figures are divided by the bare grpc.aio server's CPU per no-op unary RPC, measured in
the same run on the API's core (before and after the calls; their mean), which makes them
ratios that hold on any machine. `python -m bench calls --json FILE` also writes the figures
as JSON."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import identity
from bench.bare_cpu import bare_cpu_ms_per_rpc
from bench.call_load import Target, closed_loop, open_loop
from bench.common import FMCP, ROOT, percentile
from bench.cpu import tree_cpu_seconds
from bench.databases import scratch_postgres
from bench.processes import FMCP_READY, ServerProcess, fmcp_env, running

RABBITMQ_URL = os.environ.get("FMCP_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
CLOSED_LOOP_CALLERS = 128
CLOSED_LOOP_SECONDS = float(os.environ.get("FMCP_BENCH_CALLS_SECONDS", "20"))
OPEN_LOOP_SECONDS = CLOSED_LOOP_SECONDS * 0.75
BARE_SECONDS = max(1, int(CLOSED_LOOP_SECONDS / 4))
API_CORE, WORKER_CORE = 0, 1
TARGET_RATE = 400.0
TARGET_P99_MS = 50.0
TARGET_API_RATIO = 6.0
TARGET_WORKER_RATIO = 3.0
WORKER_READY = re.compile(r"fmcp worker \S+: ready")


def bench_env(data_dir: Path, database_url: str, prefix: str, node: str) -> dict[str, str]:
    env = fmcp_env(data_dir, database_url)
    env.update(
        FMCP_BROKER_URL=RABBITMQ_URL,
        FMCP_BROKER_PREFIX=prefix,
        FMCP_NODE_ID=f"{prefix}-{node}",
        FMCP_TOOL_MODULES="bench.tools",
        PYTHONPATH=str(ROOT),
        FMCP_WORKER_PREFETCH="64",
        FMCP_WORKER_HTTP_LISTEN="127.0.0.1:0",
    )
    return env


def _verdict(value: float, bound: float, *, at_most: bool) -> str:
    met = value <= bound if at_most else value >= bound
    return "met" if met else "not met"


async def run(json_path: Path | None = None) -> None:
    print("\n== tool calls through RabbitMQ and PostgreSQL (bench.noop, long-running) ==")
    print(
        f"{identity.describe()}; API `fmcp serve --no-worker` on core {API_CORE}, "
        f"`fmcp worker` on core {WORKER_CORE}, the load from this process (unpinned)"
    )
    prefix = f"fmcp-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-calls-") as scratch:
        data_dir = Path(scratch)
        bare_before = await bare_cpu_ms_per_rpc(data_dir, API_CORE, BARE_SECONDS)
        caller = identity.for_server(data_dir / "api")
        async with scratch_postgres() as database_url:
            api = ServerProcess(
                [FMCP, "serve", "--no-worker"],
                log_path=data_dir / "api.log",
                ready=FMCP_READY,
                env=bench_env(data_dir / "api", database_url, prefix, "api"),
                core=API_CORE,
            )
            worker = ServerProcess(
                [FMCP, "worker"],
                log_path=data_dir / "worker.log",
                ready=WORKER_READY,
                env=bench_env(data_dir / "worker", database_url, prefix, "worker"),
                core=WORKER_CORE,
            )
            async with running(api) as ready, running(worker):
                target = Target(ready.group(1))
                try:
                    figures = await _measure(target, caller.metadata, api.pid, worker.pid)
                finally:
                    await target.close()
            await delete_topology(prefix, [f"{prefix}-api", f"{prefix}-worker"])
        bare_after = await bare_cpu_ms_per_rpc(data_dir, API_CORE, BARE_SECONDS)
    bare = (bare_before + bare_after) / 2
    print(
        f"bare grpc.aio no-op on core {API_CORE}: {bare:.3f} ms CPU per RPC "
        f"(before {bare_before:.3f}, after {bare_after:.3f})"
    )
    figures["bare_cpu_ms_per_rpc"] = bare
    figures["api_ratio"] = figures["api_cpu_ms_per_call"] / bare
    figures["worker_ratio"] = figures["worker_cpu_ms_per_call"] / bare
    for side, bound in (("api", TARGET_API_RATIO), ("worker", TARGET_WORKER_RATIO)):
        value = figures[f"{side}_ratio"]
        print(
            f"ratio {side} CPU per call / bare RPC: {value:.2f} "
            f"(target <= {bound:g}: {_verdict(value, bound, at_most=True)})"
        )
    if json_path is not None:
        await asyncio.to_thread(_write_json, json_path, figures)
        print(f"figures written to {json_path}")


def _write_json(path: Path, figures: dict[str, Any]) -> None:
    path.write_text(json.dumps(figures, indent=2) + "\n")


async def _measure(
    target: Target, metadata: tuple[tuple[str, str], ...], api_pid: int, worker_pid: int
) -> dict[str, Any]:
    start = time.time() + 0.5
    end = start + CLOSED_LOOP_SECONDS
    loop = closed_loop([target], metadata, CLOSED_LOOP_CALLERS, start, end)
    # CPU is read at the window's edges while the callers run (they warm up before it)
    task = asyncio.ensure_future(loop)
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu_before = (tree_cpu_seconds([api_pid]), tree_cpu_seconds([worker_pid]))
    await asyncio.sleep(max(0.0, end - time.time()))
    cpu_after = (tree_cpu_seconds([api_pid]), tree_cpu_seconds([worker_pid]))
    outcome = await task
    rate = outcome.completed / CLOSED_LOOP_SECONDS
    api_ms = (cpu_after[0] - cpu_before[0]) * 1000 / max(1, outcome.completed)
    worker_ms = (cpu_after[1] - cpu_before[1]) * 1000 / max(1, outcome.completed)
    print(
        f"completed calls/s ({CLOSED_LOOP_CALLERS} callers, "
        f"{CLOSED_LOOP_SECONDS:.0f} s): {rate:,.0f}"
    )
    print(f"  target >= {TARGET_RATE:,.0f}/s: {_verdict(rate, TARGET_RATE, at_most=False)}")
    print(f"CPU per completed call: API {api_ms:.3f} ms, worker {worker_ms:.3f} ms")
    latencies = await open_loop(target, metadata, max(rate / 2, 1.0), OPEN_LOOP_SECONDS)
    p50, p99 = (percentile(latencies, f) * 1000 for f in (0.5, 0.99))
    print(
        f"call-to-done latency at {rate / 2:,.0f} calls/s (half the rate), "
        f"{len(latencies)} calls: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    print(f"  target p99 <= {TARGET_P99_MS:.0f} ms: {_verdict(p99, TARGET_P99_MS, at_most=True)}")
    return {
        "calls_per_s": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "api_cpu_ms_per_call": api_ms,
        "worker_cpu_ms_per_call": worker_ms,
    }


async def delete_topology(prefix: str, nodes: list[str]) -> None:
    """The prefix's queues and exchanges, and the node queue each process declared."""
    from formation_mcp.broker.rabbitmq import RabbitBroker

    broker = RabbitBroker(RABBITMQ_URL, 3, prefix)
    await broker.delete_node_queues(nodes)
    await broker.delete_topology()
