"""Alembic migrations produce exactly the schema the code declares."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from tests.support.servers import POSTGRES_ADMIN_DSN

from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.db.schema import metadata


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), metadata))


async def test_migrations_match_the_declared_schema(database_url: str) -> None:
    database = Database(database_url)
    try:
        await migrate.upgrade(database)
        async with database.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await database.close()


async def test_upgrade_twice_changes_nothing(database_url: str) -> None:
    database = Database(database_url)
    try:
        await migrate.upgrade(database)
        await migrate.upgrade(database)
        assert await migrate.current_revision(database) == migrate.head_revision()
    finally:
        await database.close()


@pytest.mark.postgres
async def test_replicas_upgrading_at_once_all_succeed(postgres_url: str, tmp_path: Path) -> None:
    """Separate processes race on a fresh database; the advisory lock lets one migrate."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    name = f"fmcp_race_{uuid.uuid4().hex[:8]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = postgres_url.rsplit("/", 1)[0] + "/" + name
        env = {**os.environ, "FMCP_DATABASE_URL": url, "FMCP_DATA_DIR": str(tmp_path)}
        processes = [
            await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "fmcp"),
                "db",
                "upgrade",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), 120)
        assert [p.returncode for p in processes] == [0, 0, 0], [e.decode() for _, e in results]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
