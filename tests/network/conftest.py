"""Fixtures of the network tests: a server with a worker and a real Envoy in front of it,
per database backend (the in-memory broker: the broker plays no part in routing), and an
admin of that server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, free_port, make_settings

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import login
from formation_mcp.envoy import EnvoyProcess, write_config


@pytest.fixture(scope="module")
def admin_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def envoy_listen() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
async def app(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    admin_key: Ed25519PrivateKey,
    envoy_listen: str,
) -> AsyncIterator[Application]:
    """The server whose routes the tests make; its public URL is its Envoy's."""
    data_dir = tmp_path_factory.mktemp("network")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    settings = make_settings(
        data_dir,
        database_url,
        envoy_listen=envoy_listen,
        admin_keys=(b64url(public_bytes(admin_key)),),
        login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
    )
    application = Application(settings)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture(scope="module")
async def front_door(
    app: Application, tmp_path_factory: pytest.TempPathFactory, envoy_listen: str
) -> AsyncIterator[str]:
    """A real Envoy in front of `app`, configured from its routes; its base URL."""
    process = await start_front_door(app, tmp_path_factory.mktemp("envoy"), envoy_listen)
    try:
        yield f"http://{envoy_listen}"
    finally:
        await process.stop()


async def start_front_door(application: Application, directory: Path, listen: str) -> EnvoyProcess:
    """Envoy on `listen` in front of `application`, its bootstrap in `directory`."""
    config = write_config(
        directory,
        listen=listen,
        grpc_upstream=application.grpc.address,
        http_upstream=application.http.address,
        xds_dir=application.settings.xds_dir,
        issuer=application.settings.auth_issuer,
        audience=application.settings.auth_audience,
    )
    process = EnvoyProcess(config, listen, application.settings.proxy_secret)
    await process.start()
    return process


@pytest.fixture
async def admin(channel: grpc.aio.Channel, admin_key: Ed25519PrivateKey) -> auth_pb2.Session:
    return await login(channel, admin_key)
