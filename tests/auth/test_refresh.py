"""Refresh tokens: rotation, reuse detection, logout, expiry, and disabled accounts."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc
from tests.support.auth import (
    AdminServer,
    AuthStub,
    Connect,
    Gate,
    challenge_for,
    signed_login,
    token_claims,
    who_am_i,
)
from tests.support.errors import check_refusal, error_info, field_violations, refused
from tests.support.servers import StartApp
from tests.support.waiting import wait_until

from formation_mcp.auth import refresh_tokens
from formation_mcp.client.auth import bearer, login

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


async def refresh(stub: AuthStub, refresh_token: str) -> auth_pb2.Session:
    session: auth_pb2.Session = await stub.RefreshToken(
        auth_pb2.RefreshTokenRequest(refresh_token=refresh_token)
    )
    return session


async def revoke(stub: AuthStub, session: auth_pb2.Session, refresh_token: str = "") -> None:
    await stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=refresh_token or session.refresh_token),
        metadata=bearer(session.access_token),
    )


# -- rotation -----------------------------------------------------------------------------------


async def test_refresh_rotates_both_tokens_for_the_same_account(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    renewed = await refresh(auth_stub, session.refresh_token)
    assert renewed.refresh_token and renewed.refresh_token != session.refresh_token
    assert renewed.access_token and renewed.access_token != session.access_token
    assert token_claims(renewed.access_token)["jti"] != token_claims(session.access_token)["jti"]
    assert renewed.account == session.account
    assert (await who_am_i(auth_stub, renewed.access_token)).name == session.account.name


async def test_a_rotated_chain_keeps_working(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    current = session
    for _ in range(3):
        current = await refresh(auth_stub, current.refresh_token)
    assert (await who_am_i(auth_stub, current.access_token)).name == session.account.name


async def test_a_reused_refresh_token_is_refused_and_kills_its_successor(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    successor = await refresh(auth_stub, session.refresh_token)
    await refused(
        refresh(auth_stub, session.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_REUSED"
    )
    await refused(
        refresh(auth_stub, successor.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )
    await refused(
        refresh(auth_stub, session.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )


async def test_reuse_in_one_session_leaves_the_accounts_other_sessions_alone(
    channel: grpc.aio.Channel, auth_stub: AuthStub
) -> None:
    key = Ed25519PrivateKey.generate()
    stolen, other = await login(channel, key), await login(channel, key)
    await refresh(auth_stub, stolen.refresh_token)
    await refused(refresh(auth_stub, stolen.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    assert (await refresh(auth_stub, other.refresh_token)).access_token


async def test_two_concurrent_refreshes_of_one_token_let_at_most_one_through(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    results = await asyncio.gather(
        refresh(auth_stub, session.refresh_token),
        refresh(auth_stub, session.refresh_token),
        return_exceptions=True,
    )
    sessions = [r for r in results if isinstance(r, auth_pb2.Session)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(sessions) <= 1 and len(sessions) + len(errors) == 2, results
    assert all(e.code() == UNAUTHENTICATED for e in errors)


async def test_an_unknown_refresh_token_is_refused(auth_stub: AuthStub) -> None:
    await refused(
        refresh(auth_stub, "not-a-refresh-token"), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )


async def test_an_access_token_is_not_a_refresh_token(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    await refused(
        refresh(auth_stub, session.access_token), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )


async def test_refresh_wants_a_token(auth_stub: AuthStub) -> None:
    error = await refused(
        refresh(auth_stub, ""), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"
    )
    assert field_violations(error) == ["refresh_token"]


async def test_an_expired_refresh_token_is_refused(start_app: StartApp, connect: Connect) -> None:
    channel = connect(await start_app(refresh_token_ttl_seconds=0.05))
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    session = await login(channel, Ed25519PrivateKey.generate())
    expires = session.refresh_expire_time.ToMicroseconds() / 1e6
    await wait_until(lambda: time.time() > expires)
    await refused(refresh(stub, session.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_EXPIRED")


# -- logout -------------------------------------------------------------------------------------


async def test_revoke_token_ends_the_access_token_and_the_refresh_family(
    auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    successor = await refresh(auth_stub, session.refresh_token)
    await revoke(auth_stub, successor)
    await refused(who_am_i(auth_stub, successor.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")
    await refused(
        refresh(auth_stub, successor.refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )


async def test_revoking_with_another_accounts_refresh_token_leaves_that_session_alone(
    channel: grpc.aio.Channel, auth_stub: AuthStub
) -> None:
    victim = await login(channel, Ed25519PrivateKey.generate())
    attacker = await login(channel, Ed25519PrivateKey.generate())
    await revoke(auth_stub, attacker, refresh_token=victim.refresh_token)
    await refused(who_am_i(auth_stub, attacker.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")
    assert (await who_am_i(auth_stub, victim.access_token)).name == victim.account.name
    assert (await refresh(auth_stub, victim.refresh_token)).access_token


# -- disabled accounts --------------------------------------------------------------------------


async def test_disabling_an_account_ends_its_access_tokens(admin: AdminServer) -> None:
    _key, user = await admin.new_user()
    await admin.update(user.account.name, ["disabled"], disabled=True)
    await refused(who_am_i(admin.auth, user.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_a_disabled_account_cannot_log_in(admin: AdminServer) -> None:
    key, user = await admin.new_user()
    await admin.update(user.account.name, ["disabled"], disabled=True)
    challenge = await challenge_for(admin.auth, key)
    await refused(
        admin.auth.Login(signed_login(challenge, key)), PERMISSION_DENIED, "ACCOUNT_DISABLED"
    )


async def test_a_disabled_account_cannot_refresh(admin: AdminServer) -> None:
    _key, user = await admin.new_user()
    await admin.update(user.account.name, ["disabled"], disabled=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refresh(admin.auth, user.refresh_token)
    assert caught.value.code() is PERMISSION_DENIED
    assert error_info(caught.value).reason == "ACCOUNT_DISABLED"


async def test_a_disabled_account_gets_the_same_code_from_refresh_as_from_login(
    admin: AdminServer,
) -> None:
    _key, user = await admin.new_user()
    await admin.update(user.account.name, ["disabled"], disabled=True)
    await refused(refresh(admin.auth, user.refresh_token), PERMISSION_DENIED, "ACCOUNT_DISABLED")


async def test_an_enabled_again_account_can_log_in_but_its_old_tokens_stay_dead(
    admin: AdminServer,
) -> None:
    key, user = await admin.new_user()
    await admin.update(user.account.name, ["disabled"], disabled=True)
    enabled = await admin.update(user.account.name, ["disabled"], disabled=False)
    assert not enabled.disabled
    await refused(who_am_i(admin.auth, user.access_token), UNAUTHENTICATED, "TOKEN_REVOKED")
    again = await login(admin.channel, key)
    assert (await who_am_i(admin.auth, again.access_token)).name == user.account.name


# -- races --------------------------------------------------------------------------------------


async def test_a_reuse_detected_while_the_successor_is_issued_still_kills_the_successor(
    admin: AdminServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legitimate client and a thief present one refresh token at nearly the same time.
    The interleaving is forced: the first refresh is held after marking the token used and
    before writing its successor, while the second is detected as a reuse."""
    _key, user = await admin.new_user()
    gate = Gate(refresh_tokens.mint)
    monkeypatch.setattr(refresh_tokens, "mint", gate)
    outcomes = await gate.run_between(
        refresh(admin.auth, user.refresh_token), lambda: refresh(admin.auth, user.refresh_token)
    )
    sessions = [o for o in outcomes if isinstance(o, auth_pb2.Session)]
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(sessions) == 1 and len(errors) == 1, outcomes
    check_refusal(errors[0], UNAUTHENTICATED, "REFRESH_TOKEN_REUSED")
    await refused(
        refresh(admin.auth, sessions[0].refresh_token), UNAUTHENTICATED, "REFRESH_TOKEN_INVALID"
    )
