"""Grants: every login and every approved MCP host is one, listed (ListGrants) and revocable
(RevokeGrant) by its account, audited, and its tokens die with it."""

from __future__ import annotations

from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.oauth.conftest import person
from tests.oauth.host import HeadlessUser, ManualHost
from tests.support.auth import AuthStub, who_am_i
from tests.support.errors import refused
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.auth import grant_store, oauth_store
from formation_mcp.client import Client, InvalidArgument, NotFound
from formation_mcp.client.auth import bearer, login
from formation_mcp.clock import now_us

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


def sid(access_token: str) -> str:
    """The grant id an access token names."""
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims["sid"])


def grant_of(session: auth_pb2.Session) -> str:
    return "grants/" + sid(session.access_token)


async def grants_of(auth: AuthStub, session: auth_pb2.Session) -> list[auth_pb2.Grant]:
    listed = await auth.ListGrants(
        auth_pb2.ListGrantsRequest(), metadata=bearer(session.access_token)
    )
    return list(listed.grants)


async def mcp_host_tokens(app: Application, directory: Path) -> tuple[ManualHost, dict[str, str]]:
    """A registered host signed in as a new person: the host and its token response."""
    host = ManualHost(f"http://{app.http.address}")
    await host.register()
    return host, await host.tokens(HeadlessUser(person(app, directory)))


async def test_a_login_is_a_grant_of_its_own(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    [grant] = await grants_of(auth_stub, session)
    assert grant.name == grant_of(session)
    assert grant.kind == auth_pb2.Grant.LOGIN and grant.client_name == "fmcp login"
    assert grant.state == auth_pb2.Grant.ACTIVE and grant.scope == "full"
    assert grant.account == session.account.name and not grant.HasField("revoke_time")


async def test_revoking_a_grant_ends_its_access_and_refresh_tokens_at_once(
    auth_stub: AuthStub, channel: grpc.aio.Channel
) -> None:
    key = Ed25519PrivateKey.generate()
    doomed, other = await login(channel, key), await login(channel, key)
    revoked = await auth_stub.RevokeGrant(
        auth_pb2.RevokeGrantRequest(name=grant_of(doomed)), metadata=bearer(other.access_token)
    )
    assert revoked.state == auth_pb2.Grant.REVOKED and revoked.revoke_reason == "revoked"
    await refused(who_am_i(auth_stub, doomed.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")
    await refused(
        auth_stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=doomed.refresh_token)),
        UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )
    assert (await who_am_i(auth_stub, other.access_token)).name == other.account.name
    again = await auth_stub.RevokeGrant(  # revoking twice changes nothing
        auth_pb2.RevokeGrantRequest(name=grant_of(doomed)), metadata=bearer(other.access_token)
    )
    assert again.revoke_time == revoked.revoke_time


async def test_logging_out_revokes_the_sessions_grant(
    auth_stub: AuthStub, channel: grpc.aio.Channel
) -> None:
    key = Ed25519PrivateKey.generate()
    leaving = await login(channel, key)
    await auth_stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=leaving.refresh_token),
        metadata=bearer(leaving.access_token),
    )
    listed = {g.name: g for g in await grants_of(auth_stub, await login(channel, key))}
    gone = listed[grant_of(leaving)]
    assert gone.state == auth_pb2.Grant.REVOKED and gone.revoke_reason == "logout"


async def test_others_grants_are_not_found(
    auth_stub: AuthStub, session: auth_pb2.Session, channel: grpc.aio.Channel
) -> None:
    other = await login(channel, Ed25519PrivateKey.generate())
    await refused(
        auth_stub.RevokeGrant(
            auth_pb2.RevokeGrantRequest(name=grant_of(other)),
            metadata=bearer(session.access_token),
        ),
        grpc.StatusCode.NOT_FOUND,
        "GRANT_NOT_FOUND",
    )


async def test_grants_are_listed_newest_first_filtered_and_paged(
    app: Application, channel: grpc.aio.Channel
) -> None:
    key = Ed25519PrivateKey.generate()
    sessions = [await login(channel, key) for _ in range(3)]
    async with Client(app.grpc.address, key=key, deadline=20) as client:
        names = [g.name async for g in client.grants.list(page_size=2)]
        assert names[1:] == [grant_of(s) for s in reversed(sessions)]  # after the SDK's own
        await client.grants.revoke(names[1])
        active = [g.name async for g in client.grants.list("state = ACTIVE AND kind = LOGIN")]
        assert names[1] not in active and set(names) - {names[1]} == set(active)
        assert [g.name async for g in client.grants.list("state = REVOKED")] == [names[1]]
        assert [g.name async for g in client.grants.list("kind = OAUTH")] == []
        with pytest.raises(InvalidArgument, match="kind is LOGIN or OAUTH"):
            _ = [g async for g in client.grants.list("kind = robot")]
        with pytest.raises(InvalidArgument, match="supported: kind"):
            _ = [g async for g in client.grants.list("client = x")]
        with pytest.raises(NotFound):
            await client.grants.revoke("grants/nope")


async def test_an_mcp_hosts_refresh_token_is_not_a_login_sessions(
    app: Application, auth_stub: AuthStub, tmp_path: Path
) -> None:
    """The host's tokens are for the MCP endpoint: RefreshToken, which issues the API's
    tokens, does not take its refresh token."""
    _host, tokens = await mcp_host_tokens(app, tmp_path)
    await refused(
        auth_stub.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=tokens["refresh_token"])),
        UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


async def test_a_reused_refresh_token_revokes_the_hosts_grant_and_it_is_audited(
    app: Application, tmp_path: Path
) -> None:
    host, tokens = await mcp_host_tokens(app, tmp_path)
    first = await host.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert first.status_code == 200
    again = await host.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert again.json()["error"] == "invalid_grant"
    newest = await host.token(  # the successor died with the grant
        grant_type="refresh_token", refresh_token=first.json()["refresh_token"]
    )
    assert newest.json()["error"] == "invalid_grant"
    async with app.database.read() as conn:
        rows = await grant_store.audit_trail(conn, sid(tokens["access_token"]))
    assert [row["event"] for row in rows] == ["GRANTED", "REVOKED"]
    assert rows[0]["client_id"] == host.client_id and rows[0]["scope"] == "full"
    assert rows[1]["detail"] == "refresh_token_reused"


async def test_expired_grants_and_requests_are_swept(start_app: StartApp, tmp_path: Path) -> None:
    """What AuthUpkeep deletes: grants whose last refresh token expired (and whose access
    tokens are long gone), requests an hour past their expiry. (A server of its own: the
    sweep below reaches far into the future.)"""
    app = await start_app()
    _host, tokens = await mcp_host_tokens(app, tmp_path)
    grant_id = sid(tokens["access_token"])
    async with app.database.read() as conn:
        grant = await grant_store.get_grant(conn, grant_id)
    assert grant is not None
    later = grant.expire_time + 1
    async with app.database.write() as conn:
        assert await oauth_store.delete_expired_requests(conn, now_us() - 3600_000_000, 1000) == 0
        assert await oauth_store.delete_expired_requests(conn, later, 100_000) >= 1
        assert await grant_store.delete_expired_grants(conn, later, 100_000) >= 1
        assert await grant_store.get_grant(conn, grant_id) is None
