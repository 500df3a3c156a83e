"""EventManager: recording events, listing them, and watching them live.

Events are recorded from three places: the events a node reports (through the broker, see
`dispatch.consumers`), operations that end (in the same transaction that ends them, see
`operation_events`), and `record` for anything else. Every recording announces itself on the
change bus, so every replica's hub reads the new events.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, Sequence
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import events
from formation_mcp.errors import PermissionDenied
from formation_mcp.events import store
from formation_mcp.events.filtering import EventFilter, parse_filter
from formation_mcp.events.hub import EventHub, Overflowed
from formation_mcp.events.model import EventRecord, NewEvent, event_id, parse_cursor
from formation_mcp.identity import Caller
from formation_mcp.paging import decode_token, encode_token, page_size, query_key

TOPIC: Final = "event"
CATCH_UP_BATCH: Final = 500
WATCH_BUFFER_EVENTS: Final = 10_000


class EventManager:
    def __init__(
        self,
        database: Database,
        bus: ChangeBus,
        *,
        ttl_seconds: float,
        sweep_batch: int = 1000,
        watch_buffer: int = WATCH_BUFFER_EVENTS,
    ) -> None:
        self._db = database
        self._bus = bus
        self._ttl_us = int(ttl_seconds * 1_000_000)
        self._sweep_batch = sweep_batch
        self.hub = EventHub(self._after_any, self._newest, watch_buffer)
        bus.subscribe(TOPIC, self.hub.changed, self.hub.resync)

    # -- recording ---------------------------------------------------------------------------

    async def record(self, new: Sequence[NewEvent]) -> list[EventRecord]:
        """Record events whose keys are new, in one transaction; the recorded ones."""
        async with self._db.write() as conn:
            recorded = await self.record_in_transaction(conn, new)
        self.committed(recorded)
        return recorded

    async def record_in_transaction(
        self, conn: AsyncConnection, new: Sequence[NewEvent]
    ) -> list[EventRecord]:
        """Record in the caller's transaction (last thing before its commit: it takes the
        lock that orders ids); call `committed` with the result after the commit."""
        recorded = await store.record(conn, new)
        if recorded:
            await self._bus.announce_in_transaction(conn, TOPIC, recorded[-1].id)
        return recorded

    def committed(self, recorded: Sequence[EventRecord]) -> None:
        if recorded:
            self._bus.committed(TOPIC, recorded[-1].id)

    # -- reading -----------------------------------------------------------------------------

    async def list(
        self,
        caller: Caller,
        filter_text: str,
        requested_page_size: int,
        page_token: str,
        *,
        all_users: bool = False,
    ) -> tuple[list[EventRecord], str]:
        """A page, newest first, and the next page's token ("" on the last page)."""
        size = page_size(requested_page_size)
        scope = _scope(caller, all_users)
        parsed = parse_filter(filter_text)
        key = query_key("events", caller.account, str(all_users), filter_text)
        before = None
        if page_token:
            before = parse_cursor(decode_token(page_token, key), "page_token")
        async with self._db.read() as conn:
            found = await store.newest_first(
                conn, sa.and_(scope, parsed.condition()), before, size + 1
            )
        if len(found) <= size:
            return found, ""
        return found[:size], encode_token(found[size - 1].id, key)

    async def watch(
        self, caller: Caller, filter_text: str, after: str, *, all_users: bool = False
    ) -> AsyncGenerator[EventRecord, None]:
        """The events after `after` (an event's name or id; "" for from now on), then every
        new one, each exactly once, in id order, until the caller stops."""
        scope = _scope(caller, all_users)
        parsed = parse_filter(filter_text)
        cursor = parse_cursor(after, "after") if after else None
        condition = sa.and_(scope, parsed.condition())
        subscription = await self.hub.subscribe()
        try:
            if cursor is None:
                cursor = subscription.start
            while True:
                while True:  # the table first: everything after the cursor
                    async with self._db.read() as conn:
                        batch = await store.oldest_after(conn, condition, cursor, CATCH_UP_BATCH)
                    for record in batch:
                        cursor = record.id
                        yield record
                    if len(batch) < CATCH_UP_BATCH:
                        break
                try:
                    while True:  # then live, from the hub
                        for record in await subscription.next():
                            if record.id > cursor and _wanted(caller, all_users, parsed, record):
                                cursor = record.id
                                yield record
                except Overflowed:
                    continue  # fell behind: read the gap from the table
        finally:
            self.hub.unsubscribe(subscription)

    async def _after_any(self, after: str, limit: int) -> builtins.list[EventRecord]:
        async with self._db.read() as conn:
            return await store.oldest_after(conn, sa.true(), after, limit)

    async def _newest(self) -> str:
        async with self._db.read() as conn:
            return await store.last_id(conn)

    # -- retention ---------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete events recorded more than the TTL ago, in bounded batches; how many."""
        bound = event_id(now_us() - self._ttl_us, 0)
        total = 0
        while True:
            async with self._db.write() as conn:
                deleted = await store.delete_before(conn, bound, self._sweep_batch)
            total += deleted
            if deleted < self._sweep_batch:
                return total

    async def sweep_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.sweep()
            except Exception:  # the database is down: next time
                continue


def _scope(caller: Caller, all_users: bool) -> sa.ColumnElement[bool]:
    if all_users:
        if not caller.is_admin:
            raise PermissionDenied(
                "all_users shows every account's events: admins only",
                reason="ADMIN_ONLY_ARGUMENT",
                metadata={"argument": "all_users"},
            )
        return sa.true()
    return events.c.owner == caller.account


def _wanted(caller: Caller, all_users: bool, parsed: EventFilter, record: EventRecord) -> bool:
    return (all_users or record.owner == caller.account) and parsed.matches(record)


__all__ = ["EventFilter", "EventManager"]
