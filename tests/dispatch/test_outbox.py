"""The outbox relay publishes only its own deployment's rows (deployments may share one
database: a relay must never send another deployment's work to its own broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from formation.mcp.v1 import queue_pb2
from tests.helpers import eventually

from formation_mcp.broker.base import Delivery
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.db.schema import outbox
from formation_mcp.dispatch.outbox import Outbox, OutboxRelay, broker_deployment
from formation_mcp.settings import Settings


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    await migrate.upgrade(db)
    try:
        yield db
    finally:
        await db.close()


async def enqueue(database: Database, box: Outbox, operation: str) -> None:
    async with database.write() as conn:
        await box.enqueue(conn, queue_pb2.WorkItem(operation=operation, tool="test.echo"))


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
    await enqueue(database, theirs, "operations/theirs")
    await enqueue(database, mine, "operations/mine")
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
