"""Fixtures for the auth tests: stubs, channels to extra servers, and servers with an admin."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import accounts_pb2_grpc, auth_pb2_grpc
from tests.support.auth import AdminServer, Connect, StartAdmin
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, StartApp

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import login


@pytest.fixture(scope="session")
async def app(app: Application) -> AsyncIterator[Application]:
    """The shared server of these tests: the root one's settings (database, signing key), but a
    login rate this session never reaches. Every test here logs in, several times, all from
    127.0.0.1; the per-address limit (4 x login_rate_per_minute, shared by every key) would
    refuse them. Rate limiting itself is tested on servers of its own."""
    application = Application(
        replace(
            app.settings,
            login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
            node_id=f"auth-tests-{uuid.uuid4().hex[:8]}",  # the root server holds its node id
        )
    )
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several servers sharing changes need PostgreSQL (SQLite is one process)")


@pytest.fixture
def auth_stub(channel: grpc.aio.Channel) -> auth_pb2_grpc.AuthServiceAsyncStub:
    return auth_pb2_grpc.AuthServiceStub(channel)


@pytest.fixture
def accounts_stub(channel: grpc.aio.Channel) -> accounts_pb2_grpc.AccountsServiceAsyncStub:
    return accounts_pb2_grpc.AccountsServiceStub(channel)


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Open a channel to any server; all are closed after the test."""
    channels: list[grpc.aio.Channel] = []

    def open_channel(application: Application) -> grpc.aio.Channel:
        channel = grpc.aio.insecure_channel(application.grpc.address)
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        await channel.close()


@pytest.fixture
def start_admin(start_app: StartApp, connect: Connect) -> StartAdmin:
    """Start a server (with these settings) whose FMCP_ADMIN_KEYS holds a fresh key."""

    async def start(**overrides: object) -> AdminServer:
        key = Ed25519PrivateKey.generate()
        application = await start_app(admin_keys=(b64url(public_bytes(key)),), **overrides)
        channel = connect(application)
        return AdminServer(application, channel, key, await login(channel, key))

    return start


@pytest.fixture
async def admin(start_admin: StartAdmin) -> AdminServer:
    return await start_admin()
