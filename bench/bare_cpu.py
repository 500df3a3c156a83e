"""The baseline of the CPU ratios: server CPU per no-op unary RPC of the bare grpc.aio server
(`bench/bare_server.py`), pinned like the server it is compared with and loaded by h2load
(`-c 50 -m 10`, pinned to the load core)."""

from __future__ import annotations

import re
from pathlib import Path

from formation.mcp.v1 import operations_pb2

from bench import h2load
from bench.bare_server import PATH
from bench.common import PYTHON
from bench.cpu import tree_cpu_seconds
from bench.processes import ServerProcess, running

WARM_UP_SECONDS = 1


async def bare_cpu_ms_per_rpc(root: Path, core: int, seconds: int) -> float:
    """Start the bare server on `core`, load it for `seconds`, return its CPU ms per RPC."""
    server = ServerProcess(
        [PYTHON, "-m", "bench.bare_server"],
        log_path=root / "bare.log",
        ready=re.compile(r"bare: gRPC on (\S+)"),
        core=core,
    )
    body = root / "bare.grpc"
    body.write_bytes(h2load.grpc_frame(operations_pb2.GetOperationRequest(name="operations/x")))
    async with running(server) as ready:
        url = f"http://{ready.group(1)}{PATH}"
        await h2load.load(url, body, seconds=WARM_UP_SECONDS, warm_up=0)
        before = tree_cpu_seconds([server.pid])
        result = await h2load.load(url, body, seconds=seconds, warm_up=0)
        used = tree_cpu_seconds([server.pid]) - before
    if result.succeeded == 0:
        raise RuntimeError(f"the bare server answered no request:\n{result.output}")
    return used * 1000 / result.succeeded
