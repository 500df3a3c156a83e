"""The database handle: one async engine, read and write transactions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from formation_mcp.errors import Unavailable


class Database:
    """Owns the engine. SQLite writers are serialized in-process (one writer at a time is
    all SQLite allows); PostgreSQL relies on its own row locking."""

    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self.engine = self._create_engine(pool_size)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # Reads run in autocommit: one statement, no BEGIN/ROLLBACK round trips around it.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def _create_engine(self, pool_size: int) -> AsyncEngine:
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # A fixed pool, no overflow: connections are opened a bounded number of times (a
            # connect interrupted by a cancelled call leaves its aiosqlite connection behind).
            engine = create_async_engine(
                self.url,
                connect_args={"timeout": 30},
                pool_size=pool_size,
                max_overflow=0,
                pool_timeout=30,
            )

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.close()

            return engine
        # No pre-ping: it costs a round trip on every checkout. A connection that died with
        # the server fails its first statement, is invalidated, and that call is UNAVAILABLE.
        # No overflow: under load overflow connections were opened and closed for every few
        # statements (a TCP and TLS-probe handshake each); a fixed pool queues callers instead.
        return create_async_engine(
            self.url, pool_size=pool_size, max_overflow=0, pool_timeout=30, pool_recycle=3600
        )

    @property
    def asyncpg_dsn(self) -> str:
        """The URL in the form asyncpg.connect() takes (for LISTEN)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; UNAVAILABLE when the database cannot be reached."""
        async with _unavailable_on_outage(), self._reader.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        if self._write_lock is None:
            async with _unavailable_on_outage(), self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, _unavailable_on_outage(), self.engine.begin() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


@asynccontextmanager
async def _unavailable_on_outage() -> AsyncIterator[None]:
    """Lost or refused database connections become UNAVAILABLE (the transaction is rolled
    back, so nothing is half-written); every other database error stays what it is."""
    try:
        yield
    except (OperationalError, InterfaceError, OSError) as exc:
        raise Unavailable(
            "the database is unavailable; retry later", reason="DATABASE_UNAVAILABLE"
        ) from exc
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise Unavailable(
            "the database connection was lost; retry later", reason="DATABASE_UNAVAILABLE"
        ) from exc
