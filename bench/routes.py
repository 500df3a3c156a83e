"""`routes`: requests/s through an exposed route (network.expose) against the same instance
straight at its loopback port, in one run.

`fmcp serve --envoy` (SQLite, in-process broker and worker, Envoy with its default
concurrency) builds and ships a small keep-alive HTTP/1.1 app (Python's threading HTTP
server), and exposes it at /bench/. h2load `--h1` then sends `GET /` on 20 keep-alive
connections, one request at a time each, to the instance's port and to the route on Envoy's
port (which rewrites /bench/ to / and proxies to the instance's cluster), taking turns for
2 rounds. Both answers are checked before any load. The ratio is what the front door costs
an instance whose own server is the bottleneck; h2load runs on its own core, the server,
Envoy and the instance share the other.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf import json_format

from bench import h2load, identity
from bench.common import FMCP, LOAD_CORE, figure, heading, note, ratio
from bench.processes import FMCP_READY, ServerProcess, fmcp_env, pinned, running

SECONDS = 8
WARM_UP = 1
ROUNDS = 2
CONNECTIONS = 20
FORMFILE = """\
NAME bench-route
RUN python3 -m py_compile app.py
ENTRYPOINT ["python3", "app.py"]
EXPOSE 8080
"""
APP = """\
import http.server, os

class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello from the bench"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Hello).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _call(
    channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...], tool: str, arguments: Any
) -> dict[str, Any]:
    request = tools_pb2.CallToolRequest(name=f"tools/{tool}")
    json_format.ParseDict(arguments, request.arguments)
    operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(request, metadata=md)
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


async def _answers(url: str, deadline: float = 30.0) -> None:
    """`url` answers 200 with the app's body (the route reaches Envoy within a second)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return body

    while True:
        try:
            if await asyncio.to_thread(get) == b"hello from the bench":
                return
        except OSError:
            pass
        if loop.time() > end:
            raise RuntimeError(f"{url} never answered the app's body")
        await asyncio.sleep(0.1)


async def _load(url: str) -> h2load.LoadResult:
    argv = ["h2load", "--h1", f"-D{SECONDS}", f"--warm-up-time={WARM_UP}"]
    argv += [f"-c{CONNECTIONS}", "-m1", url]
    code, out, err = await h2load._run(pinned(argv, LOAD_CORE), timeout=SECONDS + WARM_UP + 60)
    if code != 0:
        raise RuntimeError(f"h2load exited with {code}:\n{out}\n{err}")
    return h2load._parse(out)


async def run() -> None:
    heading("routes: an exposed instance through Envoy vs straight to its port")
    note(
        f"h2load --h1 -c {CONNECTIONS} -m 1, {ROUNDS} x {SECONDS}s per target taking turns; "
        f"h2load on core {LOAD_CORE}"
    )
    h2load.require_tools()
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-routes-") as scratch:
        data_dir = Path(scratch) / "data"
        caller = identity.for_server(data_dir)
        envoy_listen = f"127.0.0.1:{_free_port()}"
        env = fmcp_env(data_dir, None) | {"FMCP_ENVOY_LISTEN": envoy_listen}
        server = ServerProcess(
            [FMCP, "serve", "--envoy"],
            log_path=data_dir / "fmcp.log",
            ready=FMCP_READY,
            env=env,
            core=None,
        )
        async with running(server) as ready, grpc.aio.insecure_channel(ready.group(1)) as channel:
            md = caller.metadata
            built = await _call(
                channel, md, "pack.build", {"formfile": FORMFILE, "context_files": {"app.py": APP}}
            )
            instance = await _call(
                channel,
                md,
                "pack.ship",
                {"build_id": built["build_id"], "instance_name": "bench-route"},
            )
            await _call(channel, md, "network.expose", {"id": "bench-route", "path": "/bench/"})
            direct = f"http://127.0.0.1:{int(instance['ports']['8080'])}/"
            routed = f"http://{envoy_listen}/bench/"
            await _answers(direct)
            await _answers(routed)
            rates: dict[str, list[float]] = {"direct": [], "route": []}
            failed = {"direct": 0, "route": 0}
            for _ in range(ROUNDS):
                for label, url in (("direct", direct), ("route", routed)):
                    result = await _load(url)
                    rates[label].append(result.rate)
                    failed[label] += result.failed
    direct_rate = sum(rates["direct"]) / ROUNDS
    route_rate = sum(rates["route"]) / ROUNDS
    figure("straight to the instance's port", direct_rate, "req/s", 0)
    note(f"runs: {', '.join(f'{r:,.0f}' for r in rates['direct'])}; failed {failed['direct']}")
    figure("through the exposed route (Envoy)", route_rate, "req/s", 0)
    note(f"runs: {', '.join(f'{r:,.0f}' for r in rates['route'])}; failed {failed['route']}")
    ratio("route / direct", route_rate, direct_rate)
