"""A replica hears its own PostgreSQL change notices: the writer delivers its change once its
commit returns, and a notice heard before that is not delivered a second time; a notice whose
writer never delivers it (its commit failed after the server committed) is delivered later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from tests.support.waiting import DEADLINE, wait_until

from formation_mcp import changes
from formation_mcp.changes import PostgresChangeBus
from formation_mcp.db.database import Database

pytestmark = pytest.mark.postgres
TOPIC = "test"


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def bus(postgres_url: str) -> AsyncIterator[tuple[PostgresChangeBus, list[str]]]:
    bus = PostgresChangeBus(postgres_url.replace("postgresql+asyncpg://", "postgresql://"))
    heard: list[str] = []
    bus.subscribe(TOPIC, heard.append, lambda: None)
    await bus.start()
    try:
        yield bus, heard
    finally:
        await bus.close()


async def _announce(database: Database, bus: PostgresChangeBus, payload: str) -> None:
    async with database.write() as conn:
        await conn.execute(sa.text("SELECT 1"))
        await bus.announce_many_in_transaction(conn, TOPIC, [payload])


async def test_a_change_announced_and_delivered_by_its_writer_is_delivered_once(
    database: Database,
    bus: tuple[PostgresChangeBus, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changes, "OWN_NOTICE_HOLD_SECONDS", 0.05)
    changes_bus, heard = bus
    await _announce(database, changes_bus, "op:2")
    await asyncio.sleep(0)  # the notice may or may not have been heard yet
    changes_bus.committed(TOPIC, "op:2")
    await _announce(database, changes_bus, "op:3")  # a later notice, to know op:2's arrived
    changes_bus.committed(TOPIC, "op:3")
    await wait_until(lambda: "op:3" in heard)
    loop = asyncio.get_running_loop()
    held_until = loop.time() + changes.OWN_NOTICE_HOLD_SECONDS * 2
    await wait_until(lambda: loop.time() >= held_until)  # a held op:2 would have come by now
    assert heard.count("op:2") == 1


async def test_an_own_notice_its_writer_never_delivers_is_delivered_after_the_hold(
    database: Database, bus: tuple[PostgresChangeBus, list[str]]
) -> None:
    changes_bus, heard = bus
    await _announce(database, changes_bus, "op:7")  # committed; `committed` never called
    await wait_until(lambda: "op:7" in heard, DEADLINE)
    assert heard == ["op:7"]
