"""Where the SDK's tokens come from: with a session store, the store's session is the one used,
so processes sharing sessions.json (the CLI, `fmcp mcp`, SDK scripts) never present a refresh
token another of them already spent (which revokes every token of the account)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2_grpc
from google.protobuf import empty_pb2

from formation_mcp.app import Application
from formation_mcp.client import Client
from formation_mcp.client.auth import bearer
from formation_mcp.client.session import SessionStore


async def _works(address: str, access_token: str) -> bool:
    """Whether the server takes `access_token` (False: it answers UNAUTHENTICATED)."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentAccount(
                empty_pb2.Empty(), metadata=bearer(access_token), timeout=10
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.UNAUTHENTICATED:
                raise
            return False
    return True


@pytest.fixture
def sessions(tmp_path: Path) -> Path:
    return tmp_path / "sessions.json"


async def test_a_session_refreshed_by_another_process_is_the_one_used(
    tools_app: Application, key: Ed25519PrivateKey, sessions: Path
) -> None:
    address = tools_app.grpc.address
    now = [0.0]

    def client() -> Client:
        return Client(address, key=key, session_store=SessionStore(sessions), clock=lambda: now[0])

    async with client() as one:
        await one.whoami()  # logged in: the store holds the first session
        first = one.token_source.session
        assert first is not None
        async with client() as two:
            await two.whoami()  # on the first session too
            now[0] = float(first.expire_time.seconds)  # both clocks say: refresh it
            await one.whoami()  # refreshes: the first refresh token is spent
            refreshed = one.token_source.session
            await two.whoami()  # refreshes what the store holds now, not the spent token
            latest = two.token_source.session
    assert refreshed is not None and latest is not None
    assert refreshed.refresh_token != first.refresh_token
    assert latest.refresh_token not in (first.refresh_token, refreshed.refresh_token)
    assert await _works(address, refreshed.access_token)  # nothing was revoked


async def test_a_session_forgotten_by_another_process_is_not_used(
    tools_app: Application, key: Ed25519PrivateKey, sessions: Path
) -> None:
    address = tools_app.grpc.address
    async with (
        Client(address, key=key, session_store=SessionStore(sessions)) as one,
        Client(address, key=key, session_store=SessionStore(sessions)) as two,
    ):
        await one.whoami()
        await two.whoami()
        await one.logout()  # revoked and forgotten
        assert two.token_source.session is None
        token = await two.access_token()  # a new login, not the revoked session
    assert await _works(address, token)
