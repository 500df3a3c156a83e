"""Client-command tests: one server for them all (SQLite, in-memory broker, the test tools and
the workload tools), and `fmcp` run in-process through click's CliRunner with its own key and
config directory per test. CliRunner runs in a thread: the command's `asyncio.run` needs a
thread without a running loop, and the server keeps serving in the test's loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.cli import Fmcp
from tests.support.servers import make_settings

from formation_mcp.app import Application
from formation_mcp.auth.keys import write_private_key


@pytest.fixture(scope="session")
async def cli_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Application]:
    path = tmp_path_factory.mktemp("cli")
    # One server for every CLI test of the session, each signing in from 127.0.0.1: the
    # per-address sign-in limits (tested in tests/auth) would otherwise refuse the later ones.
    application = Application(
        make_settings(
            path,
            f"sqlite+aiosqlite:///{path}/fmcp.db",
            metrics_interval_seconds=0.5,
            login_rate_per_minute=100_000,
        )
    )
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


@pytest.fixture
def fmcp(cli_app: Application, tmp_path: Path) -> Fmcp:
    key_file = tmp_path / "key.pem"
    write_private_key(key_file, Ed25519PrivateKey.generate())
    return Fmcp(cli_app.grpc.address, key_file, tmp_path / "config")
