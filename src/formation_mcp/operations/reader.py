"""Reading operations without the rest of OperationManager: what a worker needs (is this work
done already, or to be cancelled?) and what the feeds replay (the events after a sequence).

A worker asks for one operation per piece of work; the reads asked for while one is under way
are made together, as one statement (like a group commit: the first goes at once, no timer)."""

from __future__ import annotations

import asyncio

from formation_mcp.db.database import Database
from formation_mcp.operations import store
from formation_mcp.operations.store import EventRecord, WorkState

MAX_BATCH = 256


class OperationReader:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._pending: dict[str, list[asyncio.Future[WorkState | None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def work_state(self, operation_id: str) -> WorkState | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WorkState | None] = loop.create_future()
        self._pending.setdefault(operation_id, []).append(future)
        if self._reader is None or self._reader.done():
            self._reader = loop.create_task(self._read_pending())
        return await future

    async def _read_pending(self) -> None:
        while self._pending:
            ids = list(self._pending)[:MAX_BATCH]
            waiting = {operation_id: self._pending.pop(operation_id) for operation_id in ids}
            try:
                async with self._db.read() as conn:
                    records = await store.work_states(conn, ids)
            except Exception as exc:
                _settle(waiting, {}, exc)
            except BaseException:
                for futures in (*waiting.values(), *self._pending.values()):
                    for future in futures:
                        future.cancel()
                self._pending.clear()
                raise
            else:
                _settle(waiting, records, None)

    async def events_after(self, operation_id: str, after: int, limit: int) -> list[EventRecord]:
        async with self._db.read() as conn:
            return await store.events_after(conn, operation_id, after, limit)


def _settle(
    waiting: dict[str, list[asyncio.Future[WorkState | None]]],
    records: dict[str, WorkState],
    error: Exception | None,
) -> None:
    for operation_id, futures in waiting.items():
        for future in futures:
            if future.done():  # its caller was cancelled
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(records.get(operation_id))
