"""Refresh tokens: opaque, stored hashed, one family per grant, rotated on every use; a token
presented after it was spent means it leaked (the caller then revokes its family)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.auth import store
from formation_mcp.auth.store import RefreshTokenRecord
from formation_mcp.errors import InvalidArgument, Unauthenticated

REFRESH_TOKEN_BYTES = 32


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def mint(
    conn: AsyncConnection, kid: str, family_id: str, ttl_seconds: float, now: int
) -> tuple[str, int]:
    """A new refresh token of the family, written in the caller's transaction: the token and
    its expiry (µs)."""
    token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
    expires = now + int(ttl_seconds * 1_000_000)
    await store.insert_refresh_token(conn, token_hash(token), family_id, kid, expires, now)
    return token, expires


async def spend(
    conn: AsyncConnection, refresh_token: str, now: int, field: str = "refresh_token"
) -> tuple[RefreshTokenRecord, bool]:
    """The token's row and whether this call spent it (False: it was spent before, so it
    leaked). UNAUTHENTICATED for an unknown, revoked or expired token."""
    if not refresh_token:
        raise InvalidArgument.for_field(field, "required")
    hashed = token_hash(refresh_token)
    row = await store.get_refresh_token(conn, hashed)
    if row is None or row.revoked:
        raise Unauthenticated(
            "unknown or revoked refresh token; log in again", reason="REFRESH_TOKEN_INVALID"
        )
    if row.expire_time < now:
        raise Unauthenticated(
            "the refresh token expired; log in again", reason="REFRESH_TOKEN_EXPIRED"
        )
    return row, await store.mark_refresh_token_used(conn, hashed)
