"""Scratch databases (created and dropped here) and fast seeding of operations."""

from __future__ import annotations

import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from formation_mcp.clock import now_us
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.db.schema import operations
from formation_mcp.operations import lifecycle, store
from formation_mcp.operations.ids import new_operation_id, operation_name
from formation_mcp.operations.lifecycle import State

POSTGRES_ADMIN_DSN = os.environ.get(
    "FMCP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
BATCH_ROWS = 5_000


@contextlib.asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one benchmark, as a SQLAlchemy URL; dropped after."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
    name = f"fmcp_bench_{uuid.uuid4().hex[:10]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+asyncpg://"
        )
        try:
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def sqlite_url(data_dir: Path) -> str:
    """The URL `fmcp serve` uses by default for FMCP_DATA_DIR=data_dir."""
    return f"sqlite+aiosqlite:///{(data_dir / 'fmcp.db').resolve()}"


@contextlib.asynccontextmanager
async def migrated(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    try:
        await migrate.upgrade(database)
        yield database
    finally:
        await database.close()


async def seed_one(url: str, owner: str, tool: str = "bench.get") -> str:
    """One PENDING operation (and its creation event) through the store; its name."""
    async with migrated(url) as database, database.write() as conn:
        record = lifecycle.new_record(new_operation_id(), owner, tool, None, now_us())
        await store.insert(conn, record)
    return operation_name(record.id)


_DONE_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)


def _row(owner: str, rng: random.Random, running_share: float) -> dict[str, Any]:
    """One `operations` row in the store's own format, in a realistic mix of states."""
    now = now_us()
    values = store._row_values(
        lifecycle.new_record(new_operation_id(), owner, "bench.list", None, now)
    )
    draw = rng.random()
    if draw < running_share:
        values.update(state=int(State.RUNNING), progress_percent=50, sequence=3)
    elif draw >= running_share + 0.01:  # 1 % stays PENDING, the rest is finished
        values.update(state=int(rng.choice(_DONE_STATES)), done=True, end_time=now, sequence=4)
    return values


async def bulk_seed(
    database: Database,
    owner: str,
    owned: int,
    others: int,
    *,
    running_share: float = 0.05,
    seed: int = 7,
) -> float:
    """Insert `owned` operations of `owner` and `others` of 100 other accounts,
    interleaved in time, with bulk Core inserts in batches of one transaction. Seconds taken."""
    rng = random.Random(seed)
    total = owned + others
    other_share = others / total if total else 0.0
    left_owned, left_others = owned, others
    started = time.perf_counter()
    async with database.write() as conn:
        while left_owned or left_others:
            batch = []
            for _ in range(min(BATCH_ROWS, left_owned + left_others)):
                mine = left_others == 0 or (left_owned > 0 and rng.random() >= other_share)
                if mine:
                    left_owned -= 1
                    batch.append(_row(owner, rng, running_share))
                else:
                    left_others -= 1
                    batch.append(_row(f"other-{rng.randrange(100)}", rng, running_share))
            await conn.execute(operations.insert(), batch)
    if database.is_postgres:  # as autovacuum would, but now rather than mid-measurement
        async with database.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.exec_driver_sql("VACUUM (ANALYZE) operations")
    return time.perf_counter() - started
