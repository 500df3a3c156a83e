"""Workload metrics: what sampling costs per instance, and vm.metrics' latency for a 24 h window.

Sampling: 200 real process groups (each a shell running `sleep`, in a session of its own, with
a directory of a few files) recorded as running instances of one node on SQLite; the node's
Sampler takes ticks as the worker does (one /proc pass, the tick's samples spooled as one
message and published by the node's events publisher; here to the in-memory broker, so
RabbitMQ's client is not in the figure). Printed:
this process's CPU time per tick and per instance (getrusage: the /proc work in its thread and
the publishing), and what that is as a share of one CPU at the default interval (10 s).
Baselines from the same run: one bare pass over /proc (ProcessTable.read) with nothing else,
and a sampler that inserts its ticks into the database itself (as the node did before its
samples went through the broker). Also: the API's CPU to store one tick (decode, one insert).

vm.metrics: 200 instances with a full day of samples as the node keeps them (the last hour
raw every 10 s, the 23 hours before as 1-minute points: 1 740 rows each, 348 000 in all), on
SQLite and PostgreSQL; the tool's executor called in-process for one instance, 24 h window
(60 points of 24 min) and 1 h window. Baseline: reading the same rows from the store alone.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from formation.mcp.internal.v1 import queue_pb2

from bench.common import figure, heading, note, percentile, ratio
from bench.databases import migrated, scratch_postgres, sqlite_url
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.catalog import workload_environment
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.settings import Settings
from formation_mcp.tools.context import ToolContext
from formation_mcp.workloads.instances import (
    InstanceRecord,
    InstanceState,
    InstanceStore,
    Resources,
)
from formation_mcp.workloads.metrics.procfs import ProcessTable
from formation_mcp.workloads.metrics.sample_messages import (
    SampleIngest,
    SamplePublisher,
    to_message,
)
from formation_mcp.workloads.metrics.sampler import Sampler
from formation_mcp.workloads.metrics.samples import MINUTE, Sample, SampleStore
from formation_mcp.workloads.metrics.tools import MetricsTools

INSTANCES = 200
TICKS = 20
CALLS = 40
DEFAULT_INTERVAL = 10.0
OWNER = "accounts/bench-metrics"


class _Groups:
    """The driver's side the sampler asks: running instance -> its process group leader."""

    def __init__(self, node_id: str, root: Path, groups: dict[str, int]) -> None:
        self.node_id = node_id
        self._root = root
        self._groups = groups

    def running_groups(self) -> Mapping[str, int]:
        return self._groups

    def directory(self, instance_id: str) -> Path:
        return self._root / instance_id


def _record(instance_id: str, node: str, index: int) -> InstanceRecord:
    now = now_us()
    return InstanceRecord(
        instance_id=instance_id,
        owner=OWNER,
        name=f"bench-{index}",
        build_id="0" * 64,
        node=node,
        state=InstanceState.RUNNING,
        resources=Resources(vcpus=1, memory_mb=256, disk_gb=1),
        create_time=now,
        update_time=now,
        start_time=now,
    )


def _process_group() -> subprocess.Popen[bytes]:
    """A shell and its child in a process group (and session) of their own."""
    return subprocess.Popen(["sh", "-c", "sleep 600 & wait"], start_new_session=True)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _sampling(scratch: Path) -> None:
    node = f"bench-{uuid.uuid4().hex[:8]}"
    processes: list[subprocess.Popen[bytes]] = []
    groups: dict[str, int] = {}
    try:
        async with migrated(sqlite_url(scratch)) as database:
            store = InstanceStore(database)
            for index in range(INSTANCES):
                instance_id = uuid.uuid4().hex
                directory = scratch / "instances" / instance_id
                directory.mkdir(parents=True)
                for n in range(5):
                    (directory / f"file-{n}").write_bytes(b"x" * 4096)
                process = await asyncio.to_thread(_process_group)
                processes.append(process)
                groups[instance_id] = process.pid
                await store.insert(_record(instance_id, node, index))
            direct = Sampler(  # inserts its ticks itself (how the node did before)
                _Groups(node, scratch / "instances", groups),
                store,
                SampleStore(database),
                interval_seconds=DEFAULT_INTERVAL,
                retention_seconds=86400.0,
            )
            broker = MemoryBroker(3)
            await broker.start()
            spool = NodeEvents(scratch / "spool", node)
            await spool.start(broker)
            publisher = SamplePublisher(spool)
            published = Sampler(  # what the worker does: each tick spooled, then published
                _Groups(node, scratch / "instances", groups),
                store,
                SampleStore(database),
                sink=publisher,
                pending=publisher.spooled,
                interval_seconds=DEFAULT_INTERVAL,
                retention_seconds=86400.0,
            )
            direct_ticks, _taken = await _ticks(direct)
            per_tick, taken = await _ticks(published)
            await spool.stop(5)
            await broker.close()
            ingest = SampleIngest(SampleStore(database))
            applied = []
            for samples in taken:
                began = _cpu()
                body = queue_pb2.OperationEvent(
                    instance_samples=to_message(node, samples)
                ).SerializeToString()
                await ingest(queue_pb2.OperationEvent.FromString(body).instance_samples)
                applied.append(_cpu() - began)
            bare = []
            for _ in range(TICKS):
                began = _cpu()
                await asyncio.to_thread(ProcessTable.read)
                bare.append(_cpu() - began)
    finally:
        for process in processes:  # the whole group: an orphaned sleep would hold stdout open
            os.killpg(process.pid, signal.SIGKILL)
        for process in processes:
            process.wait()
    tick = percentile(per_tick, 0.5)
    figure(f"sampling tick, {INSTANCES} instances, CPU p50", tick * 1000, "ms", 2)
    figure("sampling CPU per instance per tick p50", tick / INSTANCES * 1e6, "µs", 0)
    figure(
        f"share of one CPU at FMCP_METRICS_INTERVAL={DEFAULT_INTERVAL:g}s",
        100 * tick / DEFAULT_INTERVAL,
        "%",
        3,
    )
    figure("baseline: one bare pass over /proc, CPU p50", percentile(bare, 0.5) * 1000, "ms", 2)
    ratio("sampling tick / bare /proc pass", tick, percentile(bare, 0.5))
    before = percentile(direct_ticks, 0.5)
    figure(
        "the node inserting its tick itself (no broker), CPU per instance per tick p50",
        before / INSTANCES * 1e6,
        "µs",
        0,
    )
    ratio("tick to the broker / tick inserted by the node", tick, before)
    figure(
        f"API: storing one tick of {INSTANCES} samples (decode + insert, SQLite), CPU p50",
        percentile(applied, 0.5) * 1000,
        "ms",
        2,
    )


async def _ticks(sampler: Sampler) -> tuple[list[float], list[list[Sample]]]:
    """This process's CPU time for each of TICKS ticks (after one that warms it up), and
    the samples each took."""
    await sampler.tick()  # loads the newest samples, walks every directory
    per_tick, taken = [], []
    for _ in range(TICKS):
        began = _cpu()
        samples = await sampler.tick()
        per_tick.append(_cpu() - began)
        assert len(samples) == INSTANCES
        taken.append(samples)
    return per_tick, taken


def _day(instance_id: str, node: str, end: int) -> list[Sample]:
    """A day as the node keeps it: the last hour raw (10 s), before that 1-minute points."""
    rows = []
    hour_ago = end - 3600 * 1_000_000
    for minute in range(23 * 60):
        time_us = hour_ago - (23 * 60 - minute) * 60_000_000
        rows.append(
            Sample(
                instance_id,
                node,
                time_us - time_us % 60_000_000,
                "running",
                run_start=end - 86_400_000_000,
                cpu_seconds=minute * 0.6,
                cpu_percent=float(minute % 37),
                rss_bytes=(100 + minute % 50) * 1024 * 1024,
                disk_bytes=10 * 1024 * 1024,
                processes=2,
                threads=3,
                open_fds=12,
                resolution=MINUTE,
                count=6,
            )
        )
    for second in range(0, 3600, 10):
        rows.append(replace(rows[-1], time_us=hour_ago + second * 1_000_000, resolution=0, count=1))
    return rows


async def _latency(database: Database, label: str, scratch: Path) -> None:
    node = f"bench-{uuid.uuid4().hex[:8]}"
    instances = InstanceStore(database)
    samples = SampleStore(database)
    end = now_us()
    ids = []
    began = time.perf_counter()
    for index in range(INSTANCES):
        instance_id = uuid.uuid4().hex
        ids.append(instance_id)
        await instances.insert(_record(instance_id, node, index))
        await samples.add(_day(instance_id, node, end))
    note(f"{label}: seeded {INSTANCES} x 1,740 samples in {time.perf_counter() - began:.1f}s")
    environment = workload_environment(Settings(data_dir=scratch), database, node)
    tools = MetricsTools(environment, retention_seconds=86400.0, interval_seconds=10.0)
    context = ToolContext(
        operation="operations/bench", tool="vm.metrics", owner=OWNER, attempt=1, emit=_ignore
    )
    target = ids[INSTANCES // 2]
    for window in ("24h", "1h"):
        answer: dict[str, Any] = {}
        calls = []
        for _ in range(CALLS):
            began = time.perf_counter()
            answer = await tools.metrics(context, {"id": target, "window": window})
            calls.append(time.perf_counter() - began)
        reads = []
        for _ in range(CALLS):
            began = time.perf_counter()
            await samples.window(
                target, now_us() - int(86400e6 if window == "24h" else 3600e6), now_us()
            )
            reads.append(time.perf_counter() - began)
        p50, p95 = percentile(calls, 0.5) * 1000, percentile(calls, 0.95) * 1000
        figure(
            f"{label}: vm.metrics {window} window ({answer['samples']} samples, "
            f"{len(answer['times'])} points) p50",
            p50,
            "ms",
        )
        figure(f"{label}: vm.metrics {window} window p95", p95, "ms")
        figure(
            f"{label}: baseline: reading its rows from the store p50",
            percentile(reads, 0.5) * 1000,
            "ms",
        )
        ratio(
            f"{label} {window}: vm.metrics / reading its rows", p50, percentile(reads, 0.5) * 1000
        )


async def _ignore(_event: object) -> None:
    return None


async def run() -> None:
    heading("workload metrics: sampling cost, vm.metrics latency")
    scratch = Path(tempfile.mkdtemp(prefix="fmcp-bench-metrics-"))
    try:
        await _sampling(scratch / "sampling")
        async with migrated(sqlite_url(scratch / "latency")) as database:
            await _latency(database, "SQLite", scratch)
        async with scratch_postgres() as url, migrated(url) as database:
            await _latency(database, "PostgreSQL", scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
