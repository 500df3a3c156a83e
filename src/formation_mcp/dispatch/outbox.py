"""The transactional outbox: work and cancel messages are written in the same transaction as
the change that needs them, and a relay publishes them to the broker afterwards.

So a call never loses its work, whether the broker is up or not: when RabbitMQ is unreachable
CallTool still succeeds, and the relay drains the outbox once the broker is back. Delivery is
at-least-once (a relay that crashes after publishing and before deleting publishes again);
workers skip work whose operation already started or finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from formation.mcp.v1 import queue_pb2
from sqlalchemy.ext.asyncio import AsyncConnection
from yarl import URL

from formation_mcp.broker.base import Broker, BrokerUnavailable, work_routing_key
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import outbox
from formation_mcp.errors import Unavailable
from formation_mcp.operations.ids import operation_name
from formation_mcp.settings import Settings

log = logging.getLogger(__name__)

WORK, CANCEL = "work", "cancel"
_INSERT = outbox.insert()
_DELETE = outbox.delete().where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
_RELEASE = (
    outbox.update()
    .where(outbox.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(claimed_until=0)
)
CLAIM_SECONDS = 30.0
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0


class Outbox:
    """The dispatcher the Tools service writes to."""

    def __init__(self, deployment: str = "") -> None:
        self.deployment = deployment
        """Which broker deployment this outbox feeds: relays only publish their own rows."""
        self._wake = asyncio.Event()

    async def enqueue(self, conn: AsyncConnection, item: queue_pb2.WorkItem) -> None:
        await self.enqueue_many(conn, [item])

    async def enqueue_many(
        self, conn: AsyncConnection, items: Sequence[queue_pb2.WorkItem]
    ) -> None:
        """Work items in the transaction `conn` belongs to: one statement for all of them."""
        now = now_us()
        rows = [
            self._row(
                WORK,
                work_routing_key(item.tool, item.node),
                item.operation,
                item.SerializeToString(),
                now,
            )
            for item in items
        ]
        await conn.execute(_INSERT, rows)

    async def enqueue_cancel(self, conn: AsyncConnection, operation_id: str) -> None:
        name = operation_name(operation_id)
        body = queue_pb2.CancelWork(operation=name).SerializeToString()
        await conn.execute(_INSERT, self._row(CANCEL, "", name, body, now_us()))

    def _row(
        self, kind: str, key: str, message_id: str, body: bytes, now: int
    ) -> dict[str, object]:
        return {
            "deployment": self.deployment,
            "kind": kind,
            "routing_key": key,
            "message_id": message_id,
            "body": body,
            "create_time": now,
            "claimed_until": 0,
        }

    def wake(self) -> None:
        """Called after the transaction committed: publish now rather than at the next poll."""
        self._wake.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()


def broker_deployment(settings: Settings) -> str:
    """The broker this server publishes to: RabbitMQ's host, port, vhost and prefix (never the
    credentials), or, for the in-process broker, this node (stable across restarts, so rows
    left by a crash are published after it)."""
    if settings.broker_url.startswith("memory://"):
        return f"memory://{settings.effective_node_id}"
    url = URL(settings.broker_url)
    return f"{url.scheme}://{url.host}:{url.port}{url.path}#{settings.broker_prefix}"[:255]


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    kind: str
    routing_key: str
    message_id: str
    body: bytes


class OutboxRelay:
    def __init__(
        self, database: Database, broker: Broker, box: Outbox, batch_size: int = 500
    ) -> None:
        self._db = database
        self._broker = broker
        self._box = box
        self._batch = batch_size
        mine = outbox.c.deployment.in_(sorted({box.deployment, ""}))
        self._mine = mine
        free = (
            sa.select(outbox.c.id)
            .where(outbox.c.claimed_until < sa.bindparam("now"), mine)
            .order_by(outbox.c.id)
            .limit(batch_size)
        )
        if database.is_postgres:
            free = free.with_for_update(skip_locked=True)
        self._claim_statement = (
            outbox.update()
            .where(outbox.c.id.in_(free.scalar_subquery()))
            .values(claimed_until=sa.bindparam("claim_until"))
            .returning(
                outbox.c.id, outbox.c.kind, outbox.c.routing_key, outbox.c.message_id, outbox.c.body
            )
        )

    async def run(self) -> None:
        delay = 0.0
        while True:
            await self._box.wait(POLL_SECONDS if delay == 0 else delay)
            try:
                while await self.drain_once() == self._batch:
                    pass
                delay = 0.0
            except (BrokerUnavailable, Unavailable) as exc:
                delay = min(max(delay * 2, 0.1), MAX_BACKOFF_SECONDS)
                log.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
            except Exception:
                delay = MAX_BACKOFF_SECONDS
                log.exception("outbox relay failed; retrying in %.1fs", delay)

    async def drain_once(self) -> int:
        """Claim a batch, publish it (confirms, all in flight at once), delete what the broker
        confirmed and release the rest. Returns how many were published."""
        rows = await self._claim()
        if not rows:
            return 0
        results = await asyncio.gather(
            *(self._publish(row) for row in rows), return_exceptions=True
        )
        published = [row.id for row, result in zip(rows, results, strict=True) if result is None]
        failed = [row.id for row, result in zip(rows, results, strict=True) if result is not None]
        async with self._db.write() as conn:
            if published:
                await conn.execute(_DELETE, {"ids": published})
            if failed:
                await conn.execute(_RELEASE, {"ids": failed})
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise (
                errors[0]
                if isinstance(errors[0], BrokerUnavailable)
                else BrokerUnavailable(str(errors[0]))
            )
        return len(published)

    async def _claim(self) -> list[_Row]:
        now = now_us()
        parameters = {"now": now, "claim_until": now + int(CLAIM_SECONDS * 1e6)}
        async with self._db.write() as conn:
            rows = (await conn.execute(self._claim_statement, parameters)).all()
        return sorted((_Row(*row) for row in rows), key=lambda row: row.id)

    async def _publish(self, row: _Row) -> None:
        if row.kind == CANCEL:
            await self._broker.publish_cancel(row.body)
        else:
            await self._broker.publish_work(row.routing_key, row.body, row.message_id)

    async def pending(self) -> int:
        async with self._db.read() as conn:
            count = sa.select(sa.func.count()).select_from(outbox).where(self._mine)
            return int(await conn.scalar(count) or 0)
