"""The per-address login limit against clients that claim other addresses (gRPC straight to
the server; through Envoy in tests/envoy/test_client_address.py).

With FMCP_LOGIN_RATE=1 a key gets one challenge a minute and an address four (any keys): the
fifth challenge from one address, each for a fresh key, is refused."""

from __future__ import annotations

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc
from tests.support.auth import AuthStub, Connect, Md
from tests.support.errors import refused
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.auth.keys import public_bytes

PER_ADDRESS = 4
"""Challenges an address gets per minute at FMCP_LOGIN_RATE=1 (4 x the per-key rate)."""


async def challenge(stub: AuthStub, metadata: Md) -> auth_pb2.Challenge:
    """A challenge for a fresh key (so only the per-address limit can refuse it)."""
    key = Ed25519PrivateKey.generate()
    request = auth_pb2.CreateChallengeRequest(public_key=public_bytes(key))
    result: auth_pb2.Challenge = await stub.CreateChallenge(request, metadata=metadata)
    return result


async def limited_server(start_app: StartApp, connect: Connect, **overrides: object) -> AuthStub:
    application: Application = await start_app(login_rate_per_minute=1, **overrides)
    return auth_pb2_grpc.AuthServiceStub(connect(application))


async def test_a_direct_client_claiming_other_addresses_is_still_limited(
    start_app: StartApp, connect: Connect
) -> None:
    stub = await limited_server(start_app, connect)
    for n in range(PER_ADDRESS):
        await challenge(stub, (("x-forwarded-for", f"203.0.113.{n}"),))
    spoofed = (("x-forwarded-for", "203.0.113.99"),)
    await refused(challenge(stub, spoofed), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")


async def test_a_direct_client_guessing_the_proxy_secret_is_still_limited(
    start_app: StartApp, connect: Connect
) -> None:
    stub = await limited_server(start_app, connect)

    def guess(n: int) -> Md:
        return (("x-fmcp-proxy-secret", "g" * 43), ("x-forwarded-for", f"203.0.113.{n}"))

    for n in range(PER_ADDRESS):
        await challenge(stub, guess(n))
    await refused(challenge(stub, guess(99)), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")


@pytest.mark.parametrize("trusted_by", ["secret", "network"])
async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit(
    start_app: StartApp, connect: Connect, trusted_by: str
) -> None:
    """The test plays the proxy: it sends the server's secret, or comes from a trusted network."""
    if trusted_by == "network":
        application = await start_app(login_rate_per_minute=1, trusted_proxies=("127.0.0.1/32",))
        proxy: Md = ()
    else:
        application = await start_app(login_rate_per_minute=1)
        proxy = (("x-fmcp-proxy-secret", application.settings.proxy_secret),)
    stub = auth_pb2_grpc.AuthServiceStub(connect(application))
    first: Md = (*proxy, ("x-forwarded-for", "6.6.6.6, 203.0.113.1"))
    second: Md = (*proxy, ("x-forwarded-for", "203.0.113.2"))
    for _ in range(PER_ADDRESS):
        await challenge(stub, first)
    await refused(challenge(stub, first), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
    assert (await challenge(stub, second)).challenge_id


async def test_a_direct_client_spoofing_addresses_cannot_sign_up_past_the_limit(
    start_app: StartApp, connect: Connect
) -> None:
    """A sign-up (open sign-up: a first login) is a challenge and a login, both counted per
    key and per address: at FMCP_LOGIN_RATE=2 an address gets 8 calls, so 4 sign-ups."""
    application: Application = await start_app(login_rate_per_minute=2)
    stub = auth_pb2_grpc.AuthServiceStub(connect(application))
    for n in range(4):
        key = Ed25519PrivateKey.generate()
        spoofed: Md = (("x-forwarded-for", f"203.0.113.{n}"),)
        request = auth_pb2.CreateChallengeRequest(public_key=public_bytes(key))
        issued = await stub.CreateChallenge(request, metadata=spoofed)
        login = auth_pb2.LoginRequest(
            challenge_id=issued.challenge_id,
            public_key=public_bytes(key),
            signature=key.sign(issued.message),
        )
        assert (await stub.Login(login, metadata=spoofed)).access_token
    spoofed = (("x-forwarded-for", "203.0.113.99"),)
    await refused(challenge(stub, spoofed), grpc.StatusCode.RESOURCE_EXHAUSTED, "RATE_LIMITED")
