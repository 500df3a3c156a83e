"""Whether something holds up the event loop it shares with other calls: while it runs, cheap
calls go on one after another, and a probe measures the loop thread's longest stretch of work
between two of its turns, in CPU time (a busy machine stretches wall time, not this)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from formation.mcp.v1 import auth_pb2_grpc
from google.protobuf import empty_pb2

T = TypeVar("T")

LOOP_STALL_LIMIT = 0.5
"""Generous: work kept off the loop leaves it stretches of milliseconds; work done on it held
it for seconds of CPU (a 337-byte alias bomb 44 s, staging a 62 MiB context 1.6 s)."""
PROBE_INTERVAL = 0.005


@dataclass
class LoopUse:
    latencies: list[float] = field(default_factory=list)
    """Wall time of each cheap call, in seconds (for messages; machine load stretches it)."""
    longest_stall: float = 0.0
    """The loop thread's most CPU seconds between two turns of the probe."""


async def cheap_calls_during(
    work: Awaitable[T], channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...]
) -> tuple[T | BaseException, LoopUse]:
    """Run `work` and, until it ends, GetCurrentAccount calls one after another (at least
    one) and the probe: `work`'s result (or what it raised) and how the loop fared."""
    use = LoopUse()
    task = asyncio.ensure_future(work)
    probe = asyncio.ensure_future(_probe(use, task))
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    while not use.latencies or not task.done():
        started = time.perf_counter()
        await auth.GetCurrentAccount(empty_pb2.Empty(), metadata=md)
        use.latencies.append(time.perf_counter() - started)
    await probe
    try:
        return await task, use
    except Exception as error:
        return error, use


async def _probe(use: LoopUse, task: asyncio.Future[T]) -> None:
    last = time.thread_time()
    while not task.done():
        await asyncio.sleep(PROBE_INTERVAL)
        now = time.thread_time()
        use.longest_stall = max(use.longest_stall, now - last)
        last = now
