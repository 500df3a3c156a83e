"""Logins per second: CreateChallenge, an Ed25519 signature, Login, with a fresh key each time
(every login also creates its account: open sign-up), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import percentile
from bench.databases import scratch_postgres
from bench.processes import fmcp_server, running
from formation_mcp.client.auth import login

CONCURRENT_CLIENTS = 32
SECONDS = 10.0


async def _measure(address: str) -> tuple[float, list[float]]:
    keys = [Ed25519PrivateKey.generate() for _ in range(4096)]
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(address) as channel:
        deadline = time.perf_counter() + SECONDS
        next_key = 0

        async def client() -> None:
            nonlocal next_key
            while time.perf_counter() < deadline:
                key = keys[next_key % len(keys)]
                next_key += 1
                began = time.perf_counter()
                await login(channel, key)
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CONCURRENT_CLIENTS)))
        return len(latencies) / (time.perf_counter() - began), latencies


async def run() -> None:
    print("\n== logins (challenge + Ed25519 signature + login) ==")
    print(
        f"server on core 0; {CONCURRENT_CLIENTS} concurrent clients in this process; "
        "4,096 keys reused round-robin (the first login of each creates its account)"
    )
    for backend in ("sqlite", "postgres"):
        with tempfile.TemporaryDirectory(prefix="fmcp-bench-login-") as scratch:
            data_dir = Path(scratch)
            if backend == "postgres":
                async with scratch_postgres() as url:
                    rate, latencies = await _run_one(data_dir, url)
            else:
                rate, latencies = await _run_one(data_dir, None)
        p50, p99 = (percentile(latencies, f) * 1000 for f in (0.5, 0.99))
        print(f"{backend:8}: {rate:,.0f} logins/s; per login p50 {p50:.1f} ms, p99 {p99:.1f} ms")


async def _run_one(data_dir: Path, database_url: str | None) -> tuple[float, list[float]]:
    server = fmcp_server(data_dir, database_url)
    assert server.env is not None
    server.env["FMCP_LOGIN_RATE"] = "100000000"  # measure the work, not the abuse limit
    async with running(server) as ready:
        return await _measure(ready.group(1))
