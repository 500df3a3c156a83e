"""Signing in, in tests: call metadata, challenges and logins, hand-made tokens, servers with
an admin, and a gate that forces one interleaving of two calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    operations_pb2_grpc,
)
from google.protobuf import empty_pb2, field_mask_pb2
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.auth.keys import b64url, b64url_decode, public_bytes
from formation_mcp.client.auth import bearer, login

Md = tuple[tuple[str, str], ...]
"""Call metadata: `bearer(access_token)`'s `authorization` header."""
AuthStub: TypeAlias = "auth_pb2_grpc.AuthServiceAsyncStub"
"""The Auth service's stub on a grpc.aio channel (its type exists only in the .pyi stubs)."""
Connect = Callable[[Application], grpc.aio.Channel]
"""The auth tests' `connect` fixture: a channel to any server, closed after the test."""

ISSUER = AUDIENCE = "formation-mcp"

A = TypeVar("A")
B = TypeVar("B")


async def who_am_i(stub: AuthStub, access_token: str) -> auth_pb2.Account:
    account: auth_pb2.Account = await stub.GetCurrentAccount(
        empty_pb2.Empty(), metadata=bearer(access_token)
    )
    return account


async def challenge_for(stub: AuthStub, key: Ed25519PrivateKey) -> auth_pb2.Challenge:
    challenge: auth_pb2.Challenge = await stub.CreateChallenge(
        auth_pb2.CreateChallengeRequest(public_key=public_bytes(key))
    )
    return challenge


def signed_login(challenge: auth_pb2.Challenge, key: Ed25519PrivateKey) -> auth_pb2.LoginRequest:
    """The Login request a well-behaved client sends for `challenge`."""
    return auth_pb2.LoginRequest(
        challenge_id=challenge.challenge_id,
        public_key=public_bytes(key),
        signature=key.sign(challenge.message),
    )


def message_fields(challenge: auth_pb2.Challenge) -> dict[str, str]:
    """The `name: value` lines of a challenge message."""
    lines = challenge.message.decode().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


# -- tokens ------------------------------------------------------------------------------------


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def token_header(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


def token_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return claims


def claims_for(subject: str, /, **overrides: Any) -> dict[str, Any]:
    """Claims like the server's own; an override of None leaves that claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "roles": ["user"],
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def eddsa_token(
    signer: Ed25519PrivateKey, kid: str, claims: dict[str, Any], typ: str = "at+jwt"
) -> str:
    return jwt.encode(claims, signer, algorithm="EdDSA", headers={"kid": kid, "typ": typ})


def server_token(app: Application, subject: str, /, **overrides: Any) -> str:
    """A token signed with the server's own key (as if the server had issued it)."""
    return eddsa_token(
        app.signing_key.private_key, app.signing_key.kid, claims_for(subject, **overrides)
    )


def unsigned_token(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """`alg: none`: header.payload. with an empty signature."""
    return f"{b64url_json(header)}.{b64url_json(claims)}."


def hs256_token(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def flip_char(segment: str, index: int) -> str:
    """`segment` with one base64url character replaced by another (so its bytes change)."""
    old = segment[index]
    new = "A" if old != "A" else "B"
    return segment[:index] + new + segment[index + 1 :]


def tamper(token: str, part: int) -> str:
    """Change one character in the middle of the token's part 0, 1 or 2."""
    parts = token.split(".")
    parts[part] = flip_char(parts[part], len(parts[part]) // 2)
    return ".".join(parts)


# -- a server with an admin -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminServer:
    """A server started with one admin key, and a channel to it with the admin logged in."""

    app: Application
    channel: grpc.aio.Channel
    key: Ed25519PrivateKey
    session: auth_pb2.Session

    @property
    def md(self) -> Md:
        return bearer(self.session.access_token)

    @property
    def auth(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return auth_pb2_grpc.AuthServiceStub(self.channel)

    @property
    def accounts(self) -> accounts_pb2_grpc.AccountsServiceAsyncStub:
        return accounts_pb2_grpc.AccountsServiceStub(self.channel)

    @property
    def operations(self) -> operations_pb2_grpc.OperationsServiceAsyncStub:
        return operations_pb2_grpc.OperationsServiceStub(self.channel)

    async def new_user(self) -> tuple[Ed25519PrivateKey, auth_pb2.Session]:
        """A fresh key logged in on this server (open sign-up: role `user`)."""
        key = Ed25519PrivateKey.generate()
        return key, await login(self.channel, key)

    async def update(
        self, name: str, paths: list[str], roles: list[str] | None = None, disabled: bool = False
    ) -> auth_pb2.Account:
        return await self.accounts.UpdateAccount(
            accounts_pb2.UpdateAccountRequest(
                account=auth_pb2.Account(name=name, roles=roles or [], disabled=disabled),
                update_mask=field_mask_pb2.FieldMask(paths=paths),
            ),
            metadata=self.md,
        )


StartAdmin = Callable[..., Awaitable[AdminServer]]
"""The auth tests' `start_admin(**settings)`: a server whose FMCP_ADMIN_KEYS holds a fresh key."""


# -- forcing one interleaving of two calls ------------------------------------------------------


class Gate:
    """Stands in for an async method of a running service: holds its first call until released
    (later calls pass straight through), so a test can force one interleaving of two RPCs."""

    def __init__(self, method: Callable[..., Awaitable[Any]]) -> None:
        self._method = method
        self._entered = asyncio.Event()
        self._release = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._entered.is_set():
            self._entered.set()
            await self._release.wait()
        return await self._method(*args, **kwargs)

    async def run_between(
        self, held: Awaitable[A], meanwhile: Callable[[], Awaitable[B]], grace: float = 0.5
    ) -> tuple[A | BaseException, B | BaseException]:
        """Start `held`; once it reaches the gate, start `meanwhile` and give it `grace` seconds
        to finish (a server that serializes the two makes it wait for `held` instead); then
        open the gate. Both outcomes, results or exceptions."""
        first = asyncio.ensure_future(held)
        entered = asyncio.ensure_future(self._entered.wait())
        await asyncio.wait({first, entered}, timeout=DEADLINE, return_when="FIRST_COMPLETED")
        entered.cancel()
        assert self._entered.is_set(), "the held call never reached the gate"
        second = asyncio.ensure_future(meanwhile())
        await asyncio.wait({second}, timeout=grace)
        self._release.set()
        outcome_first, outcome_second = await asyncio.gather(first, second, return_exceptions=True)
        return outcome_first, outcome_second
