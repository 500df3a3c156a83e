"""Change notification between API replicas, by topic.

Every committed change that other replicas must know about (an operation changed, a token was
revoked) is announced on a topic. In one process (the embedded default) an announcement is a
direct call to the topic's handlers after the commit. With PostgreSQL, it also runs `pg_notify`
inside the writing transaction (so the notice goes out exactly when the change commits) and
every replica LISTENs on one dedicated connection, reconnecting with backoff; after a
reconnect each topic's `resync` handler runs, since notices may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "fmcp_changes"
_SEPARATOR = "|"


@dataclass(frozen=True, slots=True)
class Topic:
    on_change: Callable[[str], None]
    on_resync: Callable[[], None]


class ChangeBus:
    """In-process announcements; the base of the PostgreSQL bus."""

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}

    def subscribe(
        self, topic: str, on_change: Callable[[str], None], on_resync: Callable[[], None]
    ) -> None:
        self._topics[topic] = Topic(on_change, on_resync)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def announce_in_transaction(
        self, conn: AsyncConnection, topic: str, payload: str
    ) -> None:
        """Called inside the writing transaction; nothing to do in-process."""
        return

    async def announce_many_in_transaction(
        self, conn: AsyncConnection, topic: str, payloads: Sequence[str]
    ) -> None:
        """Several announcements of one transaction (one statement on PostgreSQL)."""
        return

    def committed(self, topic: str, payload: str) -> None:
        """Called after the transaction committed: this process's handlers run now."""
        self._deliver(topic, payload)

    def _deliver(self, topic: str, payload: str) -> None:
        handler = self._topics.get(topic)
        if handler is not None:
            handler.on_change(payload)

    def _resync_all(self) -> None:
        for handler in self._topics.values():
            handler.on_resync()


class PostgresChangeBus(ChangeBus):
    """LISTEN/NOTIFY on one dedicated asyncpg connection."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
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
        self, conn: AsyncConnection, topic: str, payload: str
    ) -> None:
        await conn.execute(
            sa.text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": f"{topic}{_SEPARATOR}{payload}"},
        )

    async def announce_many_in_transaction(
        self, conn: AsyncConnection, topic: str, payloads: Sequence[str]
    ) -> None:
        await conn.execute(
            sa.text(
                "SELECT pg_notify(:channel, message) "
                "FROM unnest(CAST(:messages AS text[])) AS message"
            ),
            {"channel": CHANNEL, "messages": [f"{topic}{_SEPARATOR}{p}" for p in payloads]},
        )

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, message: str) -> None:
        topic, _, payload = message.partition(_SEPARATOR)
        self._deliver(topic, payload)

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
                self._resync_all()  # anything committed while we were not listening
                await lost.wait()
                log.warning("change listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("change listener failed (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
