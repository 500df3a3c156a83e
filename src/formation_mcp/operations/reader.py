"""Reading operations without the rest of OperationManager: what a worker needs (is this work
done already?) and what the feeds replay (the events after a sequence)."""

from __future__ import annotations

from formation_mcp.db.database import Database
from formation_mcp.operations import store
from formation_mcp.operations.lifecycle import OperationRecord
from formation_mcp.operations.store import EventRecord


class OperationReader:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(self, operation_id: str) -> OperationRecord | None:
        async with self._db.read() as conn:
            return await store.get(conn, operation_id)

    async def events_after(self, operation_id: str, after: int, limit: int) -> list[EventRecord]:
        async with self._db.read() as conn:
            return await store.events_after(conn, operation_id, after, limit)
