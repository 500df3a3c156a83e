"""Several servers on one database: signing key rotation, one-time challenges, and revocations
that reach every replica."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc
from tests.support.auth import (
    AdminServer,
    AuthStub,
    Connect,
    StartAdmin,
    challenge_for,
    signed_login,
    token_header,
    who_am_i,
)
from tests.support.errors import check_refusal, error_info, refused
from tests.support.servers import StartApp
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.app import Application
from formation_mcp.auth.keys import public_bytes
from formation_mcp.auth.tokens import KEY_REFRESH_INTERVAL
from formation_mcp.client.auth import bearer, login

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def jwks_kids(stub: AuthStub) -> set[str]:
    jwks = await stub.GetJwks(auth_pb2.GetJwksRequest())
    return {key.kid for key in jwks.keys}


async def accepted(stub: AuthStub, token: str) -> bool:
    try:
        await who_am_i(stub, token)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != UNAUTHENTICATED:
            raise
        return False
    return True


async def eventually_refused(stub: AuthStub, token: str, reason: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                await who_am_i(stub, token)
            except grpc.aio.AioRpcError as exc:
                check_refusal(exc, UNAUTHENTICATED, reason)
                return
            await asyncio.sleep(0.01)


# -- signing key rotation (both backends) --------------------------------------------------------


async def two_servers_with_their_own_keys(
    start_app: StartApp, tmp_path: Path
) -> tuple[Application, Application]:
    first = await start_app(signing_key_file=tmp_path / "key-a.pem")
    second = await start_app(signing_key_file=tmp_path / "key-b.pem")
    assert first.signing_key.kid != second.signing_key.kid
    return first, second


async def test_servers_with_different_signing_keys_accept_each_others_tokens(
    start_app: StartApp, connect: Connect, tmp_path: Path
) -> None:
    first, second = await two_servers_with_their_own_keys(start_app, tmp_path)
    stub_a, stub_b = (auth_pb2_grpc.AuthServiceStub(connect(a)) for a in (first, second))
    from_a = await login(connect(first), Ed25519PrivateKey.generate())
    from_b = await login(connect(second), Ed25519PrivateKey.generate())
    assert token_header(from_a.access_token)["kid"] == first.signing_key.kid
    assert token_header(from_b.access_token)["kid"] == second.signing_key.kid
    assert (await who_am_i(stub_b, from_a.access_token)).name == from_a.account.name
    # The older server learns the newer key when a token names it.
    assert (await who_am_i(stub_a, from_b.access_token)).name == from_b.account.name
    both = {first.signing_key.kid, second.signing_key.kid}
    assert both <= await jwks_kids(stub_a)
    assert both <= await jwks_kids(stub_b)


async def test_a_server_restarted_with_a_new_key_still_accepts_the_old_keys_tokens(
    start_app: StartApp, connect: Connect, tmp_path: Path
) -> None:
    old = await start_app(signing_key_file=tmp_path / "old.pem")
    session = await login(connect(old), Ed25519PrivateKey.generate())
    await old.stop()
    new = await start_app(signing_key_file=tmp_path / "new.pem")
    stub = auth_pb2_grpc.AuthServiceStub(connect(new))
    assert (await who_am_i(stub, session.access_token)).name == session.account.name
    assert {old.signing_key.kid, new.signing_key.kid} <= await jwks_kids(stub)
    renewed = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=session.refresh_token)
    )
    assert token_header(renewed.access_token)["kid"] == new.signing_key.kid


async def test_the_same_key_file_gives_the_same_kid(
    start_app: StartApp, connect: Connect, tmp_path: Path
) -> None:
    first = await start_app(signing_key_file=tmp_path / "shared.pem")
    second = await start_app(signing_key_file=tmp_path / "shared.pem")
    assert first.signing_key.kid == second.signing_key.kid
    session = await login(connect(first), Ed25519PrivateKey.generate())
    stub = auth_pb2_grpc.AuthServiceStub(connect(second))
    assert (await who_am_i(stub, session.access_token)).name == session.account.name


async def test_a_token_from_a_just_started_replica_is_accepted_at_once(
    start_app: StartApp, connect: Connect, tmp_path: Path
) -> None:
    started = time.monotonic()
    first, second = await two_servers_with_their_own_keys(start_app, tmp_path)
    session = await login(connect(second), Ed25519PrivateKey.generate())
    stub = auth_pb2_grpc.AuthServiceStub(connect(first))
    late = time.monotonic() - started > KEY_REFRESH_INTERVAL * 0.9
    ok = await accepted(stub, session.access_token)
    if late and not ok:
        pytest.skip("the servers took too long to start to show the race")
    assert ok, "the first server refused a valid token signed with the second server's key"


async def test_the_jwks_of_every_replica_soon_lists_a_new_replicas_key(
    start_app: StartApp, connect: Connect, tmp_path: Path
) -> None:
    first, second = await two_servers_with_their_own_keys(start_app, tmp_path)
    await login(connect(second), Ed25519PrivateKey.generate())  # the new key is in use
    stub = auth_pb2_grpc.AuthServiceStub(connect(first))

    async def listed() -> bool:
        return second.signing_key.kid in await jwks_kids(stub)

    await eventually(listed, deadline=2 * KEY_REFRESH_INTERVAL + 0.5)


# -- PostgreSQL: one database, changes announced to every replica -------------------------------


@pytest.mark.usefixtures("postgres_only")
async def test_concurrent_logins_with_one_challenge_on_two_servers_let_exactly_one_in(
    start_app: StartApp, connect: Connect
) -> None:
    first, second = await start_app(), await start_app()
    stubs = [auth_pb2_grpc.AuthServiceStub(connect(a)) for a in (first, second)]
    for _ in range(5):
        key = Ed25519PrivateKey.generate()
        request = signed_login(await challenge_for(stubs[0], key), key)
        results = await asyncio.gather(
            stubs[0].Login(request), stubs[1].Login(request), return_exceptions=True
        )
        sessions = [r for r in results if isinstance(r, auth_pb2.Session)]
        errors = [r for r in results if not isinstance(r, auth_pb2.Session)]
        assert len(sessions) == 1 and len(errors) == 1, results
        check_refusal(errors[0], UNAUTHENTICATED, "CHALLENGE_INVALID")


@pytest.mark.usefixtures("postgres_only")
async def test_a_first_login_of_one_key_on_two_servers_at_once_makes_one_account(
    start_app: StartApp, connect: Connect
) -> None:
    first, second = await start_app(), await start_app()
    for _ in range(3):
        key = Ed25519PrivateKey.generate()
        sessions = await asyncio.gather(login(connect(first), key), login(connect(second), key))
        assert sessions[0].account == sessions[1].account
        assert sessions[0].account.public_key == public_bytes(key)


@pytest.mark.usefixtures("postgres_only")
async def test_a_challenge_from_one_server_is_good_on_another(
    start_app: StartApp, connect: Connect
) -> None:
    first, second = await start_app(), await start_app()
    key = Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_pb2_grpc.AuthServiceStub(connect(first)), key)
    stub = auth_pb2_grpc.AuthServiceStub(connect(second))
    session = await stub.Login(signed_login(challenge, key))
    assert (await who_am_i(stub, session.access_token)).name == session.account.name


@pytest.mark.usefixtures("postgres_only")
async def test_a_revocation_on_one_replica_reaches_another(
    start_app: StartApp, connect: Connect
) -> None:
    first, second = await start_app(), await start_app()
    stub_a, stub_b = (auth_pb2_grpc.AuthServiceStub(connect(a)) for a in (first, second))
    session = await login(connect(first), Ed25519PrivateKey.generate())
    assert await accepted(stub_b, session.access_token)  # verified (and cached) on B
    await stub_a.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token),
        metadata=bearer(session.access_token),
    )
    await eventually_refused(stub_b, session.access_token, "TOKEN_REVOKED")
    await refused(
        stub_b.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=session.refresh_token)),
        UNAUTHENTICATED,
        "REFRESH_TOKEN_INVALID",
    )


@pytest.mark.usefixtures("postgres_only")
async def test_a_revocation_reaches_a_replica_started_later(
    start_app: StartApp, connect: Connect
) -> None:
    first = await start_app()
    stub_a = auth_pb2_grpc.AuthServiceStub(connect(first))
    session = await login(connect(first), Ed25519PrivateKey.generate())
    await stub_a.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token),
        metadata=bearer(session.access_token),
    )
    later = auth_pb2_grpc.AuthServiceStub(connect(await start_app()))
    await refused(who_am_i(later, session.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")


@pytest.mark.usefixtures("postgres_only")
async def test_disabling_an_account_on_one_replica_ends_its_tokens_on_another(
    start_admin: StartAdmin, start_app: StartApp, connect: Connect
) -> None:
    admin: AdminServer = await start_admin()
    other = auth_pb2_grpc.AuthServiceStub(connect(await start_app()))
    _key, user = await admin.new_user()
    assert await accepted(other, user.access_token)
    await admin.update(user.account.name, ["disabled"], disabled=True)
    await eventually_refused(other, user.access_token, "TOKEN_REVOKED")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await other.RefreshToken(auth_pb2.RefreshTokenRequest(refresh_token=user.refresh_token))
    assert error_info(caught.value).reason == "ACCOUNT_DISABLED"
