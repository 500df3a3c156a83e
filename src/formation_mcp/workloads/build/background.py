"""Blocking build work (copies, digests, the archive) on a thread, stoppable by a cancel."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

_T = TypeVar("_T")


class Aborted(Exception):
    """Background work was told to stop (its build was cancelled)."""


async def in_thread(work: Callable[[threading.Event], _T]) -> _T:
    """Run blocking `work` in a thread; on cancellation tell it to stop and wait for it."""
    abort = threading.Event()
    future = asyncio.ensure_future(asyncio.to_thread(work, abort))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        abort.set()
        with suppress(Exception, asyncio.CancelledError):
            await future
        raise
