"""Removes finished operations older than the TTL, in bounded batches.

No change is announced: watchers and waiters of a finished operation have already ended.
"""

from __future__ import annotations

import asyncio
import logging

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import Unavailable
from formation_mcp.operations import store

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(self, database: Database, ttl_seconds: float, batch_size: int) -> None:
        self._db = database
        self._ttl_us = int(ttl_seconds * 1_000_000)
        self._batch = batch_size

    async def sweep_once(self) -> int:
        """Delete every expired operation, one batch per transaction; returns how many."""
        cutoff = now_us() - self._ttl_us
        removed = 0
        while True:
            async with self._db.write() as conn:
                ids = await store.expired_ids(conn, cutoff, self._batch)
                if ids:
                    await store.delete_many(conn, ids)
            removed += len(ids)
            if len(ids) < self._batch:
                break
            await asyncio.sleep(0)  # let calls in between batches
        if removed:
            log.info("swept expired operations", extra={"count": removed})
        return removed

    async def run(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.sweep_once()
            except Unavailable:
                log.warning("sweep skipped: the database is unavailable")
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(interval_seconds)
