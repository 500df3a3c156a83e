"""Which database errors mean "the database cannot serve right now" (callers get UNAVAILABLE and
retry later) rather than "this statement is wrong" (a bug or bad data, which no retry fixes).

An outage is a failure of the connection or of the server, not of the statement:
- the network: refused, reset, timed out (`OSError` anywhere in the chain);
- PostgreSQL (by SQLSTATE): connection exceptions (class 08), a server shutting down, starting
  up or restarting after a crash (57P01, 57P02, 57P03), an idle session closed (57P05),
  insufficient resources such as too many connections or a full disk (class 53), and a write
  on a server that became a read-only standby (25006, after a failover);
- asyncpg's own connection errors ("connection is closed"), but not its `DataError` (a value
  the driver could not encode), which is a bad statement;
- SQLite (by result code): busy or locked, I/O errors, cannot open, full, read-only, out of
  memory; not SQLITE_ERROR (a wrong statement, a missing table) nor constraint violations;
- whatever SQLAlchemy marks as a disconnect (`connection_invalidated`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

OUTAGE_SQLSTATE_CLASSES = ("08", "53")
OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "57P05", "25006"})
OUTAGE_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
_ASYNCPG_STATEMENT_ERRORS = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)
_MAX_CHAIN = 16


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (a SQLAlchemy, driver or OS error) means the database is unavailable."""
    for cause in _chain(exc):
        verdict = _driver_verdict(cause)
        if verdict is not None:
            return verdict
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # SQLAlchemy's own classes, when the driver's error said nothing more precise.
    return isinstance(exc, (OperationalError, InterfaceError))


def sqlstate_is_outage(sqlstate: str) -> bool:
    return sqlstate in OUTAGE_SQLSTATES or sqlstate.startswith(OUTAGE_SQLSTATE_CLASSES)


def _driver_verdict(cause: BaseException) -> bool | None:
    """True / False when this link of the chain decides, None when it does not."""
    if isinstance(cause, OSError):  # includes TimeoutError and every ConnectionError
        return True
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(cause, asyncpg.PostgresError) and isinstance(sqlstate, str):
        return sqlstate_is_outage(sqlstate)
    if isinstance(cause, asyncpg.InterfaceError):
        return not isinstance(cause, _ASYNCPG_STATEMENT_ERRORS)
    if isinstance(cause, sqlite3.Error):
        code = getattr(cause, "sqlite_errorcode", None)
        if isinstance(code, int):
            return (code & 0xFF) in OUTAGE_SQLITE_CODES  # the primary result code
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The driver's error first, then what wrapped it, out to `exc`: SQLAlchemy keeps the
    driver's error as `orig`, and adapters raise their translation `from` it. (Not
    `__context__`: an error raised while handling another is about something else.)"""
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(links) < _MAX_CHAIN and current not in links:
        links.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    yield from reversed(links)
