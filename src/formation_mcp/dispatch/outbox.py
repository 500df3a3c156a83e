"""The transactional outbox: work and cancel messages are written in the same transaction as
the change that needs them, and a relay publishes them to the broker afterwards.

Work rows are written reserved for the writing process (`claimed_until` a few seconds ahead)
and handed to its relay once the transaction commits, so the relay publishes them without
reading them back. Rows nobody holds (cancels, rows released after a failed publish, rows
whose writer died before publishing and whose reservation ran out) are claimed from the table.

So a call never loses its work, whether the broker is up or not: when RabbitMQ is unreachable
CallTool still succeeds, and the relay drains the outbox once the broker is back. Delivery is
at-least-once (a relay that crashes after publishing and before deleting publishes again);
workers skip work whose operation already started or finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from formation.mcp.internal.v1 import queue_pb2
from sqlalchemy.ext.asyncio import AsyncConnection
from yarl import URL

from formation_mcp.broker.base import Broker, BrokerUnavailable, work_routing_key
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.lists import one_of
from formation_mcp.db.schema import outbox
from formation_mcp.errors import Unavailable
from formation_mcp.operations.ids import operation_name
from formation_mcp.settings import Settings

log = logging.getLogger(__name__)

WORK, CANCEL = "work", "cancel"
_INSERT = outbox.insert()
_ROW_IN = one_of(outbox.c.id, "ids", sa.BigInteger())
_DELETE = {postgres: outbox.delete().where(_ROW_IN[postgres]) for postgres in _ROW_IN}
_RELEASE = {
    postgres: outbox.update().where(_ROW_IN[postgres]).values(claimed_until=0)
    for postgres in _ROW_IN
}
_INSERT_CLAIMED = outbox.insert().returning(outbox.c.id, sort_by_parameter_order=True)
CLAIM_SECONDS = 30.0
HANDOFF_CLAIM_SECONDS = 10.0
"""How long rows written by this process stay reserved for its own relay (which publishes them
right after the commit): if the process dies first, any relay publishes them after that."""
POLL_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 5.0


class Outbox:
    """The dispatcher the Tools service writes to."""

    def __init__(self, deployment: str = "") -> None:
        self.deployment = deployment
        """Which broker deployment this outbox feeds: relays only publish their own rows."""
        self._signal = asyncio.Event()
        self._claim_requested = False
        self._handed_off: list[_Row] = []

    async def enqueue_many(
        self, conn: AsyncConnection, items: Sequence[queue_pb2.WorkItem]
    ) -> Pending:
        """Work items in the transaction `conn` belongs to, one statement for all of them,
        reserved for this process's relay. Pass the result to `committed` after the commit."""
        now = now_us()
        reserved_until = now + int(HANDOFF_CLAIM_SECONDS * 1e6)
        messages = [
            (work_routing_key(item.tool, item.node), item.operation, item.SerializeToString())
            for item in items
        ]
        values = [
            self._row(WORK, key, message_id, body, now, reserved_until)
            for key, message_id, body in messages
        ]
        ids = (await conn.execute(_INSERT_CLAIMED, values)).scalars().all()
        return Pending(
            [
                _Row(row_id, WORK, key, message_id, body)
                for row_id, (key, message_id, body) in zip(ids, messages, strict=True)
            ]
        )

    def committed(self, pending: Pending) -> None:
        """The transaction that enqueued `pending` committed: the relay publishes it now,
        without reading it back."""
        self._handed_off.extend(pending.rows)
        self._signal.set()

    async def enqueue_cancel(self, conn: AsyncConnection, operation_id: str) -> None:
        name = operation_name(operation_id)
        body = queue_pb2.CancelWork(operation=name).SerializeToString()
        await conn.execute(_INSERT, self._row(CANCEL, "", name, body, now_us()))

    def _row(
        self,
        kind: str,
        key: str,
        message_id: str,
        body: bytes,
        now: int,
        claimed_until: int = 0,
    ) -> dict[str, object]:
        return {
            "deployment": self.deployment,
            "kind": kind,
            "routing_key": key,
            "message_id": message_id,
            "body": body,
            "create_time": now,
            "claimed_until": claimed_until,
        }

    def wake(self) -> None:
        """Called after a transaction that wrote unreserved rows (a cancel) committed: the
        relay claims rows from the table now rather than at the next poll."""
        self._claim_requested = True
        self._signal.set()

    async def next_round(self, timeout: float) -> tuple[list[_Row], bool]:
        """Waits up to `timeout` for work; returns the rows handed off since the last round
        and whether the relay was asked to claim rows from the table."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._signal.wait(), timeout)
        self._signal.clear()
        rows, self._handed_off = self._handed_off, []
        claim, self._claim_requested = self._claim_requested, False
        return rows, claim


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


@dataclass(frozen=True, slots=True)
class Pending:
    """Rows a transaction enqueued, to hand to the relay once it commits."""

    rows: Sequence[_Row]


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
        """Publish what this process hands off as soon as it commits; claim rows from the
        table when asked to (cancels), every POLL_SECONDS (rows a dead process left behind),
        and after a failure (rows released for a retry)."""
        delay = 0.0
        last_claim = -POLL_SECONDS
        while True:
            handed_off, claim = await self._box.next_round(POLL_SECONDS if delay == 0 else delay)
            try:
                await self._publish_handed_off(handed_off)
                if claim or delay or time.monotonic() - last_claim >= POLL_SECONDS:
                    last_claim = time.monotonic()
                    while await self.drain_once() == self._batch:
                        pass
                delay = 0.0
            except (BrokerUnavailable, Unavailable) as exc:
                delay = min(max(delay * 2, 0.1), MAX_BACKOFF_SECONDS)
                log.warning("outbox relay: %s; retrying in %.1fs", exc, delay)
            except Exception:
                delay = MAX_BACKOFF_SECONDS
                log.exception("outbox relay failed; retrying in %.1fs", delay)

    async def _publish_handed_off(self, rows: Sequence[_Row]) -> None:
        """Every batch is tried, so that each row is published or released for a claim now
        (rather than left reserved until its reservation runs out); raises the first error."""
        first_error: Exception | None = None
        for start in range(0, len(rows), self._batch):
            try:
                await self._publish_rows(rows[start : start + self._batch])
            except (BrokerUnavailable, Unavailable) as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    async def drain_once(self) -> int:
        """Claim a batch from the table and publish it. Returns how many were published."""
        rows = await self._claim()
        if not rows:
            return 0
        return await self._publish_rows(rows)

    async def _publish_rows(self, rows: Sequence[_Row]) -> int:
        """Publish (confirms, all in flight at once), delete what the broker confirmed and
        release the rest for a later claim. Returns how many were published."""
        results = await asyncio.gather(
            *(self._publish(row) for row in rows), return_exceptions=True
        )
        published = [row.id for row, result in zip(rows, results, strict=True) if result is None]
        failed = [row.id for row, result in zip(rows, results, strict=True) if result is not None]
        async with self._db.write_statements() as conn:  # each stands alone
            if published:
                await conn.execute(_DELETE[self._db.is_postgres], {"ids": published})
            if failed:
                await conn.execute(_RELEASE[self._db.is_postgres], {"ids": failed})
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
