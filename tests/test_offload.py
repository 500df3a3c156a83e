"""The offload pools: work runs on their threads while the event loop goes on, and a full
pool with a waiting limit refuses more with RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import grpc
import pytest

from formation_mcp.errors import ResourceExhausted
from formation_mcp.offload import Offload

WAIT = 10.0


@pytest.fixture
async def pool() -> AsyncIterator[Offload]:
    offload = Offload("test-jobs", threads=1, max_waiting=1)
    yield offload
    offload.close()


async def test_a_job_runs_on_a_thread_of_the_pool(pool: Offload) -> None:
    name = await pool.run(lambda: threading.current_thread().name)

    assert name.startswith("fmcp-test-jobs")


async def test_a_job_passes_its_exception_on(pool: Offload) -> None:
    def fail() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await pool.run(fail)


async def test_the_event_loop_goes_on_while_a_job_runs(pool: Offload) -> None:
    loop_ran = threading.Event()

    async def on_the_loop() -> None:
        loop_ran.set()

    job = asyncio.ensure_future(pool.run(loop_ran.wait, WAIT))
    await on_the_loop()

    assert await job is True


async def test_a_full_pool_refuses_more_with_resource_exhausted(pool: Offload) -> None:
    started, release = threading.Event(), threading.Event()

    def blocked() -> bool:
        started.set()
        return release.wait(WAIT)

    running = asyncio.ensure_future(pool.run(blocked))
    assert await asyncio.to_thread(started.wait, WAIT)
    waiting = asyncio.ensure_future(pool.run(lambda: True))
    await asyncio.sleep(0)  # one turn of the loop: it takes its place in the queue
    assert pool.pending == 2

    with pytest.raises(ResourceExhausted) as caught:
        await pool.run(lambda: True)
    release.set()

    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.reason == "SERVER_BUSY"
    assert caught.value.retry_after_seconds == 1.0
    assert await running is True and await waiting is True
    assert pool.pending == 0
