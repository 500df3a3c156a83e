"""SDK tests: a real server with the test tools and the workload tools (`tools_app`), and a
client logged in with a fresh key per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from formation_mcp.app import Application
from formation_mcp.client import Client


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def client(tools_app: Application, key: Ed25519PrivateKey) -> AsyncIterator[Client]:
    async with Client(tools_app.grpc.address, key=key, deadline=20) as sdk:
        yield sdk
