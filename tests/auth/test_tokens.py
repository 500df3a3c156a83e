"""Access tokens: JWKS, verification of every claim, forged and expired tokens, revocation and
the verification cache."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc, operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2
from tests.support.auth import (
    AuthStub,
    Connect,
    Md,
    claims_for,
    eddsa_token,
    hs256_token,
    server_token,
    tamper,
    token_claims,
    token_header,
    unsigned_token,
    who_am_i,
)
from tests.support.errors import refused
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, b64url_decode, jwk_thumbprint
from formation_mcp.client.auth import bearer, login

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


async def current_account(stub: AuthStub, md: Md) -> auth_pb2.Account:
    account: auth_pb2.Account = await stub.GetCurrentAccount(empty_pb2.Empty(), metadata=md)
    return account


async def refused_token(stub: AuthStub, token: str, reason: str) -> grpc.aio.AioRpcError:
    return await refused(who_am_i(stub, token), UNAUTHENTICATED, reason)


# -- what the server issues and publishes -------------------------------------------------------


async def test_jwks_lists_the_ed25519_key_that_signed_the_access_token(
    app: Application, auth_stub: AuthStub, session: auth_pb2.Session
) -> None:
    jwks = await auth_stub.GetJwks(auth_pb2.GetJwksRequest())
    header = token_header(session.access_token)
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    matching = [k for k in jwks.keys if k.kid == header["kid"]]
    assert len(matching) == 1
    jwk = matching[0]
    assert (jwk.kty, jwk.crv, jwk.alg, jwk.use) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert b64url_decode(jwk.x) == app.signing_key.public_key
    assert jwk.kid == jwk_thumbprint(b64url_decode(jwk.x)) == app.signing_key.kid
    assert all(
        len(b64url_decode(k.x)) == 32 and k.kid == jwk_thumbprint(b64url_decode(k.x))
        for k in jwks.keys
    )


async def test_the_access_token_carries_the_standard_claims(
    session: auth_pb2.Session, account: str
) -> None:
    claims = token_claims(session.access_token)
    assert claims["iss"] == claims["aud"] == "formation-mcp"
    assert claims["sub"] == account
    assert claims["roles"] == ["user"]
    assert claims["jti"]
    assert claims["iat"] <= time.time() + 1 < claims["exp"] <= claims["iat"] + 900
    assert claims["exp"] == session.expire_time.seconds


async def test_jwks_needs_no_token(auth_stub: AuthStub) -> None:
    assert (await auth_stub.GetJwks(auth_pb2.GetJwksRequest())).keys


async def test_a_token_made_like_the_servers_own_is_accepted(
    app: Application, auth_stub: AuthStub, account: str
) -> None:
    """The control for the forgeries below: only the changed detail makes them fail."""
    assert (await who_am_i(auth_stub, server_token(app, account))).name == account


# -- refused tokens -----------------------------------------------------------------------------


async def test_a_missing_token_is_refused(auth_stub: AuthStub) -> None:
    await refused(current_account(auth_stub, ()), UNAUTHENTICATED, "TOKEN_MISSING")


async def test_a_missing_token_is_refused_by_the_operations_service(
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
) -> None:
    await refused(
        operations_stub.ListOperations(operations_pb2.ListOperationsRequest()),
        UNAUTHENTICATED,
        "TOKEN_MISSING",
    )


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token"])
async def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(
    auth_stub: AuthStub, header: str
) -> None:
    await refused(
        current_account(auth_stub, (("authorization", header),)), UNAUTHENTICATED, "TOKEN_INVALID"
    )


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "....", "e30.e30.e30"])
async def test_a_malformed_token_is_refused(auth_stub: AuthStub, token: str) -> None:
    await refused_token(auth_stub, token, "TOKEN_INVALID")


@pytest.mark.parametrize("part", [0, 1, 2], ids=["header", "payload", "signature"])
async def test_a_tampered_token_is_refused(
    auth_stub: AuthStub, session: auth_pb2.Session, part: int
) -> None:
    await refused_token(auth_stub, tamper(session.access_token, part), "TOKEN_INVALID")


async def test_a_token_with_alg_none_is_refused(
    app: Application, auth_stub: AuthStub, account: str
) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": app.signing_key.kid}
    await refused_token(auth_stub, unsigned_token(header, claims_for(account)), "TOKEN_INVALID")


@pytest.mark.parametrize("secret_form", ["raw", "base64url"])
async def test_an_hs256_token_keyed_with_the_servers_public_key_is_refused(
    app: Application, auth_stub: AuthStub, account: str, secret_form: str
) -> None:
    public_key = app.signing_key.public_key
    secret = public_key if secret_form == "raw" else b64url(public_key).encode()
    header = {"alg": "HS256", "typ": "at+jwt", "kid": app.signing_key.kid}
    token = hs256_token(header, claims_for(account), secret)
    await refused_token(auth_stub, token, "TOKEN_INVALID")


async def test_a_token_signed_by_another_key_under_the_servers_kid_is_refused(
    app: Application, auth_stub: AuthStub, account: str
) -> None:
    token = eddsa_token(Ed25519PrivateKey.generate(), app.signing_key.kid, claims_for(account))
    await refused_token(auth_stub, token, "TOKEN_INVALID")


async def test_a_token_naming_an_unpublished_kid_is_refused(
    auth_stub: AuthStub, account: str
) -> None:
    key = Ed25519PrivateKey.generate()
    token = eddsa_token(key, "not-a-published-kid", claims_for(account))
    await refused_token(auth_stub, token, "TOKEN_INVALID")


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", "another-service"),
        ("aud", ["formation-mcp", "another-service"]),
        ("iss", "another-issuer"),
    ],
    ids=["aud", "aud-list", "iss"],
)
async def test_a_token_for_another_audience_or_from_another_issuer_is_refused(
    app: Application, auth_stub: AuthStub, account: str, claim: str, value: object
) -> None:
    token = server_token(app, account, **{claim: value})
    await refused_token(auth_stub, token, "TOKEN_INVALID")


@pytest.mark.parametrize("claim", ["iss", "aud", "sub", "exp", "iat", "jti"])
async def test_a_token_without_a_required_claim_is_refused(
    app: Application, auth_stub: AuthStub, account: str, claim: str
) -> None:
    await refused_token(auth_stub, server_token(app, account, **{claim: None}), "TOKEN_INVALID")


@pytest.mark.parametrize("typ", ["JWT", "id+jwt"])
async def test_a_token_that_is_not_an_access_token_is_refused(
    app: Application, auth_stub: AuthStub, account: str, typ: str
) -> None:
    key = app.signing_key
    token = eddsa_token(key.private_key, key.kid, claims_for(account), typ=typ)
    await refused_token(auth_stub, token, "TOKEN_INVALID")


@pytest.mark.parametrize("roles", ["admin", [1], None])
async def test_a_token_with_a_malformed_roles_claim_is_refused(
    app: Application, auth_stub: AuthStub, account: str, roles: object
) -> None:
    await refused_token(auth_stub, server_token(app, account, roles=roles), "TOKEN_INVALID")


async def test_a_token_not_yet_valid_is_refused(
    app: Application, auth_stub: AuthStub, account: str
) -> None:
    later = int(time.time()) + 120
    token = server_token(app, account, iat=later, nbf=later, exp=later + 300)
    await refused_token(auth_stub, token, "TOKEN_INVALID")


def absurd_times(now: int) -> dict[str, dict[str, object]]:
    """Time claims no server of ours writes, on tokens otherwise like its own."""
    far = now + 10 * 365 * 86400
    return {
        "exp-string": {"exp": str(far)},
        "iat-string": {"iat": str(now)},
        "exp-float": {"exp": now + 300.0},
        "iat-float": {"iat": now + 0.5},
        "nbf-true": {"nbf": True},
        "exp-true": {"exp": True},
        "iat-negative": {"iat": -now, "nbf": None},
        "exp-negative": {"exp": -1},
        "iat-in-the-future": {"iat": now + 60, "nbf": now + 60, "exp": now + 360},
        "exp-past-the-longest-lifetime": {"exp": now + 901},
        "exp-far-future": {"exp": far},
        "exp-beyond-64-bits": {"exp": 10**30},
        "iat-long-ago": {"iat": now - 86400, "nbf": now - 86400},
        "nbf-absurd": {"nbf": 10**12},
        "nbf-before-iat": {"nbf": 1},
        "iat_us-string": {"iat_us": str(now * 1_000_000)},
        "iat_us-another-time": {"iat_us": (now + 3600) * 1_000_000},
    }


@pytest.mark.parametrize("case", list(absurd_times(0)))
async def test_a_token_with_absurd_time_claims_is_refused_even_when_signed_by_the_server(
    app: Application, auth_stub: AuthStub, account: str, case: str
) -> None:
    overrides = absurd_times(int(time.time()))[case]
    await refused_token(auth_stub, server_token(app, account, **overrides), "TOKEN_INVALID")


async def test_an_expired_token_is_refused_as_expired(
    app: Application, auth_stub: AuthStub, account: str
) -> None:
    now = int(time.time())
    token = server_token(app, account, iat=now - 960, nbf=now - 960, exp=now - 60)
    await refused_token(auth_stub, token, "TOKEN_EXPIRED")


async def test_a_revoked_access_token_is_refused(
    auth_stub: AuthStub, session: auth_pb2.Session, as_account: Md
) -> None:
    await current_account(auth_stub, as_account)  # verified once (and cached)
    await auth_stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token), metadata=as_account
    )
    await refused(current_account(auth_stub, as_account), UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_revoking_one_token_leaves_the_accounts_other_sessions_alone(
    channel: grpc.aio.Channel, auth_stub: AuthStub
) -> None:
    key = Ed25519PrivateKey.generate()
    first, second = await login(channel, key), await login(channel, key)
    await auth_stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=first.refresh_token),
        metadata=bearer(first.access_token),
    )
    await refused_token(auth_stub, first.access_token, "TOKEN_REVOKED")
    assert (await who_am_i(auth_stub, second.access_token)).name == second.account.name


async def test_revoke_token_wants_a_refresh_token(auth_stub: AuthStub, as_account: Md) -> None:
    await refused(
        auth_stub.RevokeToken(auth_pb2.RevokeTokenRequest(), metadata=as_account),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )


# -- the verification cache ---------------------------------------------------------------------


@pytest.mark.parametrize("cache_size", [0, 10_000], ids=["cache-off", "cache-on"])
async def test_verification_works_and_sees_revocations_with_the_cache_on_and_off(
    start_app: StartApp, connect: Connect, cache_size: int
) -> None:
    application = await start_app(token_cache_size=cache_size)
    stub = auth_pb2_grpc.AuthServiceStub(connect(application))
    session = await login(connect(application), Ed25519PrivateKey.generate())
    md = bearer(session.access_token)
    for _ in range(3):
        assert (await current_account(stub, md)).name == session.account.name
    await stub.RevokeToken(
        auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token), metadata=md
    )
    for _ in range(2):
        await refused(current_account(stub, md), UNAUTHENTICATED, "TOKEN_REVOKED")


async def test_a_cache_of_one_token_still_verifies_many(
    start_app: StartApp, connect: Connect
) -> None:
    application = await start_app(token_cache_size=1)
    channel = connect(application)
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    sessions = [await login(channel, Ed25519PrivateKey.generate()) for _ in range(3)]
    for _ in range(2):
        for session in sessions:
            assert (await who_am_i(stub, session.access_token)).name == session.account.name
    forged = tamper(sessions[0].access_token, 2)
    await refused_token(stub, forged, "TOKEN_INVALID")


# -- grant scopes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("claim", "value"), [("scope", "admin"), ("scope", 1), ("sid", 7)])
async def test_a_token_with_a_scope_or_grant_of_no_known_kind_is_refused(
    app: Application, auth_stub: AuthStub, account: str, claim: str, value: object
) -> None:
    await refused_token(auth_stub, server_token(app, account, **{claim: value}), "TOKEN_INVALID")


async def test_a_read_only_token_reads_but_changes_nothing(
    app: Application,
    auth_stub: AuthStub,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    account: str,
) -> None:
    """The scope is a ceiling on the roles: reading passes, cancelling (operations.write) is
    refused before anything is looked up."""
    token = server_token(app, account, scope="read-only")
    assert (await who_am_i(auth_stub, token)).name == account
    listed = await operations_stub.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=bearer(token)
    )
    assert list(listed.operations) == []
    await refused(
        operations_stub.CancelOperation(
            operations_pb2.CancelOperationRequest(name="operations/" + "0" * 32),
            metadata=bearer(token),
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "MISSING_PERMISSION",
    )
