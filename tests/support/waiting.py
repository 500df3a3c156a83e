"""Waiting with a deadline, never a fixed sleep: poll a condition until it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

DEADLINE = 10.0
"""Upper bound of any wait for a server, a worker or Envoy: a failure, never the expected path."""


async def eventually(check: Callable[[], Awaitable[bool]], deadline: float = DEADLINE) -> None:
    """Wait until `check()` is true, polling with backoff, failing after `deadline` seconds."""
    async with asyncio.timeout(deadline):
        delay = 0.005
        while not await check():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)


async def wait_until(check: Callable[[], bool], deadline: float = DEADLINE) -> None:
    """Wait (polling) until a real clock made `check()` true; fail after `deadline` seconds."""

    async def passed() -> bool:
        return check()

    await eventually(passed, deadline)
