"""Change notification between API replicas, by topic.

Every committed change that other replicas must know about (an operation changed, a token was
revoked) is announced on a topic. In one process (the embedded default) an announcement is a
direct call to the topic's handlers after the commit. With PostgreSQL, it also runs `pg_notify`
inside the writing transaction, last, one statement for all its notices (so they go out
exactly when the change commits) and
every replica LISTENs on one dedicated connection, reconnecting with backoff; after a
reconnect each topic's `resync` handler runs, since notices may have been missed meanwhile.

A replica hears its own notices too, often before its own commit returns. Those are held back
(the writer delivers the change itself once its commit returns, with what it wrote, so a
watcher needs no database read); a held notice whose writer does not deliver it within
OWN_NOTICE_HOLD_SECONDS (its commit failed after the server had committed) is delivered then.
One heard only after its writer delivered the change (within that time) is not delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.transaction_hooks import before_commit

log = logging.getLogger(__name__)

CHANNEL = "fmcp_changes"
_SEPARATOR = "|"
OWN_NOTICE_HOLD_SECONDS = 1.0
OWN_NOTICES_MAX = 10_000
"""Announcements awaiting their commit that are remembered (those of transactions that rolled
back are never heard; past this many, the oldest are forgotten)."""


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
        self._own: dict[str, int] = {}
        """Messages announced in transactions whose commit has not returned yet (counted)."""
        self._held: set[str] = set()
        """Own notices heard before the writer delivered them."""
        self._awaited: dict[str, tuple[int, float]] = {}
        """Own messages their writer delivered before their notice was heard (how many, and
        until when their notice is expected): that notice is not delivered again."""

    def _announced(self, messages: Sequence[str]) -> None:
        own = self._own
        for message in messages:
            own[message] = own.get(message, 0) + 1
        while len(own) > OWN_NOTICES_MAX:
            del own[next(iter(own))]

    def committed(self, topic: str, payload: str) -> None:
        message = f"{topic}{_SEPARATOR}{payload}"
        count = self._own.pop(message, 0)
        if count > 1:
            self._own[message] = count - 1
        if message in self._held:
            self._held.discard(message)
        elif count:  # its notice is still on its way: it must not deliver the change again
            awaited, _until = self._awaited.pop(message, (0, 0.0))
            self._awaited[message] = (awaited + 1, time.monotonic() + OWN_NOTICE_HOLD_SECONDS)
            while len(self._awaited) > OWN_NOTICES_MAX:
                del self._awaited[next(iter(self._awaited))]
        self._deliver(topic, payload)

    def _was_delivered(self, message: str) -> bool:
        """Whether `message` is an own notice its writer delivered already (once each)."""
        awaited = self._awaited.pop(message, None)
        if awaited is None:
            return False
        count, until = awaited
        if count > 1:
            self._awaited[message] = (count - 1, until)
        return time.monotonic() <= until

    def _release(self, message: str) -> None:
        """A held own notice whose writer did not deliver it in time: deliver it now."""
        if message in self._held:
            self._held.discard(message)
            topic, _, payload = message.partition(_SEPARATOR)
            self._deliver(topic, payload)

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
        await self.announce_many_in_transaction(conn, topic, [payload])

    async def announce_many_in_transaction(
        self, conn: AsyncConnection, topic: str, payloads: Sequence[str]
    ) -> None:
        """The notices go out in one statement, last in the transaction, with every other
        notice it announces (`transaction_hooks`)."""
        messages = [f"{topic}{_SEPARATOR}{p}" for p in payloads]
        before_commit(conn, _NOTICES, _Notices()).messages.extend(messages)
        self._announced(messages)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, message: str) -> None:
        if self._was_delivered(message):
            return
        if message in self._own:  # ours, its commit not returned yet: the writer delivers it
            self._held.add(message)
            asyncio.get_running_loop().call_later(OWN_NOTICE_HOLD_SECONDS, self._release, message)
            return
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
                self._awaited.clear()  # notices sent while we were not listening are lost
                self._resync_all()  # anything committed while we were not listening
                await lost.wait()
                log.warning("change listener lost its connection; reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("change listener failed (%s); reconnecting", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2)


_NOTICES = "changes.notices"
_NOTIFY = sa.text(
    "SELECT pg_notify(:channel, message) FROM unnest(CAST(:messages AS text[])) AS message"
)


class _Notices:
    """The notices one transaction announces, sent in one statement before it commits."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def __call__(self, conn: AsyncConnection) -> None:
        await conn.execute(_NOTIFY, {"channel": CHANNEL, "messages": self.messages})


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    return lambda _conn: event.set()
