"""AIP-158 page tokens: opaque, URL-safe, bound to the query that issued them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from formation_mcp.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_TOKEN_CHARS = 512


def page_size(requested: int) -> int:
    """0 means the default, above the maximum is coerced, negative is INVALID_ARGUMENT."""
    if requested < 0:
        raise InvalidArgument.for_field(
            "page_size", f"must not be negative (got {requested}); use 0 for the default"
        )
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


def query_key(*parts: str) -> str:
    """A short digest of everything that must stay the same from page to page."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def encode_token(position: str, key: str) -> str:
    raw = json.dumps({"p": position, "q": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, key: str) -> str:
    """The position a token points at; INVALID_ARGUMENT when malformed or from another query."""
    try:
        if len(token) > MAX_TOKEN_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position, token_key = data["p"], data["q"]
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise InvalidArgument.for_field(
            "page_token", "malformed; pass next_page_token from the previous response unchanged"
        ) from None
    if not isinstance(position, str) or token_key != key:
        raise InvalidArgument.for_field(
            "page_token",
            "was issued for a different query (filter or caller changed); "
            "start again without page_token",
        )
    return position
