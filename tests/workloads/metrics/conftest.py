"""A server whose node samples its instances every METRICS_INTERVAL (short, for tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.auth import Md
from tests.support.metrics import METRICS_INTERVAL
from tests.support.servers import make_settings

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.workloads.metrics.samples import SampleStore


@pytest.fixture(scope="module")
async def metrics_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Application]:
    data_dir = tmp_path_factory.mktemp("metrics")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    application = Application(
        make_settings(
            data_dir,
            database_url,
            metrics_interval_seconds=METRICS_INTERVAL,
            instance_stop_grace_seconds=1.0,
        )
    )
    await application.start()
    await asyncio.wait_for(application.broker_ready.wait(), 30)
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
async def metrics_channel(metrics_app: Application) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(metrics_app.grpc.address) as channel:
        yield channel


@pytest.fixture
async def user(metrics_channel: grpc.aio.Channel) -> Md:
    session = await login(metrics_channel, Ed25519PrivateKey.generate())
    return bearer(session.access_token)


@pytest.fixture
async def other_user(metrics_channel: grpc.aio.Channel) -> Md:
    session = await login(metrics_channel, Ed25519PrivateKey.generate())
    return bearer(session.access_token)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SampleStore]:
    """The samples table of a migrated database of its own."""
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        yield SampleStore(database)
    finally:
        await database.close()
