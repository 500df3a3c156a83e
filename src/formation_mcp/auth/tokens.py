"""Access tokens: EdDSA JWTs signed with the server's key, verified with every published key.

Verification pins the algorithm (EdDSA only: never `none`, never HS*), resolves `kid` only in
our own published keys, requires and checks `iss aud sub exp iat jti` and `typ: at+jwt`, and
holds the time claims to what our issuer writes (`token_times.py`).
Verified tokens are cached (bounded, until they expire); revocation is checked on every call.

The audience is the resource a token is for (RFC 8707): the API's own (`FMCP_AUTH_AUDIENCE`)
for sessions from Login, or the MCP endpoint's URL for tokens an MCP host got through the
OAuth authorization server. A token is accepted only by the resource it names: `verify` checks
the API's audience unless told which resource is asking. `scope` (the grant's: `full` or
`read-only`), `sid` (the grant, i.e. the refresh-token family, so revoking a grant ends its
access tokens at once) and `client_id` (the OAuth client) are carried as claims.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from formation_mcp.auth.keys import SigningKey, b64url
from formation_mcp.auth.revocations import Revocations
from formation_mcp.auth.token_times import check_token_times
from formation_mcp.clock import now_us
from formation_mcp.errors import Unauthenticated
from formation_mcp.identity import Caller
from formation_mcp.permissions import FULL_SCOPE, SCOPES
from formation_mcp.settings import MAX_ACCESS_TOKEN_SECONDS

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]
LEEWAY_SECONDS = 5
KEY_REFRESH_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expire_time: int  # µs


class TokenIssuer:
    def __init__(self, key: SigningKey, issuer: str, audience: str, ttl_seconds: float) -> None:
        self._key = key
        self._issuer = issuer
        self._audience = audience
        self._ttl = max(1, round(ttl_seconds))

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def issue(
        self,
        account: str,
        roles: tuple[str, ...],
        issued_at: int | None = None,
        *,
        audience: str | None = None,
        scope: str = FULL_SCOPE,
        grant_id: str = "",
        client_id: str = "",
    ) -> IssuedToken:
        """`issued_at` (µs) defaults to now; pass the time taken before the account was read,
        so a revocation committed in between applies to this token. `audience` defaults to
        the API's own; `grant_id` and `client_id` are written when given."""
        now_exact = now_us() if issued_at is None else issued_at
        now = now_exact // 1_000_000
        jti = uuid.uuid4().hex
        claims: dict[str, object] = {
            "iat_us": now_exact,
            "iss": self._issuer,
            "aud": audience or self._audience,
            "sub": account,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": jti,
            "roles": list(roles),
            "scope": scope,
        }
        if grant_id:
            claims["sid"] = grant_id
        if client_id:
            claims["client_id"] = client_id
        token = jwt.encode(
            claims,
            self._key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._key.kid, "typ": TOKEN_TYPE},
        )
        return IssuedToken(token, jti, (now + self._ttl) * 1_000_000)


class KeyRing:
    """Public keys by `kid`, loaded from the database; reloaded (at most once a second) when
    a token names a kid we do not know yet (a key another replica just started using)."""

    def __init__(self, load: Callable[[], Awaitable[dict[str, bytes]]]) -> None:
        self._load = load
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            await self._reload()

    async def _reload(self) -> None:
        raw = await self._load()
        self._keys = {kid: Ed25519PublicKey.from_public_bytes(key) for kid, key in raw.items()}
        self._loaded_at = time.monotonic()

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """A key by id; an unknown id reloads the ring (at most once per interval: callers
        arriving meanwhile wait for that reload instead of being refused)."""
        key = self._keys.get(kid)
        if key is None:
            await self.refresh_if_older_than(0.0, wait_for_interval=True)
            key = self._keys.get(kid)
        return key

    async def refresh_if_older_than(self, age: float, *, wait_for_interval: bool = False) -> None:
        requested = time.monotonic()
        async with self._lock:
            if self._loaded_at >= requested:
                return  # somebody reloaded while we waited for the lock
            since = time.monotonic() - self._loaded_at
            if since < age:
                return
            if since < KEY_REFRESH_INTERVAL:
                if not wait_for_interval:
                    return
                await asyncio.sleep(KEY_REFRESH_INTERVAL - since)
            await self._reload()

    def published(self) -> dict[str, str]:
        """kid -> base64url public key, for the JWKS."""
        return {kid: b64url(key.public_bytes_raw()) for kid, key in sorted(self._keys.items())}


def _invalid(message: str) -> Unauthenticated:
    return Unauthenticated(message, reason="TOKEN_INVALID")


class TokenVerifier:
    def __init__(
        self,
        keys: KeyRing,
        revocations: Revocations,
        issuer: str,
        audience: str,
        cache_size: int,
    ) -> None:
        self._keys = keys
        self._revocations = revocations
        self._issuer = issuer
        self._audience = audience
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[Caller, int]] = OrderedDict()

    @property
    def api_audience(self) -> str:
        return self._audience

    async def verify(self, token: str, audience: str | None = None) -> Caller:
        """The caller a bearer token stands for, when the token is for `audience` (default:
        the API's own); UNAUTHENTICATED with the reason otherwise."""
        audience = audience or self._audience
        cached = self._cache.get((token, audience))
        if cached is not None and cached[1] > time.time():
            caller = cached[0]
        else:
            caller, expires = await self._verify_signature_and_claims(token, audience)
            self._remember((token, audience), caller, expires)
        if self._revocations.is_revoked(
            caller.token_id, caller.key_id, caller.token_issue_time, caller.grant_id
        ):
            raise Unauthenticated(
                "the access token was revoked; log in again", reason="TOKEN_REVOKED"
            )
        return caller

    def _remember(self, key: tuple[str, str], caller: Caller, expires: int) -> None:
        if self._cache_size <= 0:
            return
        self._cache[key] = (caller, expires)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def _verify_signature_and_claims(self, token: str, audience: str) -> tuple[Caller, int]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid("the access token is malformed") from None
        if header.get("alg") != ALGORITHM:
            raise _invalid(f"the access token must be signed with {ALGORITHM}")
        if header.get("typ") != TOKEN_TYPE:
            raise _invalid(f"the token is not an access token (typ must be {TOKEN_TYPE})")
        kid = header.get("kid")
        key = await self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise _invalid("the access token was signed by a key this service does not publish")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=audience,
                issuer=self._issuer,
                options={
                    "require": REQUIRED_CLAIMS,
                    "strict_aud": True,
                    # Checked by check_token_times, which also wants JSON integers in range
                    # (PyJWT takes "9999999999", 1e9 or true for a time).
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError:
            raise _invalid("the access token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the access token comes from another issuer") from None
        except jwt.InvalidTokenError as exc:
            raise _invalid(f"the access token is not valid: {exc}") from None
        times = check_token_times(
            claims, time.time(), leeway=LEEWAY_SECONDS, max_lifetime=MAX_ACCESS_TOKEN_SECONDS
        )
        roles = claims.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise _invalid("the access token's roles claim is malformed")
        scope = claims.get("scope", FULL_SCOPE)  # tokens from before scopes were full
        if scope not in SCOPES:
            raise _invalid("the access token's scope claim is not one of ours")
        grant_id = claims.get("sid", "")
        if not isinstance(grant_id, str):
            raise _invalid("the access token's sid claim is malformed")
        caller = Caller(
            account=str(claims["sub"]),
            roles=frozenset(roles),
            token_id=str(claims["jti"]),
            token_issue_time=times.issued_at,
            token_expire_time=times.expires_at * 1_000_000,
            scope=str(scope),
            grant_id=grant_id,
        )
        return caller, times.expires_at
