"""The outbox relay: work handed off after its commit is published without a read; rows
nobody holds are claimed from the table; a relay publishes only its own deployment's rows
(deployments may share one database: a relay must never send another deployment's work to
its own broker)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from formation.mcp.internal.v1 import queue_pb2
from tests.support.waiting import eventually

from formation_mcp.broker.base import BrokerUnavailable, Delivery
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.db.schema import outbox
from formation_mcp.dispatch.outbox import Outbox, OutboxRelay, Pending, broker_deployment
from formation_mcp.settings import Settings


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await migrate.upgrade(db)
    try:
        yield db
    finally:
        await db.close()


async def enqueue(database: Database, box: Outbox, operation: str) -> Pending:
    async with database.write() as conn:
        return await box.enqueue_many(
            conn, [queue_pb2.WorkItem(operation=operation, tool="test.echo")]
        )


async def abandon(database: Database, pending: Pending) -> None:
    """What a writer that died before publishing leaves once its reservation ran out."""
    async with database.write() as conn:
        await conn.execute(
            outbox.update()
            .where(outbox.c.id.in_([row.id for row in pending.rows]))
            .values(claimed_until=0)
        )


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    memory = MemoryBroker(max_attempts=3)
    await memory.start()
    try:
        yield memory
    finally:
        await memory.close()


async def consume(broker: MemoryBroker) -> list[str]:
    """The operations of the work the broker delivers from now on."""
    received: list[str] = []

    async def handler(delivery: Delivery) -> None:
        received.append(queue_pb2.WorkItem.FromString(delivery.body).operation)
        await delivery.ack()

    await broker.consume_work(handler, prefetch=10)
    return received


@contextlib.asynccontextmanager
async def relaying(relay: OutboxRelay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_work_handed_off_after_its_commit_is_published_and_deleted(
    database: Database, broker: MemoryBroker
) -> None:
    box = Outbox("memory://handoff")
    received = await consume(broker)
    relay = OutboxRelay(database, broker, box)
    async with relaying(relay):
        box.committed(await enqueue(database, box, "operations/handed-off"))

        async def published_and_deleted() -> bool:
            return received == ["operations/handed-off"] and await relay.pending() == 0

        await eventually(published_and_deleted)


async def test_a_reserved_row_is_not_claimed_from_the_table(
    database: Database, broker: MemoryBroker
) -> None:
    box = Outbox("memory://reserved")
    relay = OutboxRelay(database, broker, box)
    pending = await enqueue(database, box, "operations/reserved")
    assert await relay.drain_once() == 0  # its writer publishes it (or dies: see below)
    assert await relay.pending() == 1
    await abandon(database, pending)


async def test_rows_a_dead_writer_left_are_claimed_and_published(
    database: Database, broker: MemoryBroker
) -> None:
    box = Outbox("memory://left-behind")
    received = await consume(broker)
    relay = OutboxRelay(database, broker, box)
    await abandon(database, await enqueue(database, box, "operations/left-behind"))
    assert await relay.drain_once() == 1

    async def delivered() -> bool:
        return received == ["operations/left-behind"]

    await eventually(delivered)
    assert await relay.pending() == 0


async def test_a_relay_leaves_another_deployments_rows_alone(database: Database) -> None:
    mine, theirs = Outbox("amqp://h:5672/#mine"), Outbox("amqp://h:5672/#theirs")
    broker = MemoryBroker(max_attempts=3)
    await broker.start()
    received: list[bytes] = []

    async def handler(delivery: Delivery) -> None:
        received.append(delivery.body)
        await delivery.ack()

    await broker.consume_work(handler, prefetch=10)
    relay = OutboxRelay(database, broker, mine)
    await abandon(database, await enqueue(database, theirs, "operations/theirs"))
    await abandon(database, await enqueue(database, mine, "operations/mine"))
    try:
        assert await relay.drain_once() == 1

        async def delivered() -> bool:
            return bool(received)

        await eventually(delivered)
        assert [queue_pb2.WorkItem.FromString(body).operation for body in received] == [
            "operations/mine"
        ]
        assert await relay.pending() == 0
        assert await OutboxRelay(database, broker, theirs).pending() == 1
    finally:
        await broker.close()
        async with database.write() as conn:  # the database is shared by the session
            await conn.execute(outbox.delete().where(outbox.c.deployment == theirs.deployment))


def test_the_deployment_names_the_broker_without_its_credentials() -> None:
    settings = Settings(broker_url="amqp://guest:secret@10.0.0.5:5672/prod", broker_prefix="p1")
    assert broker_deployment(settings) == "amqp://10.0.0.5:5672/prod#p1"


class RefusesFirstPublishes(MemoryBroker):
    """The broker is down for the first `refusals` publishes."""

    def __init__(self, refusals: int) -> None:
        super().__init__(max_attempts=3)
        self.refusals = refusals

    async def publish_work(self, routing_key: str, body: bytes, message_id: str) -> None:
        if self.refusals > 0:
            self.refusals -= 1
            raise BrokerUnavailable("the broker is down (test)")
        await super().publish_work(routing_key, body, message_id)


async def test_handed_off_work_the_broker_refused_is_released_and_published_later(
    database: Database,
) -> None:
    broker = RefusesFirstPublishes(refusals=1)
    await broker.start()
    box = Outbox("memory://refused")
    received = await consume(broker)
    relay = OutboxRelay(database, broker, box)
    try:
        async with relaying(relay):
            box.committed(await enqueue(database, box, "operations/refused-once"))

            async def published_after_all() -> bool:
                return received == ["operations/refused-once"] and await relay.pending() == 0

            await eventually(published_after_all)
        assert broker.refusals == 0
    finally:
        await broker.close()
