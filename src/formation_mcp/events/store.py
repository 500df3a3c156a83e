"""Reading and writing the events table.

Recording takes a transaction-scoped lock first (PostgreSQL: an advisory lock; SQLite has one
writer at a time anyway), so ids are assigned and committed in the same order: events become
visible in id order, which is what lets a watch resume from an id without gaps. Callers take
it last in their transaction (just before commit), so it is held for a moment only and never
waits for a row lock while holding it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import now_us
from formation_mcp.db.schema import events
from formation_mcp.events.model import EventRecord, NewEvent, Severity, next_event_id

LOCK_KEY: Final = 0x666D6370_65767473 & 0x7FFFFFFFFFFFFFFF
"""The advisory lock that orders event ids (`fmcpevts`)."""


def _record(row: sa.Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id,
        type=row.type,
        resource=row.resource,
        owner=row.owner,
        time=row.time,
        severity=Severity(row.severity),
        message=row.message,
        data=json.loads(row.data),
        node=row.node,
    )


# Statements built once. On PostgreSQL the keys go as one array, so the statement's text (and
# the prepared statement the driver keeps for it) is the same whatever their number, and the
# newest id comes in the same round trip (after the lock: READ COMMITTED reads as of each
# statement's start, so the statement after the lock sees every earlier holder's commit).
_LOCK = sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY))
_KNOWN_AND_LAST = sa.text(
    f"SELECT (SELECT max(id) FROM {events.name}) AS last, "
    f"ARRAY(SELECT key FROM {events.name} WHERE key = ANY(CAST(:keys AS text[]))) AS known"
)
_KNOWN = sa.select(events.c.key).where(events.c.key.in_(sa.bindparam("keys", expanding=True)))
_LAST = sa.select(sa.func.max(events.c.id))
_INSERT = events.insert()


async def _known_and_last(conn: AsyncConnection, keys: list[str]) -> tuple[set[str], str | None]:
    """Which of `keys` are recorded already, and the newest id (with the lock held)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_LOCK)
        row = (await conn.execute(_KNOWN_AND_LAST, {"keys": keys})).one()
        return set(row.known), row.last
    known = set((await conn.execute(_KNOWN, {"keys": keys})).scalars())
    return known, (await conn.execute(_LAST)).scalar()


async def record(conn: AsyncConnection, new: Sequence[NewEvent]) -> list[EventRecord]:
    """Insert the events whose key is not recorded yet (in the order given); the recorded
    ones with their ids."""
    if not new:
        return []
    known, last = await _known_and_last(conn, list(dict.fromkeys(event.key for event in new)))
    recorded: list[EventRecord] = []
    rows: list[dict[str, Any]] = []
    for event in new:
        if event.key in known:
            continue
        known.add(event.key)
        last = next_event_id(last, now_us())
        data = json.dumps(event.data, sort_keys=True)
        rows.append(
            {
                "id": last,
                "key": event.key,
                "type": event.type,
                "resource": event.resource,
                "owner": event.owner,
                "node": event.node,
                "time": event.time,
                "severity": int(event.severity),
                "message": event.message,
                "data": data,
            }
        )
        recorded.append(
            EventRecord(
                id=last,
                type=event.type,
                resource=event.resource,
                owner=event.owner,
                time=event.time,
                severity=event.severity,
                message=event.message,
                data=json.loads(data),
                node=event.node,
            )
        )
    if rows:
        await conn.execute(_INSERT, rows)
    return recorded


async def newest_first(
    conn: AsyncConnection, condition: sa.ColumnElement[bool], before: str | None, limit: int
) -> list[EventRecord]:
    query = sa.select(events).where(condition)
    if before is not None:
        query = query.where(events.c.id < before)
    query = query.order_by(events.c.id.desc()).limit(limit)
    return [_record(row) for row in (await conn.execute(query)).all()]


async def oldest_after(
    conn: AsyncConnection, condition: sa.ColumnElement[bool], after: str, limit: int
) -> list[EventRecord]:
    query = (
        sa.select(events).where(condition, events.c.id > after).order_by(events.c.id).limit(limit)
    )
    return [_record(row) for row in (await conn.execute(query)).all()]


async def last_id(conn: AsyncConnection) -> str:
    """The newest id, or "" when there is no event."""
    return str((await conn.execute(sa.select(sa.func.max(events.c.id)))).scalar() or "")


async def delete_before(conn: AsyncConnection, bound: str, limit: int) -> int:
    """Delete up to `limit` events with ids below `bound` (oldest first); how many."""
    ids = (
        (
            await conn.execute(
                sa.select(events.c.id).where(events.c.id < bound).order_by(events.c.id).limit(limit)
            )
        )
        .scalars()
        .all()
    )
    if ids:
        await conn.execute(events.delete().where(events.c.id.in_(ids)))
    return len(ids)
