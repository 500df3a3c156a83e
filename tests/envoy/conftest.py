"""Fixtures of the Envoy tests: the shared server behind Envoy, an admin, extra Envoys.

The shared server (`app`, and so `envoy`, `channel` and `session`) is one of these tests' own,
per database backend: it has an admin key, and a login rate these tests never reach. Every
login here comes from one of two addresses (127.0.0.1 straight to the server; through Envoy,
the one Envoy forwards for every local client), and the per-address limit (4 x
login_rate_per_minute) is shared by every key;
rate limiting itself is tested on a server of its own (`start_app` + `start_envoy`). On SQLite
the server gets a database file of its own: servers in one process do not share SQLite changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import StartEnvoy
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, free_port, make_settings

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, public_bytes
from formation_mcp.client.auth import login
from formation_mcp.envoy import EnvoyProcess, write_config


@pytest.fixture(scope="session")
def admin_key() -> Ed25519PrivateKey:
    """The key named in the shared server's FMCP_ADMIN_KEYS."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
async def app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, admin_key: Ed25519PrivateKey
) -> AsyncIterator[Application]:
    data_dir = tmp_path_factory.mktemp("envoy-app")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    settings = make_settings(
        data_dir,
        database_url,
        admin_keys=(b64url(public_bytes(admin_key)),),
        login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
    )
    application = Application(settings)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
async def admin(channel: grpc.aio.Channel, admin_key: Ed25519PrivateKey) -> auth_pb2.Session:
    """The admin logged in (over gRPC, straight to the server)."""
    return await login(channel, admin_key)


@pytest.fixture
async def client(envoy: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP/1.1 client of Envoy's front door."""
    async with httpx.AsyncClient(base_url=envoy) as http:
        yield http


@pytest.fixture
async def start_envoy(tmp_path: Path) -> AsyncIterator[StartEnvoy]:
    """Put a real Envoy in front of another server; its base URL. All stop after the test."""
    started: list[EnvoyProcess] = []

    async def start(application: Application, proxy_secret: str | None = None) -> str:
        """`proxy_secret`: the server's own unless given (another makes a stranger's Envoy)."""
        listen = f"127.0.0.1:{free_port()}"
        config = write_config(
            tmp_path / f"envoy{len(started)}",
            listen=listen,
            grpc_upstream=application.grpc.address,
            http_upstream=application.http.address,
            xds_dir=application.settings.xds_dir,
            issuer=application.settings.auth_issuer,
            audience=application.settings.auth_audience,
        )
        secret = application.settings.proxy_secret if proxy_secret is None else proxy_secret
        process = EnvoyProcess(config, listen, secret)
        started.append(process)
        await process.start()
        return f"http://{listen}"

    yield start
    for process in reversed(started):
        await process.stop()
