"""Database down: calls fail with UNAVAILABLE and leave nothing half-written."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.exc import OperationalError

from formation_mcp.changes import ChangeBus
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.errors import Unavailable
from formation_mcp.identity import Caller
from formation_mcp.operations import store
from formation_mcp.operations.feeds import FeedHub
from formation_mcp.operations.manager import OperationManager
from formation_mcp.operations.store import EventRecord


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed


async def no_events(_operation_id: str, _after: int, _limit: int) -> list[EventRecord]:
    return []


def service_on(database: Database) -> OperationManager:
    hub = FeedHub(no_events, 16)
    return OperationManager(database, hub, ChangeBus(), wait_max=1.0)


@pytest.fixture
def unreachable_service() -> OperationManager:
    return service_on(Database(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/none"))


async def test_reads_are_unavailable_when_the_database_is_down(
    unreachable_service: OperationManager,
) -> None:
    with pytest.raises(Unavailable) as caught:
        await unreachable_service.get(Caller("a", frozenset()), "operations/" + "0" * 32)
    assert caught.value.reason == "DATABASE_UNAVAILABLE"


async def test_writes_are_unavailable_when_the_database_is_down(
    unreachable_service: OperationManager,
) -> None:
    with pytest.raises(Unavailable):
        await unreachable_service.create("a", "test.sleep")


async def test_a_write_that_fails_midway_leaves_nothing(database_url: str, account: str) -> None:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        created: list[str] = []

        async def create_then_lose_the_connection() -> None:
            async with database.write() as conn:
                record = await service_on(database).create(account, "test.sleep", conn=conn)
                created.append(record.id)
                raise OperationalError("INSERT", {}, OSError("connection reset"))

        with pytest.raises(Unavailable):
            await create_then_lose_the_connection()
        async with database.read() as conn:
            assert await store.get(conn, created[0]) is None
    finally:
        await database.close()
