"""Fixtures for the authorization server's tests: a server of their own whose access tokens
live 2 s (so a host's refresh is reached quickly), Envoy in front of it, and per test a person
with a key of their own and the `fmcp` CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.oauth.host import HeadlessUser
from tests.support.cli import Fmcp
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, free_port, make_settings

from formation_mcp.app import Application
from formation_mcp.auth.keys import write_private_key
from formation_mcp.envoy import EnvoyProcess, write_config

ACCESS_TOKEN_SECONDS = 2.0


@pytest.fixture(scope="module")
async def oauth_app(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Application]:
    data_dir = tmp_path_factory.mktemp("oauth")
    if database_url.startswith("sqlite"):
        database_url = f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"
    application = Application(
        make_settings(
            data_dir,
            database_url,
            access_token_ttl_seconds=ACCESS_TOKEN_SECONDS,
            login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
        )
    )
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture(scope="module")
async def front_door(
    oauth_app: Application, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """Envoy in front of `oauth_app`: its base URL."""
    listen = f"127.0.0.1:{free_port()}"
    config = write_config(
        tmp_path_factory.mktemp("oauth-envoy"),
        listen=listen,
        grpc_upstream=oauth_app.grpc.address,
        http_upstream=oauth_app.http.address,
    )
    process = EnvoyProcess(config, listen, oauth_app.settings.proxy_secret)
    await process.start()
    try:
        yield f"http://{listen}"
    finally:
        await process.stop()


@pytest.fixture
def mcp_url(front_door: str) -> str:
    return f"{front_door}/mcp"


def person(app: Application, directory: Path) -> Fmcp:
    """`fmcp` as a new person (a key of their own in `directory`) against `app`."""
    directory.mkdir(parents=True, exist_ok=True)
    key_file = directory / "key.pem"
    write_private_key(key_file, Ed25519PrivateKey.generate())
    return Fmcp(app.grpc.address, key_file, directory / "config")


@pytest.fixture
def fmcp(oauth_app: Application, tmp_path: Path) -> Fmcp:
    """The `fmcp` CLI of a person with a key of their own."""
    return person(oauth_app, tmp_path)


@pytest.fixture
def user(fmcp: Fmcp) -> HeadlessUser:
    """That person at the browser, approving with `fmcp authorize CODE --yes`."""
    return HeadlessUser(fmcp)


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several servers sharing a database need PostgreSQL (SQLite is one process)")
