"""The gauges of /metrics that are counted in the database: operations by state and the
outbox's depth, refreshed every GAUGE_REFRESH_SECONDS."""

from __future__ import annotations

import asyncio
import contextlib

from formation_mcp.db.database import Database
from formation_mcp.dispatch.outbox import OutboxRelay
from formation_mcp.metrics import Metrics
from formation_mcp.operations import store
from formation_mcp.operations.lifecycle import State

GAUGE_REFRESH_SECONDS = 15.0


async def refresh_gauges(database: Database, metrics: Metrics, relay: OutboxRelay) -> None:
    """Runs until cancelled; a failed count leaves the gauges as they were."""
    while True:
        with contextlib.suppress(Exception):
            async with database.read() as conn:
                counts = await store.count_by_state(conn)
            for state in State:
                metrics.operations.labels(state.name).set(counts.get(state, 0))
            metrics.outbox.set(await relay.pending())
        await asyncio.sleep(GAUGE_REFRESH_SECONDS)
