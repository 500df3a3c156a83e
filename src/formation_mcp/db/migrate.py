"""Schema migrations with Alembic, run programmatically (no alembic.ini).

`upgrade()` runs on server start and from `fmcp db upgrade`. On PostgreSQL an advisory lock
serializes replicas that start at the same time; within one process a lock serializes calls
(Alembic's `context` and `op` are process-wide). SQLite is the single-process embedded default.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from formation_mcp.db.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_ADVISORY_LOCK_KEY = 0x464D4350  # "FMCP"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_sync(connection: Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
        )
    command.upgrade(alembic_config(connection), revision)


_process_lock: asyncio.Lock | None = None


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    global _process_lock
    if _process_lock is None:
        _process_lock = asyncio.Lock()
    async with _process_lock, database.engine.begin() as conn:
        await conn.run_sync(_upgrade_sync, revision)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_current_sync)


def head_revision() -> str | None:
    """The newest revision the code ships."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
