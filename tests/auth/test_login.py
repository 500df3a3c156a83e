"""Challenge-response login with an Ed25519 key: the happy path and every refusal."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import accounts_pb2, auth_pb2, auth_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tests.support.auth import (
    AuthStub,
    Connect,
    StartAdmin,
    challenge_for,
    message_fields,
    signed_login,
    who_am_i,
)
from tests.support.errors import check_refusal, field_violations, refused
from tests.support.servers import StartApp
from tests.support.waiting import wait_until

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url_decode, key_id, public_bytes
from formation_mcp.client.auth import login

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT


def _rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- the happy path ----------------------------------------------------------------------------


async def test_challenge_names_the_domain_and_key_with_a_long_nonce_and_a_short_life(
    auth_stub: AuthStub,
) -> None:
    key = Ed25519PrivateKey.generate()
    before = time.time()
    challenge = await challenge_for(auth_stub, key)
    fields = message_fields(challenge)
    kid = key_id(public_bytes(key))
    assert challenge.key_id == kid
    assert challenge.message.decode().splitlines()[0] == "formation-mcp-login-v1"
    assert fields["domain"] == "formation-mcp"
    assert fields["key_id"] == kid
    assert fields["challenge_id"] == challenge.challenge_id
    assert len(b64url_decode(fields["nonce"])) * 8 >= 128
    issued, expires = _rfc3339(fields["issued_at"]), _rfc3339(fields["expiration_time"])
    assert 0 < expires - issued <= 300
    assert before - 1 <= issued <= time.time() + 1
    expire_time = challenge.expire_time.ToMicroseconds() / 1e6
    assert abs(expire_time - expires) < 1
    assert expire_time - before <= 300 + 1


async def test_each_challenge_has_its_own_id_and_nonce(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    first, second = [await challenge_for(auth_stub, key) for _ in range(2)]
    assert first.challenge_id != second.challenge_id
    assert message_fields(first)["nonce"] != message_fields(second)["nonce"]


async def test_login_gives_a_session_whose_access_token_identifies_the_account(
    auth_stub: AuthStub,
) -> None:
    key = Ed25519PrivateKey.generate()
    kid = key_id(public_bytes(key))
    session = await auth_stub.Login(signed_login(await challenge_for(auth_stub, key), key))
    assert session.access_token and session.refresh_token
    assert session.account.name == f"accounts/{kid}"
    assert session.expire_time.ToMicroseconds() / 1e6 > time.time()
    assert session.refresh_expire_time.ToMicroseconds() > session.expire_time.ToMicroseconds()
    account = await who_am_i(auth_stub, session.access_token)
    assert account.name == f"accounts/{kid}"
    assert account.key_id == kid
    assert list(account.roles) == ["user"]
    assert account.public_key == public_bytes(key)
    assert not account.disabled


async def test_logging_in_again_finds_the_same_account(
    channel: grpc.aio.Channel, auth_stub: AuthStub
) -> None:
    key = Ed25519PrivateKey.generate()
    first = await login(channel, key)
    second = await login(channel, key)
    assert first.account.name == second.account.name
    assert first.account.create_time == second.account.create_time
    assert first.access_token != second.access_token
    assert (await who_am_i(auth_stub, second.access_token)).name == first.account.name


# -- refused challenges and signatures ---------------------------------------------------------


async def test_a_replayed_challenge_is_refused(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    await auth_stub.Login(request)
    await refused(auth_stub.Login(request), UNAUTHENTICATED, "CHALLENGE_INVALID")


async def test_an_expired_challenge_is_refused(start_app: StartApp, connect: Connect) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(connect(await start_app(challenge_ttl_seconds=0.05)))
    key = Ed25519PrivateKey.generate()
    challenge = await challenge_for(stub, key)
    expires = challenge.expire_time.ToMicroseconds() / 1e6
    await wait_until(lambda: time.time() > expires)
    await refused(stub.Login(signed_login(challenge, key)), UNAUTHENTICATED, "CHALLENGE_EXPIRED")


async def test_an_unknown_challenge_is_refused(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_stub, key)
    request = signed_login(challenge, key)
    request.challenge_id = uuid.uuid4().hex
    await refused(auth_stub.Login(request), UNAUTHENTICATED, "CHALLENGE_INVALID")


async def test_a_signature_over_other_bytes_is_refused(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_stub, key)
    request = signed_login(challenge, key)
    request.signature = key.sign(challenge.message + b"\n")
    await refused(auth_stub.Login(request), UNAUTHENTICATED, "SIGNATURE_INVALID")


async def test_a_signature_by_another_key_than_the_challenged_one_is_refused(
    auth_stub: AuthStub,
) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_stub, key)
    request = signed_login(challenge, key)
    request.signature = other.sign(challenge.message)
    await refused(auth_stub.Login(request), UNAUTHENTICATED, "SIGNATURE_INVALID")


async def test_a_challenge_made_for_another_key_is_refused_even_when_signed_correctly(
    auth_stub: AuthStub,
) -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_stub, key)
    await refused(
        auth_stub.Login(signed_login(challenge, other)), UNAUTHENTICATED, "SIGNATURE_INVALID"
    )


async def test_a_failed_login_uses_up_the_challenge(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    challenge = await challenge_for(auth_stub, key)
    bad = signed_login(challenge, key)
    bad.signature = Ed25519PrivateKey.generate().sign(challenge.message)
    await refused(auth_stub.Login(bad), UNAUTHENTICATED, "SIGNATURE_INVALID")
    await refused(
        auth_stub.Login(signed_login(challenge, key)), UNAUTHENTICATED, "CHALLENGE_INVALID"
    )


async def test_two_concurrent_logins_with_one_challenge_exactly_one_succeeds(
    auth_stub: AuthStub,
) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    results = await asyncio.gather(
        auth_stub.Login(request), auth_stub.Login(request), return_exceptions=True
    )
    sessions = [r for r in results if isinstance(r, auth_pb2.Session)]
    errors = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(sessions) == 1 and len(errors) == 1, results
    check_refusal(errors[0], UNAUTHENTICATED, "CHALLENGE_INVALID")


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 31, 33])
async def test_create_challenge_wants_a_32_byte_public_key(auth_stub: AuthStub, size: int) -> None:
    error = await refused(
        auth_stub.CreateChallenge(auth_pb2.CreateChallengeRequest(public_key=b"\x01" * size)),
        INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
    )
    assert field_violations(error) == ["public_key"]


async def test_login_wants_a_64_byte_signature(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    request.signature = bytes(10)
    error = await refused(auth_stub.Login(request), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(error) == ["signature"]


async def test_a_malformed_login_leaves_the_challenge_usable(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    malformed = auth_pb2.LoginRequest()
    malformed.CopyFrom(request)
    malformed.signature = bytes(10)
    await refused(auth_stub.Login(malformed), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert (await auth_stub.Login(request)).access_token


async def test_login_wants_a_challenge_id(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    request.challenge_id = ""
    error = await refused(auth_stub.Login(request), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(error) == ["challenge_id"]


async def test_login_wants_a_32_byte_public_key(auth_stub: AuthStub) -> None:
    key = Ed25519PrivateKey.generate()
    request = signed_login(await challenge_for(auth_stub, key), key)
    request.public_key = request.public_key[:31]
    error = await refused(auth_stub.Login(request), INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert field_violations(error) == ["public_key"]


# -- closed sign-up ----------------------------------------------------------------------------


async def test_closed_signup_refuses_an_unregistered_key_only_after_a_valid_signature(
    start_app: StartApp, connect: Connect
) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(connect(await start_app(auth_signup="closed")))
    key = Ed25519PrivateKey.generate()
    error = await refused(
        stub.Login(signed_login(await challenge_for(stub, key), key)),
        PERMISSION_DENIED,
        "ACCOUNT_NOT_REGISTERED",
    )
    assert "sign-up is closed" in (error.details() or "")


async def test_closed_signup_bad_signature_does_not_reveal_whether_a_key_is_registered(
    start_admin: StartAdmin,
) -> None:
    server = await start_admin(auth_signup="closed")
    registered, unregistered = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    await server.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(
            account=auth_pb2.Account(public_key=public_bytes(registered))
        ),
        metadata=server.md,
    )
    outcomes: list[tuple[grpc.StatusCode, str | None]] = []
    for key in (registered, unregistered):
        request = signed_login(await challenge_for(server.auth, key), key)
        request.signature = Ed25519PrivateKey.generate().sign(b"something else")
        error = await refused(server.auth.Login(request), UNAUTHENTICATED, "SIGNATURE_INVALID")
        outcomes.append((error.code(), error.details()))
    assert outcomes[0] == outcomes[1]


async def test_closed_signup_admits_a_key_an_admin_registered(start_admin: StartAdmin) -> None:
    server = await start_admin(auth_signup="closed")
    key = Ed25519PrivateKey.generate()
    await server.accounts.CreateAccount(
        accounts_pb2.CreateAccountRequest(account=auth_pb2.Account(public_key=public_bytes(key))),
        metadata=server.md,
    )
    session = await login(server.channel, key)
    assert list((await who_am_i(server.auth, session.access_token)).roles) == ["user"]


async def test_closed_signup_admits_the_bootstrap_admin(start_admin: StartAdmin) -> None:
    server = await start_admin(auth_signup="closed")
    account = await who_am_i(server.auth, server.session.access_token)
    assert list(account.roles) == ["admin"]
    assert account.key_id == key_id(public_bytes(server.key))


# -- rate limiting ------------------------------------------------------------------------------


async def test_the_third_challenge_for_one_key_within_a_minute_is_rate_limited(
    start_app: StartApp, connect: Connect
) -> None:
    application: Application = await start_app(login_rate_per_minute=2)
    stub = auth_pb2_grpc.AuthServiceStub(connect(application))
    key = Ed25519PrivateKey.generate()
    for _ in range(2):
        await challenge_for(stub, key)
    error = await refused(
        challenge_for(stub, key), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED"
    )
    status = rpc_status.from_call(error)
    assert status is not None
    retries = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retries) == 1
    retry = error_details_pb2.RetryInfo()
    retries[0].Unpack(retry)
    assert 0 < retry.retry_delay.ToTimedelta().total_seconds() <= 60


async def test_the_rate_limit_is_per_key(start_app: StartApp, connect: Connect) -> None:
    stub = auth_pb2_grpc.AuthServiceStub(connect(await start_app(login_rate_per_minute=2)))
    limited = Ed25519PrivateKey.generate()
    for _ in range(2):
        await challenge_for(stub, limited)
    await refused(challenge_for(stub, limited), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert (await challenge_for(stub, Ed25519PrivateKey.generate())).challenge_id
