"""`list`: ListOperations latency with 10k and with 1M operations owned by the caller.

Operations are bulk-inserted in the store's own row format (`store._row_values`), with 10 %
more owned by 100 other accounts, interleaved in time; 5 % are RUNNING, 1 % PENDING, the rest
finished. The two sizes live in two databases, each served by its own `fmcp serve` (both on
core 0); one client makes sequential calls, alternating between the two servers in blocks of
25 calls so that other load on the machine hits both alike: the first page (page_size 50, no
filter) and the filtered query `state = RUNNING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc

from bench.common import heading, note, percentile, ratio, target
from bench.databases import bulk_seed, migrated, scratch_postgres, sqlite_url
from bench.identity import Identity, for_server
from bench.processes import fmcp_server, running

SMALL, LARGE = 10_000, 1_000_000
OTHERS_SHARE = 0.10
WARM_UP_CALLS, CALLS, BLOCK = 30, 300, 25
PAGE_SIZE = 50
QUERIES = {"first page": "", "state = RUNNING": "state = RUNNING"}
TARGET_RATIO = 1.5
SQLITE_SEED_BUDGET_S = 120.0
SETTLE_S = 2.0  # let the server's start-up work (gauges, sweep) finish before measuring


def _size(count: int) -> str:
    return f"{count // 1_000_000}M" if count >= 1_000_000 else f"{count // 1000}k"


@dataclass(frozen=True, slots=True)
class Dataset:
    """One database with `owned` operations of the caller, and the server over it."""

    owned: int
    data_dir: Path
    seed_url: str
    server_url: str | None  # FMCP_DATABASE_URL; None: the embedded default in data_dir

    @property
    def label(self) -> str:
        return _size(self.owned)


class Client:
    """One channel to one server, calling as the dataset's caller."""

    def __init__(self, address: str, caller: Identity) -> None:
        self._channel = grpc.aio.insecure_channel(address)
        self._stub = operations_pb2_grpc.OperationsServiceStub(self._channel)
        self._metadata = caller.metadata

    async def call(self, filter_text: str) -> operations_pb2.ListOperationsResponse:
        request = operations_pb2.ListOperationsRequest(filter=filter_text, page_size=PAGE_SIZE)
        return await self._stub.ListOperations(request, metadata=self._metadata, timeout=30)

    async def timed(self, filter_text: str, calls: int) -> list[float]:
        """Milliseconds per call, `calls` calls one after the other."""
        samples = []
        for _ in range(calls):
            began = time.perf_counter()
            await self.call(filter_text)
            samples.append((time.perf_counter() - began) * 1000)
        return samples

    async def close(self) -> None:
        await self._channel.close()


async def _seed(dataset: Dataset, owner: str) -> float:
    """Rows per second."""
    others = round(dataset.owned * OTHERS_SHARE)
    async with migrated(dataset.seed_url) as database:
        seconds = await bulk_seed(database, owner, dataset.owned, others)
    rows = dataset.owned + others
    note(f"seeded {rows:,} rows ({dataset.label} of the caller) in {seconds:.1f} s")
    return rows / seconds


async def _compare(backend: str, clients: Sequence[Client], labels: Sequence[str]) -> None:
    for query, filter_text in QUERIES.items():
        samples: list[list[float]] = [[] for _ in clients]
        for client in clients:
            first = await client.call(filter_text)
            if len(first.operations) != PAGE_SIZE or not first.next_page_token:
                raise RuntimeError(f"{query}: expected a full page, got {len(first.operations)}")
            await client.timed(filter_text, WARM_UP_CALLS)
        for _ in range(CALLS // BLOCK):
            for index, client in enumerate(clients):
                samples[index] += await client.timed(filter_text, BLOCK)
        p50s = []
        for label, values in zip(labels, samples, strict=True):
            p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
            p50s.append(p50)
            print(f"{backend} {label}, {query}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        if len(p50s) == 2:
            sizes = f"{labels[1]}/{labels[0]}"
            value = ratio(f"{backend} {query} p50 {sizes}", p50s[1], p50s[0])
            target(f"{backend} {query} p50 {sizes}", value, TARGET_RATIO, at_least=False)


async def _backend(backend: str, small: Dataset, large: Dataset) -> None:
    datasets = [small, large]
    callers = [for_server(dataset.data_dir) for dataset in datasets]
    rows_per_s = await _seed(small, callers[0].owner)
    projected = large.owned * (1 + OTHERS_SHARE) / rows_per_s
    if backend == "SQLite" and projected > SQLITE_SEED_BUDGET_S:
        note(f"no {large.label} on SQLite: seeding would take about {projected:.0f} s")
        datasets, callers = datasets[:1], callers[:1]
    else:
        await _seed(large, callers[1].owner)
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for dataset, caller in zip(datasets, callers, strict=True):
            server = fmcp_server(dataset.data_dir, dataset.server_url)
            ready = await stack.enter_async_context(running(server))
            client = Client(ready.group(1), caller)
            stack.push_async_callback(client.close)
            clients.append(client)
        await asyncio.sleep(SETTLE_S)
        await _compare(backend, clients, [dataset.label for dataset in datasets])


@contextlib.asynccontextmanager
async def _directory(name: str) -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"fmcp-bench-list-{name}-") as tmp:
        yield Path(tmp)


async def run() -> None:
    heading(
        f"list: ListOperations p50/p99 over {CALLS} sequential calls (after {WARM_UP_CALLS} "
        f"warm-up), page_size {PAGE_SIZE}, {_size(SMALL)} vs {_size(LARGE)} operations of the "
        "caller (+10 % owned by others), each on its own server, alternating"
    )
    async with (
        _directory("pg") as root,
        scratch_postgres() as small_url,
        scratch_postgres() as large_url,
    ):
        small = Dataset(SMALL, root / "small", small_url, small_url)
        large = Dataset(LARGE, root / "large", large_url, large_url)
        await _backend("PostgreSQL", small, large)
    async with _directory("sqlite") as root:
        small = Dataset(SMALL, root / "small", sqlite_url(root / "small"), None)
        large = Dataset(LARGE, root / "large", sqlite_url(root / "large"), None)
        await _backend("SQLite", small, large)
