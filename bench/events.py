"""`events`: the event pipeline from a node to the database, and WatchEvents delivery.

1. Written per second by one node: 200 instances each report 25 state changes (5,000 events)
   through the node's real path: `NodeEvents` (a spool file each, published in order with
   publisher confirms) -> RabbitMQ's events flow -> the API's consumer -> recorded in
   PostgreSQL (group commits). Time from the first report to the last event recorded. (The
   events are reported directly, not by 200 running processes: what is measured is the
   pipeline a node's events take, not how fast processes crash.)
2. Delivery latency: an `fmcp serve`-equivalent server (the Application, PostgreSQL) on core 0;
   a client process on core 1 opens N WatchEvents streams (bench/events_client.py); the
   producer records 30 events one at a time, each when every stream has the previous one.
   Latency = arrival - the event's time. N = 1,000 against the N = 1 baseline of the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import LOAD_CORE, PYTHON, ROOT, SERVER_CORE, figure, heading, note, ratio
from bench.databases import scratch_postgres
from bench.identity import Identity, for_server
from bench.processes import pinned
from formation_mcp.app import Application
from formation_mcp.broker.factory import create_broker
from formation_mcp.clock import now_us
from formation_mcp.db.schema import events as events_table
from formation_mcp.events.model import NewEvent, Severity
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.settings import Settings

RABBITMQ_URL = os.environ.get("FMCP_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
INSTANCES, CHANGES = 200, 25
WATCHERS, ROUNDS = 1000, 30
ROUND_TIMEOUT_S = 60.0


def _settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        grpc_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        data_dir=data_dir,
        database_url=database_url,
        log_level="WARNING",
        shutdown_grace_seconds=1.0,
    )
    return replace(base, **overrides)


async def _recorded(app: Application) -> int:
    query = sa.select(sa.func.count()).select_from(events_table)
    async with app.database.read() as conn:
        return int((await conn.execute(query)).scalar() or 0)


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def _pipeline(database_url: str, data_dir: Path) -> None:
    prefix = f"fmcp-bench-{uuid.uuid4().hex[:8]}"
    app = Application(
        _settings(data_dir, database_url, broker_url=RABBITMQ_URL, broker_prefix=prefix),
        run_worker=False,
    )
    await app.start()
    await asyncio.wait_for(app.broker_ready.wait(), 30)
    node_broker = create_broker(RABBITMQ_URL, 3, prefix=prefix)
    await node_broker.start()
    reporter = NodeEvents(data_dir / "spool", "bench-node")
    try:
        total = INSTANCES * CHANGES
        await reporter.start(node_broker)
        started = time.perf_counter()
        for change in range(CHANGES):
            for instance in range(INSTANCES):
                reporter.report(
                    "instance.running",
                    f"instances/bench-{instance}",
                    "accounts/bench-caller",
                    Severity.INFO,
                    f"change {change}",
                    pid=change,
                )
        spooled = time.perf_counter() - started

        async def all_published() -> bool:
            return reporter.published >= total

        async def all_recorded() -> bool:
            return await _recorded(app) >= total

        await _until(all_published, 300)
        published = time.perf_counter() - started
        await _until(all_recorded, 300)
        elapsed = time.perf_counter() - started
        figure("node events spooled per second (report)", total / spooled, "events/s", 0)
        figure(
            "node events published per second (confirmed by RabbitMQ)",
            total / published,
            "events/s",
            0,
        )
        figure(
            "node events recorded per second (spool -> RabbitMQ -> API -> PostgreSQL)",
            total / elapsed,
            "events/s",
            0,
        )
        note(f"{total} events from {INSTANCES} instances x {CHANGES} changes, {elapsed:.2f} s")
    finally:
        await reporter.stop(5)
        await node_broker.close()
        await app.stop()


async def _watch_round(app: Application, identity: Identity, streams: int) -> dict[str, float]:
    client = await asyncio.create_subprocess_exec(
        *pinned(
            [
                PYTHON,
                "-m",
                "bench.events_client",
                "--address",
                app.grpc.address,
                "--streams",
                str(streams),
                "--events",
                str(ROUNDS),
            ],
            LOAD_CORE,
        ),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "FMCP_BENCH_CALL_METADATA": json.dumps(identity.metadata)},
    )
    assert client.stdout is not None
    try:

        async def subscribed() -> bool:
            return app.events.hub.watchers >= streams

        await _until(subscribed, ROUND_TIMEOUT_S * 2)
        for round_number in range(1, ROUNDS + 1):
            await app.events.record(
                [
                    NewEvent(
                        uuid.uuid4().hex,
                        "instance.running",
                        "instances/bench",
                        identity.owner,
                        now_us(),
                        Severity.INFO,
                        f"round {round_number}",
                    )
                ]
            )
            async with asyncio.timeout(ROUND_TIMEOUT_S):
                while True:
                    line = (await client.stdout.readline()).decode()
                    if not line:
                        raise RuntimeError("the client ended early")
                    if line.startswith(f"got {round_number}"):
                        break
        async with asyncio.timeout(ROUND_TIMEOUT_S):
            while True:
                line = (await client.stdout.readline()).decode()
                if line.startswith("result "):
                    result: dict[str, float] = json.loads(line[7:])
                    return result
                if not line:
                    raise RuntimeError("the client ended without a result")
    finally:
        if client.returncode is None:
            client.kill()
            await client.wait()


async def _delivery(database_url: str, data_dir: Path) -> None:
    identity = for_server(data_dir)
    os.sched_setaffinity(0, {SERVER_CORE})
    app = Application(_settings(data_dir, database_url), run_worker=False)
    await app.start()
    try:
        baseline = await _watch_round(app, identity, 1)
        loaded = await _watch_round(app, identity, WATCHERS)
    finally:
        await app.stop()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    for label, result in (("1 watcher", baseline), (f"{WATCHERS} watchers", loaded)):
        figure(f"WatchEvents delivery p50, {label}", result["p50_ms"], "ms")
        figure(f"WatchEvents delivery p99, {label}", result["p99_ms"], "ms")
        note(
            f"{label}: {result['received']} events received, {result['exact_streams']} of "
            f"{result['streams']} streams got every event once in order, errors {result['errors']}"
        )
    ratio(f"p50 {WATCHERS} watchers / 1 watcher", loaded["p50_ms"], baseline["p50_ms"])
    ratio(f"p99 {WATCHERS} watchers / 1 watcher", loaded["p99_ms"], baseline["p99_ms"])


async def run() -> None:
    heading("events: node events written per second; WatchEvents delivery latency")
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-events-") as tmp:
        async with scratch_postgres() as url:
            await _pipeline(url, Path(tmp) / "pipeline")
        async with scratch_postgres() as url:
            await _delivery(url, Path(tmp) / "delivery")
