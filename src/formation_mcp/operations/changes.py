"""Change notification between API replicas.

Every committed change is announced so that watchers on every replica see it. In one process
(the embedded default) the announcement is a direct call into the local `FeedHub`. With
PostgreSQL, the change also runs `pg_notify` inside its own transaction (so the notice goes
out exactly when the change commits) and every replica LISTENs on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.operations.feeds import FeedHub

log = logging.getLogger(__name__)

CHANNEL = "fmcp_operations"
_DELETED = "deleted"


class ChangeBus:
    """In-process announcements; the base for the PostgreSQL bus."""

    def __init__(self, hub: FeedHub) -> None:
        self.hub = hub

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def announce_in_transaction(
        self, conn: AsyncConnection, operation_id: str, sequence: int | None
    ) -> None:
        """Called inside the writing transaction; nothing to do in-process."""
        return

    def committed(self, operation_id: str, sequence: int | None) -> None:
        """Called after the transaction committed. `sequence` None means deleted."""
        if sequence is None:
            self.hub.deleted(operation_id)
        else:
            self.hub.changed(operation_id, sequence)


class PostgresChangeBus(ChangeBus):
    """LISTEN/NOTIFY on one dedicated asyncpg connection, reconnecting with backoff."""

    def __init__(self, hub: FeedHub, dsn: str) -> None:
        super().__init__(hub)
        self._dsn = dsn
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen_forever())
        await asyncio.wait_for(self._listening.wait(), timeout=30)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def announce_in_transaction(
        self, conn: AsyncConnection, operation_id: str, sequence: int | None
    ) -> None:
        payload = f"{operation_id}:{_DELETED if sequence is None else sequence}"
        await conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": payload},
        )

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        operation_id, _, sequence = payload.partition(":")
        if sequence == _DELETED:
            self.hub.deleted(operation_id)
        elif sequence.isdigit():
            self.hub.changed(operation_id, int(sequence))

    async def _listen_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("change listener cannot connect (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(_setter(lost))
            try:
                await conn.add_listener(CHANNEL, self._on_notification)
                delay = 0.1
                self._listening.set()
                self.hub.resync()  # anything committed while we were not listening
                await lost.wait()
                log.warning("change listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("change listener failed (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
