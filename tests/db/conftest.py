"""Fixtures of the database tests: a PostgreSQL cluster of a test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.support.postgres import PG_BIN_DIRS, PrivatePostgres, bin_dir
from tests.support.servers import IN_CI


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A started private cluster, stopped and deleted after the test."""
    binaries = bin_dir()
    if binaries is None:
        message = f"no PostgreSQL server binaries (initdb, pg_ctl) in {PG_BIN_DIRS}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    cluster: PrivatePostgres | None = None
    try:
        cluster = PrivatePostgres(binaries)
        await cluster.init()
        await cluster.start()
    except (OSError, RuntimeError, KeyError) as exc:  # KeyError: no `postgres` user
        if cluster is not None:
            await cluster.destroy()
        message = f"cannot start a private PostgreSQL cluster: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield cluster
    finally:
        await cluster.destroy()
