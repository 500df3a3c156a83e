"""Which database errors are outages (UNAVAILABLE): the real errors of the real drivers, as
SQLAlchemy raises them, and the driver errors a server shutting down or failing over gives."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from formation_mcp.db.database import RETRY_AFTER_SECONDS, Database
from formation_mcp.db.outages import is_outage
from formation_mcp.errors import Unavailable


def as_sqlalchemy_raises(driver_error: Exception) -> DBAPIError:
    """A driver error wrapped the way SQLAlchemy's asyncpg dialect does: translated to the
    adapter's error class (`from` the driver's), then wrapped in a generic DBAPIError."""
    adapted = Exception(str(driver_error))
    adapted.__cause__ = driver_error
    return DBAPIError("SELECT 1", None, adapted, connection_invalidated=False)


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.exceptions.AdminShutdownError("terminating connection (administrator command)"),
        asyncpg.exceptions.CrashShutdownError("terminating connection (crash of another)"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed mid-operation"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.exceptions.DiskFullError("could not extend file: No space left on device"),
        asyncpg.exceptions.ReadOnlySQLTransactionError("cannot execute UPDATE in read-only"),
        asyncpg.exceptions.IdleSessionTimeoutError("terminating connection due to idle timeout"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),
    ],
    ids=type,
)
def test_connection_and_server_failures_under_a_statement_are_outages(
    driver_error: Exception,
) -> None:
    assert is_outage(as_sqlalchemy_raises(driver_error))


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence: 0x00"),
        asyncpg.exceptions.UniqueViolationError("duplicate key value"),
        asyncpg.exceptions.UndefinedTableError('relation "nope" does not exist'),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.exceptions.DataError("invalid input for query argument $1"),
    ],
    ids=type,
)
def test_errors_of_the_statement_are_not_outages(driver_error: Exception) -> None:
    assert not is_outage(as_sqlalchemy_raises(driver_error))


def test_an_interface_error_the_driver_raises_for_a_bad_value_is_not_an_outage() -> None:
    """asyncpg's DataError is an InterfaceError: SQLAlchemy wraps it as InterfaceError."""
    driver_error = Exception("invalid input")
    driver_error.__cause__ = asyncpg.exceptions.DataError("invalid input for query argument $1")
    error = sa.exc.InterfaceError("INSERT", None, driver_error)
    assert not is_outage(error)


async def sqlite_error(database: Database, statement: str) -> DBAPIError:
    async with database.engine.connect() as conn:
        with pytest.raises(DBAPIError) as raised:
            await conn.execute(sa.text(statement))
    return raised.value


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outages.db'}")
    try:
        yield database
    finally:
        await database.close()


async def test_a_sqlite_statement_error_is_not_an_outage(sqlite: Database) -> None:
    assert not is_outage(await sqlite_error(sqlite, "SELECT * FROM no_such_table"))


async def test_a_locked_sqlite_database_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0})
    try:
        async with engine.connect() as conn:
            with pytest.raises(DBAPIError) as raised:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    finally:
        await engine.dispose()
        holder.rollback()
        holder.close()
    assert is_outage(raised.value)


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    try:
        yield database
    finally:
        await database.close()


@pytest.mark.postgres
async def test_a_connection_terminated_by_the_server_mid_statement_is_unavailable(
    postgres: Database,
) -> None:
    """pg_terminate_backend is what a fast shutdown does to every connection."""
    with pytest.raises(Unavailable) as raised:
        async with postgres.read() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
    assert raised.value.reason == "DATABASE_UNAVAILABLE"
    async with postgres.read() as conn:  # the next call gets a fresh connection
        assert await conn.scalar(sa.text("SELECT 1")) == 1


@pytest.mark.postgres
async def test_a_write_on_a_read_only_server_is_unavailable(postgres: Database) -> None:
    """What a write reaching a standby after a failover gets (SQLSTATE 25006)."""

    async def write_read_only() -> None:
        async with postgres.write() as conn:
            await conn.execute(sa.text("SET TRANSACTION READ ONLY"))
            await conn.execute(sa.text("CREATE TEMPORARY TABLE t (x int)"))

    with pytest.raises(Unavailable):
        await write_read_only()


@pytest.mark.postgres
async def test_a_nul_in_a_text_value_stays_a_statement_error(postgres: Database) -> None:
    with pytest.raises(DBAPIError) as raised:
        async with postgres.read() as conn:
            await conn.execute(sa.text("SELECT CAST(:value AS text)"), {"value": "a\x00b"})
    assert not isinstance(raised.value, Unavailable)
    assert not is_outage(raised.value)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens here once the socket is closed


async def test_an_unreachable_database_is_unavailable_with_a_retry_delay() -> None:
    database = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/none")
    try:
        with pytest.raises(Unavailable) as raised:
            await database.ping()
    finally:
        await database.close()
    assert raised.value.retry_after_seconds == RETRY_AFTER_SECONDS
    status = raised.value.to_status()
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
