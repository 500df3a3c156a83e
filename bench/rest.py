"""`rest`: GetOperation as REST through Envoy against native gRPC straight to the server.

One `fmcp serve` (SQLite, the embedded default) holds one operation of the caller; both
targets read it from that same server, so the difference is Envoy and the JSON transcoding:

- native: h2load sends GetOperationRequest frames straight to the server's gRPC port
  (`-c 50 -m 10`, as `unary` does);
- REST: h2load `--h1` sends `GET /v1/operations/{id}` with the bearer header to Envoy over
  HTTP/1.1 keep-alive, one request at a time per connection, on 500 connections (the same
  500 requests in flight as native). Envoy transcodes to gRPC over its HTTP/2 connection to
  the server and the Operation back to JSON.

Envoy runs the deployed config (`envoy/envoy.yaml` rendered by `formation_mcp.envoy.write_config`,
access log on) with the binary and flags `EnvoyProcess` uses, plus `--concurrency 1` (one
worker: it has one core) and `--log-level info` (for its ready line; its stdout, the access
log, goes to a file). Two Envoys measure two deployments: one pinned with the server to core
0 (the REST figure pays for Envoy's CPU out of the server's core, as on a one-core host), one
pinned to core 1 (a front door with a core of its own, which it shares here with h2load, so
that figure is a lower bound). The
targets take turns. Before any load, one REST request must answer 200 with the operation's
JSON and curl must see grpc-status 0 natively. CPU per request (server and Envoy, from /proc)
is printed for each target: the server's native/REST ratio is what REST would reach with
Envoy on cores of its own (the server then being the bottleneck of both).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import tempfile
import urllib.request
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formation.mcp.v1 import operations_pb2

from bench import h2load
from bench.common import LOAD_CORE, SERVER_CORE, figure, heading, note, ratio, target
from bench.databases import seed_one, sqlite_url
from bench.identity import Identity, for_server
from bench.processes import ServerProcess, cpu_seconds, fmcp_server, pinned, running
from formation_mcp.envoy import envoy_binary, write_config

SECONDS = int(os.environ.get("FMCP_BENCH_REST_SECONDS", "20"))  # per target, warm-ups aside
ROUNDS = 2  # the targets take turns, so that other load on the machine hits them alike
WARM_UP = 2
CLIENTS, STREAMS = 50, 10  # native: 50 HTTP/2 connections x 10 streams
REST_CONNECTIONS = CLIENTS * STREAMS  # REST: HTTP/1.1, one request at a time per connection
TARGET_RATIO = 0.9
GET_PATH = "/formation.mcp.v1.OperationsService/GetOperation"
ENVOY_READY = re.compile(r"starting main dispatch loop")


@dataclass(frozen=True, slots=True)
class Run:
    result: h2load.LoadResult
    server_cpu: float  # seconds of CPU used during the run, warm-up included
    envoy_cpu: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _envoy(
    root: Path, grpc_address: str, http_address: str, core: int
) -> tuple[ServerProcess, str]:
    """Envoy with the deployed config in front of the server, pinned to `core`."""
    listen = f"127.0.0.1:{_free_port()}"
    folder = root / f"envoy-core{core}"
    config = write_config(
        folder, listen=listen, grpc_upstream=grpc_address, http_upstream=http_address
    )
    argv = [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--concurrency", "1"]
    argv += ["--log-level", "info"]  # for the ready line; the access log goes there too
    return ServerProcess(argv, log_path=folder / "envoy.log", ready=ENVOY_READY, core=core), listen


async def _accepting(address: str, timeout: float = 30.0) -> None:
    host, _, port = address.rpartition(":")
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection(host, int(port))
                writer.close()
                await writer.wait_closed()
                return
            await asyncio.sleep(0.05)


def _check_rest(url: str, caller: Identity, name: str) -> None:
    request = urllib.request.Request(url, headers=dict(caller.metadata))
    with urllib.request.urlopen(request, timeout=10) as response:
        status, body = response.status, json.loads(response.read())
    if status != 200 or body.get("name") != name:
        raise RuntimeError(f"REST GetOperation answered {status} {body}; not loading it")


async def _load_rest(url: str, caller: Identity, seconds: int) -> h2load.LoadResult:
    """A duration-based h2load run over HTTP/1.1 keep-alive (no pipelining), on the load core."""
    argv = ["h2load", "--h1", f"-D{seconds}", f"--warm-up-time={WARM_UP}"]
    argv += [f"-c{REST_CONNECTIONS}", "-m1"]
    for header in caller.headers:
        argv += ["-H", header]
    code, out, err = await h2load._run(
        pinned([*argv, url], LOAD_CORE), timeout=seconds + WARM_UP + 60
    )
    if code != 0:
        raise RuntimeError(f"h2load exited with {code}:\n{out}\n{err}")
    return h2load._parse(out)


def _grpc_codes(http_address: str) -> str:
    """GetOperation calls by status code, from the server's /metrics (warm-ups included)."""
    with urllib.request.urlopen(f"http://{http_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    codes: dict[str, float] = {}
    pattern = r'^fmcp_grpc_calls_total\{code="(\w+)",method="([^"]+)"\} (\S+)$'
    for code, method, value in re.findall(pattern, text, re.MULTILINE):
        if method == GET_PATH:
            codes[code] = codes.get(code, 0.0) + float(value)
    return ", ".join(f"{code} {count:,.0f}" for code, count in sorted(codes.items()))


def _report(label: str, runs: list[Run], envoy_core: int | None) -> tuple[float, float]:
    """Prints a target's figures; its rate and the server's CPU per request (µs)."""
    rate = sum(run.result.rate for run in runs) / len(runs)
    figure(f"{label} rate", rate, "req/s", 0)
    each = ", ".join(f"{run.result.rate:,.0f}" for run in runs)
    succeeded = sum(run.result.succeeded for run in runs)
    failed = sum(run.result.failed for run in runs)
    mean_ms = sum(run.result.mean_ms for run in runs) / len(runs)
    note(
        f"runs: {each} req/s; h2load: {succeeded:,} succeeded, {failed:,} failed, "
        f"mean {mean_ms:.0f} ms per request"
    )
    # CPU covers warm-up and measured period alike; so do the requests counted here.
    requests = sum(run.result.rate * (SECONDS // ROUNDS + WARM_UP) for run in runs)
    server_us = sum(run.server_cpu for run in runs) / requests * 1e6
    envoy_us = sum(run.envoy_cpu for run in runs) / requests * 1e6
    where = "" if envoy_core is None else f" (Envoy on core {envoy_core})"
    note(f"CPU per request: server {server_us:.0f} µs, Envoy {envoy_us:.0f} µs{where}")
    return rate, server_us


async def _measured(
    load: Coroutine[Any, Any, h2load.LoadResult], server: ServerProcess, envoy: ServerProcess
) -> Run:
    server_before, envoy_before = cpu_seconds(server.pid), cpu_seconds(envoy.pid)
    result = await load
    return Run(
        result, cpu_seconds(server.pid) - server_before, cpu_seconds(envoy.pid) - envoy_before
    )


async def run() -> None:
    heading(
        f"rest: GetOperation as REST through Envoy (h2load --h1 -c {REST_CONNECTIONS} -m 1) vs "
        f"native gRPC to the server (h2load -c {CLIENTS} -m {STREAMS}), {ROUNDS} x "
        f"{SECONDS // ROUNDS} s (+{WARM_UP} s warm-up) each, taking turns; server on core "
        f"{SERVER_CORE}, h2load on core {LOAD_CORE}; one Envoy on the server's core, one on "
        "the load generator's"
    )
    h2load.require_tools()
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-rest-") as tmp:
        root = Path(tmp)
        data_dir = root / "sqlite"
        data_dir.mkdir()
        caller = for_server(data_dir)
        name = await seed_one(sqlite_url(data_dir), caller.owner)
        server = fmcp_server(data_dir, None)
        async with running(server) as ready:
            grpc_address, http_address = ready.group(1), ready.group(2)
            shared, shared_listen = _envoy(root, grpc_address, http_address, SERVER_CORE)
            own, own_listen = _envoy(root, grpc_address, http_address, LOAD_CORE)
            async with running(shared), running(own):
                await _accepting(shared_listen)
                await _accepting(own_listen)
                native_url = f"http://{grpc_address}{GET_PATH}"
                body = root / "get.grpc"
                body.write_bytes(h2load.grpc_frame(operations_pb2.GetOperationRequest(name=name)))
                shared_url = f"http://{shared_listen}/v1/{name}"
                own_url = f"http://{own_listen}/v1/{name}"
                status = await h2load.grpc_status(native_url, body, caller.headers)
                if status != "0":
                    raise RuntimeError(f"native GetOperation: grpc-status {status}; not loading")
                await asyncio.to_thread(_check_rest, shared_url, caller, name)
                await asyncio.to_thread(_check_rest, own_url, caller, name)
                native: list[Run] = []
                rest_shared: list[Run] = []
                rest_own: list[Run] = []
                for _ in range(ROUNDS):
                    load = h2load.load(
                        native_url,
                        body,
                        headers=caller.headers,
                        seconds=SECONDS // ROUNDS,
                        warm_up=WARM_UP,
                        clients=CLIENTS,
                        streams=STREAMS,
                    )
                    native.append(await _measured(load, server, shared))
                    load = _load_rest(shared_url, caller, SECONDS // ROUNDS)
                    rest_shared.append(await _measured(load, server, shared))
                    load = _load_rest(own_url, caller, SECONDS // ROUNDS)
                    rest_own.append(await _measured(load, server, own))
                native_rate, native_us = _report(
                    "native gRPC, straight to the server", native, None
                )
                shared_rate, shared_us = _report(
                    "REST through Envoy on the server's core", rest_shared, SERVER_CORE
                )
                own_rate, _own_us = _report(
                    "REST through Envoy on a core of its own (shared with h2load)",
                    rest_own,
                    LOAD_CORE,
                )
                note(
                    "the server's own count of GetOperation calls (all targets, warm-ups "
                    f"included): {_grpc_codes(http_address)}"
                )
    value = ratio("REST through Envoy on the server's core / native gRPC", shared_rate, native_rate)
    target("REST, Envoy sharing the server's core", value, TARGET_RATIO, at_least=True)
    value = ratio("REST through Envoy on a core of its own / native gRPC", own_rate, native_rate)
    target("REST, Envoy on a core of its own", value, TARGET_RATIO, at_least=True)
    ratio("server CPU per request, native / REST", native_us, shared_us)
