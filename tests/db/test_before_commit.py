"""Hooks that run last in a `Database.write` transaction (`transaction_hooks`), and writes whose
statements each commit on their own (`write_statements`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.db.database import Database
from formation_mcp.transaction_hooks import before_commit

pytestmark = pytest.mark.postgres


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url, pool_size=1)  # one connection: every test reuses it
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def table(database: Database) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    async with database.write() as conn:
        await conn.execute(sa.text(f"CREATE TABLE {name} (value int PRIMARY KEY)"))
    try:
        yield name
    finally:
        async with database.write() as conn:
            await conn.execute(sa.text(f"DROP TABLE {name}"))


class Recorder:
    """A hook that notes the transaction it ran in."""

    def __init__(self, ran: list[tuple[str, int]], label: str) -> None:
        self._ran = ran
        self._label = label

    async def __call__(self, conn: AsyncConnection) -> None:
        transaction = (await conn.execute(sa.text("SELECT txid_current()"))).scalar_one()
        self._ran.append((self._label, transaction))


async def test_hooks_run_once_per_key_last_in_the_transaction(database: Database) -> None:
    ran: list[tuple[str, int]] = []
    async with database.write() as conn:
        first = Recorder(ran, "first")
        assert before_commit(conn, "a", first) is first
        assert before_commit(conn, "a", Recorder(ran, "again")) is first
        before_commit(conn, "b", Recorder(ran, "other"))
        transaction = (await conn.execute(sa.text("SELECT txid_current()"))).scalar_one()
        assert ran == []
    assert ran == [("first", transaction), ("other", transaction)]


async def test_a_rolled_back_transaction_runs_no_hook_and_leaves_none_behind(
    database: Database,
) -> None:
    ran: list[tuple[str, int]] = []

    async def failing_write() -> None:
        async with database.write() as conn:
            before_commit(conn, "a", Recorder(ran, "rolled back"))
            raise RuntimeError("fails")

    with pytest.raises(RuntimeError):
        await failing_write()
    async with database.write() as conn:  # the same connection (a pool of one)
        fresh = Recorder(ran, "fresh")
        assert before_commit(conn, "a", fresh) is fresh
    assert [label for label, _ in ran] == ["fresh"]


async def test_a_hook_outside_a_write_transaction_is_refused(database: Database) -> None:
    async with database.read() as conn:
        with pytest.raises(KeyError):
            before_commit(conn, "a", Recorder([], "never"))


async def test_statements_of_write_statements_commit_one_by_one(
    database: Database, table: str
) -> None:

    async def insert_twice() -> None:
        async with database.write_statements() as conn:
            await conn.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))
            await conn.execute(sa.text(f"INSERT INTO {table} VALUES (1)"))  # a duplicate

    with pytest.raises(sa.exc.IntegrityError):
        await insert_twice()
    async with database.read() as conn:
        values = (await conn.execute(sa.text(f"SELECT value FROM {table}"))).scalars().all()
    assert values == [1]
