"""`mcp`: a quick tool's round trip as MCP `tools/call` over Streamable HTTP, against the same
call as gRPC `CallTool`, on one server in one run.

One `fmcp serve` (SQLite, the embedded default, the demo tools loaded for `test.echo`, a quick
tool that runs inline) is pinned to core 0 with Envoy (the deployed config, `--concurrency 1`)
beside it. The client, this process, moves to core 1 while it measures. Three targets, one
call in flight at a time, taking turns in blocks so other load on the machine hits them alike:

- gRPC: `ToolsService.CallTool` straight to the server (one HTTP/2 channel);
- MCP 2025-11-25: `tools/call` with the SDK's own client, one session (initialize handshake),
  to `/mcp` on Envoy (how hosts reach it);
- MCP 2026-07-28: the same with the stateless revision (no session; every request carries
  its protocol version and is served on its own).

Every MCP call is an HTTP POST answered as SSE, handled by the SDK's session, then a gRPC
CallTool on loopback with the caller's token (one whose audience is the MCP endpoint, as MCP
hosts get from the authorization server): the same work as the gRPC target, plus the MCP
layer. Each call must answer `{"echo": ...}`; p50 and p99 are printed, and MCP p50 / gRPC p50.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import grpc
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from google.protobuf import struct_pb2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from bench.common import (
    FMCP,
    LOAD_CORE,
    ROOT,
    SERVER_CORE,
    figure,
    heading,
    note,
    percentile,
    ratio,
)
from bench.identity import Identity, for_server
from bench.processes import FMCP_READY, ServerProcess, fmcp_env, running
from bench.rest import _accepting, _envoy

CALLS = int(os.environ.get("FMCP_BENCH_MCP_CALLS", "300"))  # measured, per target
WARM_UP = 30  # per target
BLOCK = 25  # calls per turn
GRPC = "gRPC CallTool, straight to the server"
LEGACY = "MCP tools/call 2025-11-25, through Envoy"
MODERN = "MCP tools/call 2026-07-28, through Envoy"


def _server(data_dir: Path) -> ServerProcess:
    """`fmcp serve` with the demo tools (`test.echo`: quick, inline)."""
    env = fmcp_env(data_dir, None)
    env.update(FMCP_TOOL_MODULES="examples.demo_tools", PYTHONPATH=str(ROOT))
    return ServerProcess(
        [FMCP, "serve"], log_path=data_dir / "fmcp.log", ready=FMCP_READY, env=env, core=SERVER_CORE
    )


@contextlib.contextmanager
def _on_core(core: int) -> Iterator[None]:
    """This process (the client) on the load core while it measures; restored afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {core})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


Call = Callable[[int], Awaitable[None]]


def _grpc_call(stub: tools_pb2_grpc.ToolsServiceAsyncStub, caller: Identity) -> Call:
    async def call(number: int) -> None:
        arguments = struct_pb2.Struct()
        arguments.update({"text": f"call {number}"})
        operation = await stub.CallTool(
            tools_pb2.CallToolRequest(name="tools/test.echo", arguments=arguments),
            metadata=caller.metadata,
            timeout=10,
        )
        if not operation.done or operation.HasField("error"):
            raise RuntimeError(f"gRPC CallTool did not succeed: {operation}")

    return call


def _mcp_call(client: Client) -> Call:
    async def call(number: int) -> None:
        result = await client.call_tool("test_echo", {"text": f"call {number}"})
        if result.is_error or result.structured_content != {"echo": f"call {number}"}:
            raise RuntimeError(f"MCP tools/call did not succeed: {result}")

    return call


async def _measure(targets: dict[str, Call]) -> dict[str, list[float]]:
    """Warm each target up, then take turns in blocks; seconds per call, per target."""
    for call in targets.values():
        for number in range(WARM_UP):
            await call(number)
    timings: dict[str, list[float]] = {label: [] for label in targets}
    for start in range(0, CALLS, BLOCK):
        for label, call in targets.items():
            for number in range(start, min(start + BLOCK, CALLS)):
                began = time.perf_counter()
                await call(number)
                timings[label].append(time.perf_counter() - began)
    return timings


async def run() -> None:
    heading(
        f"mcp: tools/call (test.echo, quick) over Streamable HTTP vs gRPC CallTool, "
        f"{CALLS} sequential calls per target after {WARM_UP} warm-up, in turns of {BLOCK}; "
        f"server and Envoy on core {SERVER_CORE}, client on core {LOAD_CORE}"
    )
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-mcp-") as tmp:
        root = Path(tmp)
        data_dir = root / "sqlite"
        data_dir.mkdir()
        caller = for_server(data_dir)
        async with running(_server(data_dir)) as ready:
            grpc_address, http_address = ready.group(1), ready.group(2)
            envoy, listen = _envoy(root, grpc_address, http_address, SERVER_CORE)
            url = f"http://{listen}/mcp"
            headers = dict(for_server(data_dir, audience=url).metadata)
            async with (
                running(envoy),
                grpc.aio.insecure_channel(grpc_address) as channel,
                create_mcp_http_client(headers=headers) as legacy_http,
                create_mcp_http_client(headers=headers) as modern_http,
            ):
                await _accepting(listen)
                async with (
                    Client(
                        streamable_http_client(url, http_client=legacy_http), mode="legacy"
                    ) as legacy,
                    Client(
                        streamable_http_client(url, http_client=modern_http), mode="2026-07-28"
                    ) as modern,
                ):
                    note(f"revisions: {legacy.protocol_version}, {modern.protocol_version}")
                    targets = {
                        GRPC: _grpc_call(tools_pb2_grpc.ToolsServiceStub(channel), caller),
                        LEGACY: _mcp_call(legacy),
                        MODERN: _mcp_call(modern),
                    }
                    with _on_core(LOAD_CORE):
                        timings = await _measure(targets)
    p50s = {}
    for label, values in timings.items():
        p50s[label] = percentile(values, 0.5) * 1e3
        figure(f"{label} p50", p50s[label], "ms")
        figure(f"{label} p99", percentile(values, 0.99) * 1e3, "ms")
    ratio("p50 MCP 2025-11-25 through Envoy / gRPC", p50s[LEGACY], p50s[GRPC])
    ratio("p50 MCP 2026-07-28 through Envoy / gRPC", p50s[MODERN], p50s[GRPC])
