"""`watch`: 5,000 concurrent WatchOperation streams on one `fmcp serve` process (PostgreSQL).

10 operations with 500 watchers each, opened by a client process (bench/watch_client.py,
core 1) over 10 channels; the server runs on core 0. Memory per stream is the server's VmRSS
growth from before the streams to after every stream got its first snapshot, / 5,000. A
producer (an in-process Application on the same database, a second replica: changes reach
the server through LISTEN/NOTIFY) then applies 20 progress events and a terminal event to
every operation, closed loop: each round starts when every stream got the previous one.
Delivery latency = client receive time - the message's metadata.update_time.
Baseline: the same run with 1 operation and 1 watcher.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from formation.mcp.internal.v1 import queue_pb2

from bench.common import LOAD_CORE, PYTHON, ROOT, figure, heading, note, ratio
from bench.databases import scratch_postgres
from bench.identity import Identity, for_server
from bench.processes import cpu_seconds, fmcp_server, pinned, rss_kib, running
from bench.watch_client import METADATA_ENV
from formation_mcp.app import Application
from formation_mcp.operations.ids import operation_name
from formation_mcp.settings import Settings

OPERATIONS, WATCHERS_PER_OPERATION, CHANNELS = 10, 500, 10
OPEN_WINDOW = 500
"""Streams waiting for their first snapshot at a time. Opening all 5,000 at once makes the
server drop some before they reach a handler (clients see CANCELLED, the server logs
nothing): 35-44 % of them with a window of 2,000 or more on this machine; with 1,000 or
fewer none were lost."""
PROGRESS_EVENTS = 20
FIRST_SEQUENCE = 2  # creation is sequence 1 (the snapshot); events make 2 .. 22
LAST_SEQUENCE = FIRST_SEQUENCE + PROGRESS_EVENTS  # the terminal event
ROUND_TIMEOUT_S = 60.0
OPEN_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Round:
    result: dict[str, Any]
    open_seconds: float
    rss_before_kib: int
    rss_after_kib: int
    server_watchers: float
    events_seconds: float  # from the first event applied to the last one delivered everywhere
    server_cpu_seconds: float  # CPU used in that time
    client_cpu_seconds: float


class Client:
    """The client subprocess and its stdout lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def expect(self, prefix: str, timeout: float) -> str:
        """The rest of the next line starting with `prefix` (other lines are skipped)."""
        assert self.process.stdout is not None, "stdout is a pipe"
        async with asyncio.timeout(timeout):
            while line := (await self.process.stdout.readline()).decode():
                if line.startswith(prefix + " "):
                    return line[len(prefix) + 1 :].strip()
                if line.startswith("result "):
                    raise RuntimeError(f"the client ended early: {line.strip()}")
        raise RuntimeError(f"the client exited before saying {prefix!r}")

    async def reached(self, sequence: int, timeout: float) -> bool:
        """Wait for `seq n` with n >= sequence: every stream got that change."""
        try:
            async with asyncio.timeout(timeout):
                while int(await self.expect("seq", timeout)) < sequence:
                    pass
        except TimeoutError:
            note(f"not every stream got change {sequence} within {timeout:.0f} s; going on")
            return False
        return True


def _event(name: str, sequence: int) -> queue_pb2.OperationEvent:
    event = queue_pb2.OperationEvent(operation=name, attempt=1, sequence=sequence)
    if sequence <= PROGRESS_EVENTS:
        event.progress.percent = sequence * 100 // (PROGRESS_EVENTS + 1)
        event.progress.stage = f"step {sequence}"
    else:
        event.succeeded.SetInParent()
    return event


def _watchers_gauge(http_address: str) -> float:
    with urllib.request.urlopen(f"http://{http_address}/metrics", timeout=10) as response:
        match = re.search(r"^fmcp_watchers (\S+)$", response.read().decode(), re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test, and who calls it."""

    ready: re.Match[str]  # its "serving" line: gRPC address, HTTP address
    pid: int
    caller: Identity


async def _round(
    producer: Application, target: Target, operations: int, per_op: int, log: Path
) -> Round:
    ready, pid, owner = target.ready, target.pid, target.caller.owner
    records = [await producer.operations.create(owner, "bench.watch") for _ in range(operations)]
    names = [operation_name(record.id) for record in records]
    argv = [PYTHON, "-m", "bench.watch_client", "--address", ready.group(1)]
    argv += ["--names", ",".join(names), "--per-op", str(per_op)]
    argv += ["--channels", str(min(CHANNELS, operations * per_op))]
    argv += ["--first-sequence", str(FIRST_SEQUENCE), "--last-sequence", str(LAST_SEQUENCE)]
    argv += ["--open-window", str(OPEN_WINDOW)]
    rss_before = rss_kib(pid)
    env = {**os.environ, METADATA_ENV: json.dumps(target.caller.metadata)}
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *pinned(argv, LOAD_CORE),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
        )
    client = Client(process)
    try:
        opened = await client.expect("ready", OPEN_TIMEOUT_S)
        rss_after = rss_kib(pid)
        watchers = await asyncio.to_thread(_watchers_gauge, ready.group(2))
        began, cpu = time.perf_counter(), (cpu_seconds(pid), cpu_seconds(process.pid))
        for sequence in range(1, PROGRESS_EVENTS + 2):  # worker sequence; the op's is +1
            await asyncio.gather(
                *(producer.operations.apply_event(_event(name, sequence)) for name in names)
            )
            await client.reached(FIRST_SEQUENCE + sequence - 1, ROUND_TIMEOUT_S)
        elapsed = time.perf_counter() - began
        used = (cpu_seconds(pid) - cpu[0], cpu_seconds(process.pid) - cpu[1])
        result = json.loads(await client.expect("result", ROUND_TIMEOUT_S))
        await process.wait()
    except BaseException:
        tail = _tail(log)
        if tail:
            note(f"client stderr: {tail}")
        raise
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Round(result, float(opened.split()[1]), rss_before, rss_after, watchers, elapsed, *used)


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _report(label: str, round_: Round) -> None:
    result = round_.result
    print(
        f"{label}: delivery p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, "
        f"max {result['max_ms']:.2f} ms"
    )
    opened = f"{result['opened']:,}/{result['streams']:,}"
    note(
        f"{opened} streams opened in {round_.open_seconds:.2f} s "
        f"(at most {OPEN_WINDOW} waiting for a snapshot at a time); "
        f"messages {result['received_messages']:,}/{result['expected_messages']:,}; "
        f"streams not receiving every event exactly once: {result['mismatched_streams']}; "
        f"errors: {result['errors'] or 'none'}"
    )
    note(
        f"events: {round_.events_seconds:.2f} s from the first applied to the last delivered; "
        f"CPU used meanwhile: server {round_.server_cpu_seconds:.2f} s, "
        f"client {round_.client_cpu_seconds:.2f} s"
    )
    for example in result["mismatch_examples"]:
        note(f"mismatch: {example}")


def _settings(data_dir: Path, url: str) -> Settings:
    base = Settings(grpc_listen="127.0.0.1:0", http_listen="127.0.0.1:0", log_level="WARNING")
    return replace(base, data_dir=data_dir, database_url=url, shutdown_grace_seconds=1.0)


async def run() -> None:
    total = OPERATIONS * WATCHERS_PER_OPERATION
    heading(
        f"watch: {total:,} WatchOperation streams ({OPERATIONS} operations x "
        f"{WATCHERS_PER_OPERATION} watchers, {CHANNELS} channels) on one server (PostgreSQL), "
        f"{PROGRESS_EVENTS} progress events + 1 terminal event from a second replica"
    )
    with tempfile.TemporaryDirectory(prefix="fmcp-bench-watch-") as tmp:
        root = Path(tmp)
        async with scratch_postgres() as url:
            producer = Application(_settings(root / "producer", url))
            await producer.start()
            try:
                caller = for_server(root / "server")
                server = fmcp_server(root / "server", url)
                async with running(server) as ready:
                    target = Target(ready, server.pid, caller)
                    one = await _round(producer, target, 1, 1, root / "client-1.log")
                    many = await _round(
                        producer, target, OPERATIONS, WATCHERS_PER_OPERATION, root / "c-many.log"
                    )
            finally:
                await producer.stop()
    _report("1 watcher (baseline)", one)
    _report(f"{total:,} watchers", many)
    growth = many.rss_after_kib - many.rss_before_kib
    figure("server RSS before streams", many.rss_before_kib / 1024, "MiB", 1)
    figure("server RSS with all streams open", many.rss_after_kib / 1024, "MiB", 1)
    figure("memory per stream", growth * 1024 / total / 1024, "KiB", 1)
    note(f"server's fmcp_watchers gauge with all streams open: {many.server_watchers:,.0f}")
    ratio(
        f"delivery p50 {total:,} watchers / 1 watcher", many.result["p50_ms"], one.result["p50_ms"]
    )
    ratio(
        f"delivery p99 {total:,} watchers / 1 watcher", many.result["p99_ms"], one.result["p99_ms"]
    )
