"""An instance's failed runs in a window, from its `instance.failed` events (one per failure,
with its time, exit code or signal and last output lines, reported by the node through the
broker): what the crash_loop rule counts. Every failure counts, also two within one sampling
interval (a run that fails and is restarted at once)."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from formation_mcp.db.database import Database
from formation_mcp.db.schema import events as events_table
from formation_mcp.events import store as event_store
from formation_mcp.events.model import INSTANCE_FAILED, EventRecord
from formation_mcp.workloads.metrics.rules import Failure

MAX_FAILURES: Final = 1000
"""The newest failures read per instance and window (a crash loop needs three)."""


async def failures_in(db: Database, resource: str, since_us: int, until_us: int) -> list[Failure]:
    """The failures of `resource` (`instances/{id}`) between the two times, oldest first."""
    condition = sa.and_(
        events_table.c.resource == resource,
        events_table.c.type == INSTANCE_FAILED,
        events_table.c.time >= since_us,
        events_table.c.time <= until_us,
    )
    async with db.read() as conn:
        found = await event_store.newest_first(conn, condition, None, MAX_FAILURES)
    return sorted((_failure(record) for record in found), key=lambda f: f.time_us)


def _failure(record: EventRecord) -> Failure:
    code = record.data.get("exit_code")
    lines = record.data.get("last_lines") or []
    return Failure(
        time_us=record.time,
        exit_code=int(code) if isinstance(code, (int, float)) else None,  # JSON may say 3.0
        signal=str(record.data["signal"]) if "signal" in record.data else None,
        last_lines=tuple(str(line) for line in lines),
    )
