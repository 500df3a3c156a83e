"""How long a cheap call takes while something else runs on the same server: the measure of
whether that something holds up the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from formation.mcp.v1 import auth_pb2_grpc
from google.protobuf import empty_pb2

T = TypeVar("T")

CHEAP_CALL_DEADLINE = 1.0
"""Generous: a cheap call takes milliseconds; a stalled event loop holds it for seconds."""


async def cheap_calls_during(
    work: Awaitable[T], channel: grpc.aio.Channel, md: tuple[tuple[str, str], ...]
) -> tuple[T | BaseException, list[float]]:
    """Run `work` and, until it ends, GetCurrentAccount calls one after another (at least
    one): `work`'s result (or what it raised) and each call's latency in seconds."""
    task = asyncio.ensure_future(work)
    auth = auth_pb2_grpc.AuthServiceStub(channel)
    latencies: list[float] = []
    while not latencies or not task.done():
        started = time.perf_counter()
        await auth.GetCurrentAccount(empty_pb2.Empty(), metadata=md)
        latencies.append(time.perf_counter() - started)
    try:
        return await task, latencies
    except Exception as error:
        return error, latencies
