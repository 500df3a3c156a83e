"""`unary`: GetOperation throughput of `fmcp serve` against a bare grpc.aio no-op server.

All servers run pinned to core 0 and are loaded, one at a time and taking turns, by h2load
pinned to core 1 with the same request bytes (a GetOperationRequest frame). Ours answers
GetOperation for an operation seeded beforehand, on the embedded default (SQLite) and on
PostgreSQL. Every target is checked for grpc-status 0 with curl before any load.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from formation.mcp.v1 import operations_pb2

from bench import h2load
from bench.bare_server import PATH as BARE_PATH
from bench.common import PYTHON, figure, heading, note, ratio, target
from bench.databases import scratch_postgres, seed_one, sqlite_url
from bench.identity import Identity, for_server
from bench.processes import ServerProcess, fmcp_server, running

SECONDS = int(os.environ.get("FMCP_BENCH_UNARY_SECONDS", "20"))  # per target, warm-ups aside
ROUNDS = 2  # the targets take turns, so that other load on the machine hits them alike
WARM_UP = 2
CLIENTS, STREAMS = 50, 10
TARGET_RATIO = 0.7
TARGET_AUTH_RATIO = 0.65  # the Auth issue: authenticated calls, verified tokens cached
GET_PATH = "/formation.mcp.v1.OperationsService/GetOperation"


def _body(directory: Path, name: str) -> Path:
    path = directory / f"get-{name.rpartition('/')[2]}.grpc"
    path.write_bytes(h2load.grpc_frame(operations_pb2.GetOperationRequest(name=name)))
    return path


def _grpc_codes(http_address: str) -> dict[str, float]:
    """GetOperation calls by status code, from the server's /metrics."""
    with urllib.request.urlopen(f"http://{http_address}/metrics", timeout=10) as response:
        text = response.read().decode()
    codes: dict[str, float] = {}
    pattern = r'^fmcp_grpc_calls_total\{code="(\w+)",method="([^"]+)"\} (\S+)$'
    for code, method, value in re.findall(pattern, text, re.MULTILINE):
        if method == GET_PATH:
            codes[code] = codes.get(code, 0.0) + float(value)
    return codes


@dataclass(frozen=True, slots=True)
class Target:
    label: str
    url: str
    body: Path
    headers: tuple[str, ...] = ()
    http_address: str | None = None  # ours: where /metrics is


def _bare_server(root: Path) -> ServerProcess:
    return ServerProcess(
        [PYTHON, "-m", "bench.bare_server"],
        log_path=root / "bare.log",
        ready=re.compile(r"bare: gRPC on (\S+)"),
    )


async def _ours(
    stack: contextlib.AsyncExitStack,
    label: str,
    data_dir: Path,
    server_url: str | None,
    seed: str,
    extra_env: dict[str, str] | None = None,
) -> Target:
    """Seed one operation of the caller, start `fmcp serve` over it."""
    caller: Identity = for_server(data_dir)
    name = await seed_one(seed, caller.owner)
    server = fmcp_server(data_dir, server_url)
    assert server.env is not None
    server.env.update(extra_env or {})
    ready = await stack.enter_async_context(running(server))
    url = f"http://{ready.group(1)}{GET_PATH}"
    return Target(label, url, _body(data_dir, name), caller.headers, ready.group(2))


async def _targets(stack: contextlib.AsyncExitStack, root: Path) -> list[Target]:
    bare = await stack.enter_async_context(running(_bare_server(root)))
    probe = _body(root, "operations/" + "0" * 32)  # the same size as every real request
    targets = [Target("bare grpc.aio no-op", f"http://{bare.group(1)}{BARE_PATH}", probe)]
    sqlite_dir, pg_dir = root / "sqlite", root / "postgres"
    sqlite_dir.mkdir()
    pg_dir.mkdir()
    label = "fmcp GetOperation (SQLite, embedded default)"
    targets.append(await _ours(stack, label, sqlite_dir, None, sqlite_url(sqlite_dir)))
    pg_url = await stack.enter_async_context(scratch_postgres())
    targets.append(await _ours(stack, "fmcp GetOperation (PostgreSQL)", pg_dir, pg_url, pg_url))
    no_cache_dir = root / "postgres-no-token-cache"
    no_cache_dir.mkdir()
    targets.append(
        await _ours(
            stack,
            "fmcp GetOperation (PostgreSQL, token cache off)",
            no_cache_dir,
            pg_url,
            pg_url,
            {"FMCP_TOKEN_CACHE": "0"},
        )
    )
    for target_ in targets:
        status = await h2load.grpc_status(target_.url, target_.body, target_.headers)
        if status != "0":
            raise RuntimeError(f"{target_.label}: curl got grpc-status {status}; not loading it")
    return targets


async def _measure(targets: list[Target]) -> list[float]:
    """Requests per second of each target: ROUNDS h2load runs each, taking turns."""
    runs: list[list[h2load.LoadResult]] = [[] for _ in targets]
    for _ in range(ROUNDS):
        for index, target_ in enumerate(targets):
            result = await h2load.load(
                target_.url,
                target_.body,
                headers=target_.headers,
                seconds=SECONDS // ROUNDS,
                warm_up=WARM_UP,
                clients=CLIENTS,
                streams=STREAMS,
            )
            runs[index].append(result)
    rates = []
    for target_, results in zip(targets, runs, strict=True):
        rate = sum(r.rate for r in results) / len(results)
        rates.append(rate)
        figure(f"{target_.label} rate", rate, "req/s", 0)
        each = ", ".join(f"{r.rate:,.0f}" for r in results)
        succeeded = sum(r.succeeded for r in results)
        failed = sum(r.failed for r in results)
        mean_ms = sum(r.mean_ms for r in results) / len(results)
        note(
            f"runs: {each} req/s; h2load: {succeeded:,} succeeded, {failed:,} failed, "
            f"mean {mean_ms:.0f} ms per request"
        )
        if target_.http_address is not None:
            codes = _grpc_codes(target_.http_address)
            counted = ", ".join(f"{code} {count:,.0f}" for code, count in sorted(codes.items()))
            note(f"the server's own count of GetOperation calls (warm-ups included): {counted}")
    return rates


async def run() -> None:
    heading(
        f"unary: GetOperation, h2load -c {CLIENTS} -m {STREAMS}, {ROUNDS} x {SECONDS // ROUNDS} s "
        f"(+{WARM_UP} s warm-up each) per server, taking turns; servers on core 0, h2load on "
        "core 1"
    )
    h2load.require_tools()
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-unary-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            targets = await _targets(stack, Path(tmp))
            bare, ours_sqlite, ours_pg, ours_no_cache = await _measure(targets)
    value = ratio("ours/bare (SQLite)", ours_sqlite, bare)
    target("ours/bare (SQLite)", value, TARGET_RATIO, at_least=True)
    value = ratio("ours/bare (PostgreSQL)", ours_pg, bare)
    target("ours/bare (PostgreSQL)", value, TARGET_RATIO, at_least=True)
    target("authenticated, token cache on (PostgreSQL)", value, TARGET_AUTH_RATIO, at_least=True)
    ratio("ours/bare (PostgreSQL, token cache off)", ours_no_cache, bare)
