"""SQL for operations and their events. Every function takes the connection (and so the
transaction) it runs in, so callers compose several steps into one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from formation.mcp.v1 import queue_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import datetime_to_us
from formation_mcp.db.schema import operation_events, operations
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.filtering import Comparison
from formation_mcp.operations.lifecycle import Change, OperationRecord, State

_COLUMNS = tuple(operations.c)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    sequence: int
    snapshot: bytes


def _logs_blob(record: OperationRecord) -> bytes:
    return queue_pb2.OperationEvent.Logs(lines=record.recent_logs).SerializeToString()


def _row_values(record: OperationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "owner": record.owner,
        "tool": record.tool,
        "state": int(record.state),
        "done": record.done,
        "progress_percent": record.progress_percent,
        "stage": record.stage,
        "status_message": record.status_message,
        "request_id": record.request_id,
        "cancel_requested": record.cancel_requested,
        "attempt": record.attempt,
        "sequence": record.sequence,
        "event_attempt": record.event_attempt,
        "event_sequence": record.event_sequence,
        "recent_logs": _logs_blob(record),
        "response": record.response,
        "error": record.error,
        "create_time": record.create_time,
        "update_time": record.update_time,
        "end_time": record.end_time,
    }


def _record(row: sa.Row[Any]) -> OperationRecord:
    logs = queue_pb2.OperationEvent.Logs()
    logs.ParseFromString(row.recent_logs)
    return OperationRecord(
        id=row.id,
        owner=row.owner,
        tool=row.tool,
        state=State(row.state),
        progress_percent=row.progress_percent,
        stage=row.stage,
        status_message=row.status_message,
        request_id=row.request_id,
        cancel_requested=row.cancel_requested,
        attempt=row.attempt,
        sequence=row.sequence,
        event_attempt=row.event_attempt,
        event_sequence=row.event_sequence,
        recent_logs=tuple(logs.lines),
        response=row.response,
        error=row.error,
        create_time=row.create_time,
        update_time=row.update_time,
        end_time=row.end_time,
    )


def _event_row(change: Change) -> dict[str, Any]:
    record = change.record
    snapshot = to_operation(record, logs=change.added_logs).SerializeToString(deterministic=True)
    return {
        "operation_id": record.id,
        "sequence": record.sequence,
        "snapshot": snapshot,
        "create_time": record.update_time,
    }


async def insert(conn: AsyncConnection, record: OperationRecord) -> None:
    """A new operation and its first event (its creation)."""
    await conn.execute(operations.insert().values(_row_values(record)))
    await conn.execute(operation_events.insert().values(_event_row(Change(record))))


async def get(conn: AsyncConnection, operation_id: str) -> OperationRecord | None:
    row = (await conn.execute(sa.select(*_COLUMNS).where(operations.c.id == operation_id))).first()
    return None if row is None else _record(row)


async def get_by_request_id(
    conn: AsyncConnection, owner: str, request_id: str
) -> OperationRecord | None:
    query = sa.select(*_COLUMNS).where(
        operations.c.owner == owner, operations.c.request_id == request_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _record(row)


async def save_change(conn: AsyncConnection, previous_sequence: int, change: Change) -> bool:
    """Write a change if nobody else changed the operation since `previous_sequence`."""
    values = _row_values(change.record)
    del values["id"]
    result = await conn.execute(
        operations.update()
        .where(operations.c.id == change.record.id, operations.c.sequence == previous_sequence)
        .values(values)
    )
    if result.rowcount != 1:
        return False
    await conn.execute(operation_events.insert().values(_event_row(change)))
    return True


_FILTER_COLUMNS = {
    "state": operations.c.state,
    "tool": operations.c.tool,
    "done": operations.c.done,
    "create_time": operations.c.create_time,
}


def _condition(comparison: Comparison) -> sa.ColumnElement[bool]:
    column = _FILTER_COLUMNS[comparison.field]
    value: Any = comparison.value
    if comparison.field == "state":
        value = int(State[str(value)])
    elif comparison.field == "create_time":
        value = datetime_to_us(value)
    if comparison.prefix:
        escaped = str(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped + "%", escape="\\")
    operators: dict[str, Any] = {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        ">": column.__gt__,
        "<=": column.__le__,
        ">=": column.__ge__,
    }
    condition: sa.ColumnElement[bool] = operators[comparison.op](value)
    return condition


async def list_page(
    conn: AsyncConnection,
    *,
    owner: str | None,
    comparisons: Sequence[Comparison],
    before_id: str | None,
    limit: int,
) -> list[OperationRecord]:
    """Up to `limit` operations, newest first, strictly older than `before_id`."""
    query = sa.select(*_COLUMNS)
    if owner is not None:
        query = query.where(operations.c.owner == owner)
    for comparison in comparisons:
        query = query.where(_condition(comparison))
    if before_id is not None:
        query = query.where(operations.c.id < before_id)
    query = query.order_by(operations.c.id.desc()).limit(limit)
    return [_record(row) for row in await conn.execute(query)]


async def events_after(
    conn: AsyncConnection, operation_id: str, after_sequence: int, limit: int
) -> list[StoredEvent]:
    query = (
        sa.select(operation_events.c.sequence, operation_events.c.snapshot)
        .where(
            operation_events.c.operation_id == operation_id,
            operation_events.c.sequence > after_sequence,
        )
        .order_by(operation_events.c.sequence)
        .limit(limit)
    )
    return [StoredEvent(row.sequence, row.snapshot) for row in await conn.execute(query)]


async def delete(conn: AsyncConnection, operation_id: str) -> None:
    await conn.execute(
        operation_events.delete().where(operation_events.c.operation_id == operation_id)
    )
    await conn.execute(operations.delete().where(operations.c.id == operation_id))


async def expired_ids(conn: AsyncConnection, ended_before: int, limit: int) -> list[str]:
    query = (
        sa.select(operations.c.id)
        .where(operations.c.done.is_(True), operations.c.end_time < ended_before)
        .order_by(operations.c.end_time)
        .limit(limit)
    )
    return list((await conn.scalars(query)).all())


async def delete_many(conn: AsyncConnection, operation_ids: Sequence[str]) -> None:
    await conn.execute(
        operation_events.delete().where(operation_events.c.operation_id.in_(operation_ids))
    )
    await conn.execute(operations.delete().where(operations.c.id.in_(operation_ids)))


async def count_by_state(conn: AsyncConnection) -> dict[State, int]:
    query = sa.select(operations.c.state, sa.func.count()).group_by(operations.c.state)
    return {State(state): count for state, count in await conn.execute(query)}
