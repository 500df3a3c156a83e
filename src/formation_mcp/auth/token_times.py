"""The time claims of an access token, checked as strictly as our issuer writes them.

`iat`, `nbf` and `exp` are whole seconds written as JSON integers (not strings, floats or
booleans); `iat` is not in the future, `nbf` lies between `iat` and `exp`, and `exp` comes at
most the longest access-token lifetime after `iat`. `iat_us`, when present, is `iat` in
microseconds. A token that breaks any of these was not made by a server of ours, even when a key
of ours signed it: it is refused rather than believed for longer than a token can live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from formation_mcp.errors import Unauthenticated

TIME_CLAIMS = ("iat", "nbf", "exp")


@dataclass(frozen=True, slots=True)
class TokenTimes:
    issued_at: int  # µs: `iat_us` when present, else `iat` in whole seconds
    expires_at: int  # s


def _invalid(message: str) -> Unauthenticated:
    return Unauthenticated(f"the access token {message}", reason="TOKEN_INVALID")


def _whole_seconds(claims: Mapping[str, object], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    # bool is an int subclass: `true` is not a time.
    if type(value) is not int or value <= 0:
        raise _invalid(f"claim {name} must be a positive whole number of seconds")
    return value


def check_token_times(
    claims: Mapping[str, object], now: float, *, leeway: float, max_lifetime: float
) -> TokenTimes:
    """The token's issue and expiry times, or UNAUTHENTICATED: TOKEN_INVALID for a malformed,
    inconsistent or not yet valid token, TOKEN_EXPIRED for one past its `exp`."""
    issued, not_before, expires = (_whole_seconds(claims, name) for name in TIME_CLAIMS)
    if issued is None or expires is None:
        raise _invalid("needs the claims iat and exp")
    if not issued < expires <= issued + max_lifetime:
        raise _invalid(f"must expire after it was issued, within {max_lifetime:.0f}s")
    if not_before is not None and not issued <= not_before < expires:
        raise _invalid("claim nbf must lie between iat and exp")
    issued_us = claims.get("iat_us", issued * 1_000_000)
    if type(issued_us) is not int or issued_us // 1_000_000 != issued:
        raise _invalid("claim iat_us must be iat in microseconds")
    if issued > now + leeway:
        raise _invalid("was issued in the future")
    if not_before is not None and not_before > now + leeway:
        raise _invalid("is not valid yet (nbf)")
    if expires <= now - leeway:
        raise Unauthenticated(
            "the access token expired; refresh it or log in again", reason="TOKEN_EXPIRED"
        )
    return TokenTimes(issued_at=issued_us, expires_at=expires)
