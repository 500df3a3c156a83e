"""Completed long-running tool calls per second through RabbitMQ and PostgreSQL, one API process
(`fmcp serve --no-worker`) plus one worker (`fmcp worker`), and call-to-done latency at half
that rate. A call is done when WaitOperation returns it done (what a client does)."""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc

from bench import identity
from bench.common import FMCP, ROOT, percentile
from bench.databases import scratch_postgres
from bench.processes import FMCP_READY, ServerProcess, fmcp_env, running

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
CLOSED_LOOP_CALLERS = 128
CLOSED_LOOP_SECONDS = 20.0
OPEN_LOOP_SECONDS = 15.0
TARGET_RATE = 1000.0
TARGET_P99_MS = 50.0
WORKER_READY = re.compile(r"fmcp worker \S+: ready")


def _env(data_dir: Path, database_url: str, prefix: str) -> dict[str, str]:
    env = fmcp_env(data_dir, database_url)
    env.update(
        FMCP_BROKER_URL=RABBITMQ_URL,
        FMCP_BROKER_PREFIX=prefix,
        FMCP_NODE_ID=f"{prefix}-{data_dir.name}",
        FMCP_TOOL_MODULES="bench.tools",
        PYTHONPATH=str(ROOT),
        FMCP_WORKER_PREFETCH="64",
        FMCP_WORKER_HTTP_LISTEN="127.0.0.1:0",
    )
    return env


async def _call_until_done(
    tools: tools_pb2_grpc.ToolsServiceAsyncStub,
    ops: operations_pb2_grpc.OperationsServiceAsyncStub,
    metadata: tuple[tuple[str, str], ...],
) -> float:
    started = time.perf_counter()
    operation = await tools.CallTool(
        tools_pb2.CallToolRequest(name="tools/bench.noop"), metadata=metadata
    )
    while not operation.done:
        operation = await ops.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), metadata=metadata
        )
    if operation.HasField("error"):
        raise RuntimeError(f"{operation.name} failed: {operation.error.message}")
    return time.perf_counter() - started


async def _closed_loop(address: str, metadata: tuple[tuple[str, str], ...]) -> float:
    """As many calls as CLOSED_LOOP_CALLERS callers complete; returns completed calls/s."""
    async with grpc.aio.insecure_channel(address) as channel:
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        for _ in range(50):  # warm-up: connections, caches, JIT-free but lazy imports
            await _call_until_done(tools, ops, metadata)
        deadline = time.perf_counter() + CLOSED_LOOP_SECONDS
        completed = 0

        async def caller() -> None:
            nonlocal completed
            while time.perf_counter() < deadline:
                await _call_until_done(tools, ops, metadata)
                completed += 1

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(CLOSED_LOOP_CALLERS)))
        return completed / (time.perf_counter() - began)


async def _open_loop(
    address: str, metadata: tuple[tuple[str, str], ...], rate: float
) -> list[float]:
    """Calls started at a fixed `rate` for OPEN_LOOP_SECONDS; their call-to-done latencies."""
    async with grpc.aio.insecure_channel(address) as channel:
        tools = tools_pb2_grpc.ToolsServiceStub(channel)
        ops = operations_pb2_grpc.OperationsServiceStub(channel)
        tasks: list[asyncio.Task[float]] = []
        interval = 1.0 / rate
        began = time.perf_counter()
        for index in range(int(rate * OPEN_LOOP_SECONDS)):
            delay = began + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(_call_until_done(tools, ops, metadata)))
        return list(await asyncio.gather(*tasks))


async def run() -> None:
    print("\n== tool calls through RabbitMQ and PostgreSQL (bench.noop, long-running) ==")
    print(
        f"{identity.describe()}; API `fmcp serve --no-worker` on core 0, `fmcp worker` on "
        "core 1, the load from this process (unpinned)"
    )
    prefix = f"fmcp-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-calls-") as scratch:
        data_dir = Path(scratch)
        caller = identity.for_server(data_dir / "api")
        async with scratch_postgres() as database_url:
            api = ServerProcess(
                [FMCP, "serve", "--no-worker"],
                log_path=data_dir / "api.log",
                ready=FMCP_READY,
                env=_env(data_dir / "api", database_url, prefix),
                core=0,
            )
            worker = ServerProcess(
                [FMCP, "worker"],
                log_path=data_dir / "worker.log",
                ready=WORKER_READY,
                env=_env(data_dir / "worker", database_url, prefix),
                core=1,
            )
            async with running(api) as ready, running(worker):
                address = ready.group(1)
                rate = await _closed_loop(address, caller.metadata)
                print(
                    f"completed calls/s ({CLOSED_LOOP_CALLERS} callers, "
                    f"{CLOSED_LOOP_SECONDS:.0f} s): {rate:,.0f}"
                )
                verdict = "met" if rate >= TARGET_RATE else "not met"
                print(
                    f"  target >= {TARGET_RATE:,.0f}/s: {verdict} (ratio {rate / TARGET_RATE:.2f})"
                )
                latencies = await _open_loop(address, caller.metadata, rate / 2)
                p50, p99 = (percentile(latencies, f) * 1000 for f in (0.5, 0.99))
                print(
                    f"call-to-done latency at {rate / 2:,.0f} calls/s (half the rate), "
                    f"{len(latencies)} calls: p50 {p50:.1f} ms, p99 {p99:.1f} ms"
                )
                print(
                    f"  target p99 <= {TARGET_P99_MS:.0f} ms: "
                    f"{'met' if p99 <= TARGET_P99_MS else 'not met'}"
                )
            await _delete_topology(prefix, [f"{prefix}-api", f"{prefix}-worker"])


async def _delete_topology(prefix: str, nodes: list[str]) -> None:
    """The prefix's queues and exchanges, and the node queue each process declared."""
    from formation_mcp.broker.rabbitmq import RabbitBroker

    broker = RabbitBroker(RABBITMQ_URL, 3, prefix)
    await broker.delete_node_queues(nodes)
    await broker.delete_topology()
