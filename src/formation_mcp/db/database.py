"""The database handle: one async engine, read and write transactions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from formation_mcp import transaction_hooks
from formation_mcp.db.outages import is_outage
from formation_mcp.errors import Unavailable

POOL_WAIT_SECONDS = 30.0
RETRY_AFTER_SECONDS = 1.0
"""The retry delay callers are told (RetryInfo) when the database is unavailable or busy."""


class Database:
    """Owns the engine. SQLite writers are serialized in-process (one writer at a time is
    all SQLite allows); PostgreSQL relies on its own row locking."""

    def __init__(
        self, url: str, *, pool_size: int = 20, pool_wait_seconds: float = POOL_WAIT_SECONDS
    ) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self.engine = self._create_engine(pool_size, pool_wait_seconds)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        # Reads run in autocommit: one statement, no BEGIN/ROLLBACK round trips around it.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    def _create_engine(self, pool_size: int, pool_wait_seconds: float) -> AsyncEngine:
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(self.url, connect_args={"timeout": 30})

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
        # No overflow: the pool opens up to `pool_size` connections as load needs them and
        # keeps them. (Overflow connections are closed as soon as they are returned, so under
        # load they were opened again every few statements: a fork on the server, a TLS probe
        # and a handshake each.) Callers beyond that wait for a free connection, up to
        # `pool_wait_seconds`, then get UNAVAILABLE.
        return create_async_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=pool_wait_seconds,
            pool_recycle=3600,
        )

    @property
    def asyncpg_dsn(self) -> str:
        """The URL in the form asyncpg.connect() takes (for LISTEN)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads; UNAVAILABLE when the database cannot be reached."""
        async with _unavailable_on_outage():
            conn = await _connect(self._reader)
            try:
                yield conn
            finally:
                await asyncio.shield(conn.close())

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any exception.
        Hooks registered with `transaction_hooks.before_commit` run last in it."""
        async with self._write_lock or contextlib.nullcontext(), _unavailable_on_outage():
            conn = await _connect(self.engine)
            hooks = transaction_hooks.begin(conn)
            try:
                async with conn.begin():
                    yield conn
                    for hook in list(hooks.values()):
                        await hook(conn)
            finally:
                transaction_hooks.end(conn)
                await asyncio.shield(conn.close())

    @asynccontextmanager
    async def write_statements(self) -> AsyncIterator[AsyncConnection]:
        """A connection whose statements each commit on their own (no BEGIN and COMMIT round
        trips): for writes that are one statement each and need no transaction together."""
        async with self._write_lock or contextlib.nullcontext(), _unavailable_on_outage():
            conn = await _connect(self._reader)
            try:
                yield conn
            finally:
                await asyncio.shield(conn.close())

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


_closing: set[asyncio.Task[None]] = set()


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    """A pooled connection, even for a caller cancelled while it is being checked out: the
    checkout finishes in a task of its own and, when its caller is gone, the connection goes
    straight back to the pool. (`async with engine.connect()` cancelled inside its
    `__aenter__` leaves the checked-out connection to the garbage collector.)"""
    conn = engine.connect()
    starting = asyncio.ensure_future(conn.start())
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:

        def give_back(task: asyncio.Future[AsyncConnection]) -> None:
            if not task.cancelled() and task.exception() is None:
                closing = asyncio.ensure_future(conn.close())
                _closing.add(closing)
                closing.add_done_callback(_closing.discard)

        starting.add_done_callback(give_back)
        raise
    return conn


@asynccontextmanager
async def _unavailable_on_outage() -> AsyncIterator[None]:
    """Lost or refused database connections, and a server shutting down, starting up or
    read-only, become UNAVAILABLE with a retry delay (the transaction is rolled back, so
    nothing is half-written); every other database error stays what it is (see `outages`)."""
    try:
        yield
    except PoolTimeout as exc:
        raise Unavailable(
            "every database connection is busy; retry later",
            reason="DATABASE_BUSY",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        ) from exc
    except Exception as exc:
        if isinstance(exc, Unavailable) or not is_outage(exc):
            raise
        raise Unavailable(
            "the database is unavailable; retry later",
            reason="DATABASE_UNAVAILABLE",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        ) from exc
