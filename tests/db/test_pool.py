"""The PostgreSQL pool keeps at most `pool_size` connections open and reuses them; a caller
that finds every one busy for too long gets UNAVAILABLE (DATABASE_BUSY)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from tests.support.waiting import DEADLINE

from formation_mcp.db.database import Database
from formation_mcp.errors import Unavailable

pytestmark = pytest.mark.postgres


@pytest.fixture
async def small_pool(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, pool_size=2, pool_wait_seconds=0.2)
    try:
        yield database
    finally:
        await database.close()


async def backend_pid(
    database: Database, holding: asyncio.Event | None = None, release: asyncio.Event | None = None
) -> int:
    """The server process of the connection a read gets; with `release`, the connection is
    kept (and `holding` set) until it is set."""
    async with database.read() as conn:
        pid = int(await conn.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
        if holding is not None and release is not None:
            holding.set()
            await release.wait()
        return pid


async def test_more_callers_than_connections_share_the_same_connections(
    small_pool: Database,
) -> None:
    pids = await asyncio.gather(*(backend_pid(small_pool) for _ in range(20)))
    assert len(set(pids)) <= 2
    later = {await backend_pid(small_pool) for _ in range(5)}
    assert later <= set(pids)  # kept, not closed and opened again


async def test_a_caller_that_waits_too_long_for_a_connection_is_told_the_database_is_busy(
    small_pool: Database,
) -> None:
    release = asyncio.Event()
    holding = [asyncio.Event(), asyncio.Event()]
    holders = [asyncio.create_task(backend_pid(small_pool, held, release)) for held in holding]
    try:
        await asyncio.wait_for(asyncio.gather(*(held.wait() for held in holding)), DEADLINE)
        with pytest.raises(Unavailable) as raised:
            await backend_pid(small_pool)
        assert raised.value.reason == "DATABASE_BUSY"
    finally:
        release.set()
        await asyncio.gather(*holders)
