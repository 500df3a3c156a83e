"""Logging in with an Ed25519 key: sign the server's challenge, get a session."""

from __future__ import annotations

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc

from formation_mcp.auth.keys import public_bytes


async def login(channel: grpc.aio.Channel, key: Ed25519PrivateKey) -> auth_pb2.Session:
    """CreateChallenge, sign its message exactly as given, Login."""
    stub = auth_pb2_grpc.AuthServiceStub(channel)
    public_key = public_bytes(key)
    challenge = await stub.CreateChallenge(auth_pb2.CreateChallengeRequest(public_key=public_key))
    session: auth_pb2.Session = await stub.Login(
        auth_pb2.LoginRequest(
            challenge_id=challenge.challenge_id,
            public_key=public_key,
            signature=key.sign(challenge.message),
        )
    )
    return session


def bearer(access_token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying an access token."""
    return (("authorization", f"Bearer {access_token}"),)
