"""SQL for operations and their events. Every function takes the connection (and so the
transaction) it runs in, so callers compose several steps into one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from formation.mcp.internal.v1 import queue_pb2
from google.longrunning import operations_pb2 as lro_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import datetime_to_us
from formation_mcp.db.lists import one_of
from formation_mcp.db.schema import operation_events, operations
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.filtering import Comparison
from formation_mcp.operations.lifecycle import Change, OperationRecord, State

_COLUMNS = tuple(operations.c)


@dataclass(frozen=True, slots=True)
class EventRecord:
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
        "approval": record.approval,
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
        approval=row.approval,
    )


def event_snapshot(change: Change) -> lro_pb2.Operation:
    """The operation as watchers get this change (with the log lines it added)."""
    return to_operation(change.record, logs=change.added_logs)


def _event_row(change: Change, snapshot: lro_pb2.Operation) -> dict[str, Any]:
    record = change.record
    return {
        "operation_id": record.id,
        "sequence": record.sequence,
        "snapshot": snapshot.SerializeToString(deterministic=True),
        "create_time": record.update_time,
    }


# Statements built once: executing a prebuilt statement skips building and keying it again.
_INSERT_OPERATION = operations.insert()
_INSERT_EVENT = operation_events.insert()
_SELECT_BY_ID = sa.select(*_COLUMNS).where(operations.c.id == sa.bindparam("operation_id"))
_ID_IN = one_of(operations.c.id, "operation_ids", sa.String())
_SELECT_MANY = {  # by is_postgres; one lock order for every writer: no deadlocks between them
    postgres: sa.select(*_COLUMNS).where(_ID_IN[postgres]).order_by(operations.c.id)
    for postgres in _ID_IN
}
_SELECT_MANY_LOCKED = {
    postgres: query.with_for_update() for postgres, query in _SELECT_MANY.items()
}
_UPDATE_IF_UNCHANGED = (
    operations.update()
    .where(
        operations.c.id == sa.bindparam("where_id"),
        operations.c.sequence == sa.bindparam("where_sequence"),
    )
    .values({column.name: sa.bindparam(column.name) for column in _COLUMNS if column.name != "id"})
)


async def insert(conn: AsyncConnection, record: OperationRecord) -> None:
    """A new operation and its first event (its creation)."""
    await insert_many(conn, [record])


async def insert_many(conn: AsyncConnection, records: Sequence[OperationRecord]) -> None:
    """New operations and their first events, two statements for all of them."""
    await conn.execute(_INSERT_OPERATION, [_row_values(record) for record in records])
    await conn.execute(
        _INSERT_EVENT,
        [_event_row(Change(record), event_snapshot(Change(record))) for record in records],
    )


async def get(conn: AsyncConnection, operation_id: str) -> OperationRecord | None:
    row = (await conn.execute(_SELECT_BY_ID, {"operation_id": operation_id})).first()
    return None if row is None else _record(row)


async def get_many(
    conn: AsyncConnection, operation_ids: Sequence[str], *, for_update: bool
) -> dict[str, OperationRecord]:
    """The operations that exist among `operation_ids`; with `for_update`, locked until the
    transaction ends (PostgreSQL; SQLite has one writer at a time anyway)."""
    postgres = conn.dialect.name == "postgresql"
    query = (_SELECT_MANY_LOCKED if for_update else _SELECT_MANY)[postgres]
    rows = await conn.execute(query, {"operation_ids": list(operation_ids)})
    return {row.id: _record(row) for row in rows}


@dataclass(frozen=True, slots=True)
class WorkState:
    """What a worker reads of an operation before it runs its work (a few columns, not the
    whole record with its logs and result)."""

    state: State
    attempt: int
    cancel_requested: bool

    @property
    def done(self) -> bool:
        return self.state.is_terminal


_WORK_COLUMNS = (
    operations.c.id,
    operations.c.state,
    operations.c.attempt,
    operations.c.cancel_requested,
)
_SELECT_WORK = {postgres: sa.select(*_WORK_COLUMNS).where(_ID_IN[postgres]) for postgres in _ID_IN}


async def work_states(conn: AsyncConnection, operation_ids: Sequence[str]) -> dict[str, WorkState]:
    """The work state of the operations that exist among `operation_ids`."""
    query = _SELECT_WORK[conn.dialect.name == "postgresql"]
    rows = await conn.execute(query, {"operation_ids": list(operation_ids)})
    return {row.id: WorkState(State(row.state), row.attempt, row.cancel_requested) for row in rows}


async def get_by_request_id(
    conn: AsyncConnection, owner: str, request_id: str
) -> OperationRecord | None:
    query = sa.select(*_COLUMNS).where(
        operations.c.owner == owner, operations.c.request_id == request_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _record(row)


class ConcurrentChange(Exception):
    """Another writer changed an operation between this transaction's read and its write."""


@dataclass(frozen=True, slots=True)
class Write:
    """Changes to one operation: the sequence it had when read, and the changes in order."""

    previous_sequence: int
    changes: Sequence[Change]


async def save_change(
    conn: AsyncConnection, previous_sequence: int, change: Change
) -> lro_pb2.Operation | None:
    """Write a change if nobody else changed the operation since `previous_sequence`;
    returns the change's snapshot, or None when someone did (nothing is written then)."""
    result = await conn.execute(
        _UPDATE_IF_UNCHANGED, _update_values(previous_sequence, change.record)
    )
    if result.rowcount != 1:
        return None
    snapshot = event_snapshot(change)
    await conn.execute(_INSERT_EVENT, _event_row(change, snapshot))
    return snapshot


async def save_locked(
    conn: AsyncConnection, writes: Sequence[Write]
) -> list[tuple[Change, lro_pb2.Operation]]:
    """Write the changes of operations this transaction read with `get_many(for_update=True)`:
    one statement for the operations, one for their events. Returns every change with its
    snapshot. Raises ConcurrentChange (roll back and retry) when an operation changed since it
    was read: that cannot happen under PostgreSQL's row locks, and SQLite reports how many rows
    the update changed."""
    result = await conn.execute(
        _UPDATE_IF_UNCHANGED,
        [_update_values(write.previous_sequence, write.changes[-1].record) for write in writes],
    )
    if result.rowcount not in (-1, len(writes)):  # -1: the driver does not count (asyncpg)
        raise ConcurrentChange
    written = [(change, event_snapshot(change)) for write in writes for change in write.changes]
    await conn.execute(_INSERT_EVENT, [_event_row(change, shot) for change, shot in written])
    return written


def _update_values(previous_sequence: int, record: OperationRecord) -> dict[str, Any]:
    values = _row_values(record)
    values["where_id"] = values.pop("id")
    values["where_sequence"] = previous_sequence
    return values


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
    not_owner: str | None = None,
) -> list[OperationRecord]:
    """Up to `limit` operations, newest first, strictly older than `before_id`
    (`not_owner`: none of that owner's)."""
    query = sa.select(*_COLUMNS)
    if owner is not None:
        query = query.where(operations.c.owner == owner)
    if not_owner is not None:
        query = query.where(operations.c.owner != not_owner)
    for comparison in comparisons:
        query = query.where(_condition(comparison))
    if before_id is not None:
        query = query.where(operations.c.id < before_id)
    query = query.order_by(operations.c.id.desc()).limit(limit)
    return [_record(row) for row in await conn.execute(query)]


_EVENTS_AFTER = (
    sa.select(operation_events.c.sequence, operation_events.c.snapshot)
    .where(
        operation_events.c.operation_id == sa.bindparam("operation_id"),
        operation_events.c.sequence > sa.bindparam("after_sequence"),
    )
    .order_by(operation_events.c.sequence)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


async def events_after(
    conn: AsyncConnection, operation_id: str, after_sequence: int, limit: int
) -> list[EventRecord]:
    parameters = {"operation_id": operation_id, "after_sequence": after_sequence, "limit": limit}
    return [
        EventRecord(row.sequence, row.snapshot)
        for row in await conn.execute(_EVENTS_AFTER, parameters)
    ]


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
