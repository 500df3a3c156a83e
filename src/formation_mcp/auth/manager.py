"""Login with an Ed25519 key, token refresh and revocation, and who-am-I."""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid

import nacl.exceptions
import nacl.signing
from formation.mcp.v1 import auth_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.auth import grant_store, refresh_tokens, store
from formation_mcp.auth.challenges import challenge_message
from formation_mcp.auth.grants import (
    LOGIN_CLIENT_NAME,
    LOGOUT,
    REFRESH_TOKEN_REUSED,
    GrantManager,
)
from formation_mcp.auth.keys import PUBLIC_KEY_BYTES, account_name, key_id
from formation_mcp.auth.ratelimit import RateLimiter
from formation_mcp.auth.revocations import TOPIC as REVOCATION_TOPIC
from formation_mcp.auth.revocations import Revocations
from formation_mcp.auth.store import AccountRecord
from formation_mcp.auth.tokens import KEY_REFRESH_INTERVAL, KeyRing, TokenIssuer
from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us, to_timestamp
from formation_mcp.db.database import Database
from formation_mcp.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from formation_mcp.identity import Caller
from formation_mcp.permissions import FULL_SCOPE, USER
from formation_mcp.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_BYTES = 64


def _login_failed(message: str, reason: str) -> Unauthenticated:
    return Unauthenticated(message, reason=reason)


def to_account_message(row: AccountRecord) -> auth_pb2.Account:
    return auth_pb2.Account(
        name=account_name(row.key_id),
        key_id=row.key_id,
        roles=list(row.roles),
        public_key=row.public_key,
        disabled=row.disabled,
        create_time=to_timestamp(row.create_time),
    )


def _usable(account: AccountRecord | None, kid: str) -> AccountRecord:
    """The account a proven key may get tokens for; PERMISSION_DENIED otherwise."""
    if account is None:
        raise PermissionDenied(
            "this key has no account and sign-up is closed; ask an admin to register it",
            reason="ACCOUNT_NOT_REGISTERED",
            metadata={"keyId": kid},
        )
    if account.disabled:
        raise PermissionDenied(
            "this account is disabled", reason="ACCOUNT_DISABLED", metadata={"keyId": kid}
        )
    return account


def check_public_key(public_key: bytes, field: str = "public_key") -> None:
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise InvalidArgument.for_field(
            field,
            f"must be the raw {PUBLIC_KEY_BYTES}-byte Ed25519 public key "
            f"(got {len(public_key)} bytes)",
        )


class AuthManager:
    def __init__(
        self,
        database: Database,
        bus: ChangeBus,
        settings: Settings,
        issuer: TokenIssuer,
        keys: KeyRing,
        revocations: Revocations,
        grants: GrantManager,
    ) -> None:
        self._db = database
        self._bus = bus
        self._settings = settings
        self._issuer = issuer
        self._keys = keys
        self._revocations = revocations
        self._grants = grants
        per_minute = settings.login_rate_per_minute
        self._per_key = RateLimiter(per_minute)
        self._per_peer = RateLimiter(per_minute * 4)

    def limit(self, kid: str, address: str, what: str) -> None:
        """Per key and per client address (behind Envoy: the address Envoy saw)."""
        self._per_key.take(f"key:{kid}", what)
        self._per_peer.take(f"address:{address}", what)

    async def create_challenge(self, public_key: bytes, peer: str) -> auth_pb2.Challenge:
        """A single-use challenge for any well-formed key: whether the key has an account is
        not revealed here."""
        check_public_key(public_key)
        kid = key_id(public_key)
        self.limit(kid, peer, "login challenge")
        issued = now_us()
        expires = issued + int(self._settings.challenge_ttl_seconds * 1_000_000)
        challenge_id = uuid.uuid4().hex
        message = challenge_message(
            domain=self._settings.auth_domain,
            kid=kid,
            nonce=secrets.token_urlsafe(32),
            challenge_id=challenge_id,
            issued_at=issued,
            expire_at=expires,
        )
        async with self._db.write() as conn:
            await store.insert_challenge(conn, challenge_id, kid, message, expires)
        return auth_pb2.Challenge(
            challenge_id=challenge_id,
            message=message,
            expire_time=to_timestamp(expires),
            key_id=kid,
        )

    async def login(
        self, challenge_id: str, public_key: bytes, signature: bytes, peer: str
    ) -> auth_pb2.Session:
        check_public_key(public_key)
        if not challenge_id:
            raise InvalidArgument.for_field("challenge_id", "required: from CreateChallenge")
        if len(signature) != SIGNATURE_BYTES:
            raise InvalidArgument.for_field(
                "signature",
                f"must be the {SIGNATURE_BYTES}-byte Ed25519 signature of Challenge.message "
                f"(got {len(signature)} bytes)",
            )
        kid = key_id(public_key)
        self.limit(kid, peer, "login")
        async with self._db.write() as conn:
            challenge = await store.consume_challenge(conn, challenge_id)
        if challenge is None:
            raise _login_failed(
                "unknown or already used challenge; request a new one", "CHALLENGE_INVALID"
            )
        if challenge.expire_time < now_us():
            raise _login_failed("the challenge expired; request a new one", "CHALLENGE_EXPIRED")
        if not hmac.compare_digest(challenge.key_id, kid):
            raise _login_failed("the challenge was issued for another key", "SIGNATURE_INVALID")
        verify_signature(
            public_key,
            challenge.message,
            signature,
            "the signature does not verify: sign Challenge.message exactly, with the key "
            "the challenge was made for",
        )
        # The caller has proved they hold the key; only now is its account looked at. The
        # token's issue time is taken first: an account disabled from then on gets a token
        # that is already revoked.
        issued_at = now_us()
        family_id = uuid.uuid4().hex
        async with self._db.write() as conn:
            account = await self.account_of_key(conn, public_key, issued_at)
            refresh = await refresh_tokens.mint(
                conn, account.key_id, family_id, self._settings.refresh_token_ttl_seconds, issued_at
            )
            grant = grant_store.GrantRecord(
                id=family_id,
                key_id=account.key_id,
                kind=grant_store.LOGIN,
                client_id="",
                client_name=LOGIN_CLIENT_NAME,
                scope=FULL_SCOPE,
                resource="",
                create_time=issued_at,
                last_use_time=issued_at,
                expire_time=refresh[1],
            )
            await self._grants.record(conn, grant, grant_store.LOGGED_IN, address=peer)
        return self._session(account, refresh, issued_at, family_id)

    async def account_of_key(
        self, conn: AsyncConnection, public_key: bytes, now: int
    ) -> AccountRecord:
        """The account of a key that has proved itself: created with role `user` under open
        sign-up; PERMISSION_DENIED when there is none to be had or it is disabled."""
        kid = key_id(public_key)
        account = await store.get_account(conn, kid)
        if account is None and self._settings.auth_signup == "open":
            await store.insert_account(conn, kid, public_key, (USER,), now)
            account = await store.get_account(conn, kid)
        return _usable(account, kid)

    def _session(
        self, account: AccountRecord, refresh: tuple[str, int], issued_at: int, family_id: str
    ) -> auth_pb2.Session:
        access = self._issuer.issue(
            account_name(account.key_id), account.roles, issued_at, grant_id=family_id
        )
        return auth_pb2.Session(
            access_token=access.token,
            refresh_token=refresh[0],
            expire_time=to_timestamp(access.expire_time),
            refresh_expire_time=to_timestamp(refresh[1]),
            account=to_account_message(account),
        )

    async def refresh(self, refresh_token: str) -> auth_pb2.Session:
        """Rotate: the presented token is spent and its successor written in the same
        transaction. A token presented again after it was spent means it leaked: its whole
        family (grant) is revoked, and so are the account's access tokens. An MCP host's
        refresh token is not taken here: its tokens are for the MCP endpoint, and it renews
        them at the OAuth token endpoint."""
        issued_at = now_us()
        revocation = ""
        async with self._db.write() as conn:
            row, spent = await refresh_tokens.spend(conn, refresh_token, issued_at)
            grant = await grant_store.get_grant(conn, row.family_id)
            if grant is not None and grant.kind != grant_store.LOGIN:
                raise _login_failed(
                    "unknown or revoked refresh token; log in again", "REFRESH_TOKEN_INVALID"
                )
            if spent:
                account = _usable(await store.get_account(conn, row.key_id), row.key_id)
                successor = await refresh_tokens.mint(
                    conn,
                    row.key_id,
                    row.family_id,
                    self._settings.refresh_token_ttl_seconds,
                    issued_at,
                )
                await grant_store.touch_grant(conn, row.family_id, issued_at, successor[1])
            else:
                payload = await self._grants.revoke_within(
                    conn, row.family_id, issued_at, REFRESH_TOKEN_REUSED
                )
                await store.update_account(conn, row.key_id, tokens_valid_after=issued_at)
                revocation = self._revocations.account_revoked(row.key_id, issued_at)
                await self._bus.announce_in_transaction(conn, REVOCATION_TOPIC, revocation)
        if revocation:
            self._grants.committed(payload)
            self._bus.committed(REVOCATION_TOPIC, revocation)
            log.warning("refresh token reused: session revoked", extra={"keyId": row.key_id})
            raise _login_failed(
                "this refresh token was already used, so it leaked: every token of the account "
                "is now revoked; log in again",
                "REFRESH_TOKEN_REUSED",
            )
        return self._session(account, successor, issued_at, row.family_id)

    async def revoke(self, caller: Caller, refresh_token: str) -> None:
        """Log out: the refresh token's grant (its family and every access token it issued)
        and the caller's current access token."""
        if not refresh_token:
            raise InvalidArgument.for_field(
                "refresh_token", "required: the session's refresh token"
            )
        now = now_us()
        grant_payload = ""
        async with self._db.write() as conn:
            row = await store.get_refresh_token(conn, refresh_tokens.token_hash(refresh_token))
            if row is not None and hmac.compare_digest(row.key_id, caller.key_id):
                grant_payload = await self._grants.revoke_within(conn, row.family_id, now, LOGOUT)
            await store.revoke_access_token(conn, caller.token_id, caller.token_expire_time)
            payload = self._revocations.token_revoked(caller.token_id, caller.token_expire_time)
            await self._bus.announce_in_transaction(conn, REVOCATION_TOPIC, payload)
        if grant_payload:
            self._grants.committed(grant_payload)
        self._bus.committed(REVOCATION_TOPIC, payload)

    async def current_account(self, caller: Caller) -> auth_pb2.Account:
        async with self._db.read() as conn:
            account = await store.get_account(conn, caller.key_id)
        if account is None:
            raise NotFound(f"{caller.account} not found", reason="ACCOUNT_NOT_FOUND")
        return to_account_message(account)

    async def jwks(self) -> auth_pb2.Jwks:
        """Every key that may verify a current token; reloaded when a second old, so a new
        replica's key shows up at once."""
        await self._keys.refresh_if_older_than(KEY_REFRESH_INTERVAL)
        return auth_pb2.Jwks(
            keys=[
                auth_pb2.Jwk(kty="OKP", crv="Ed25519", x=x, kid=kid, use="sig", alg="EdDSA")
                for kid, x in self._keys.published().items()
            ]
        )


def verify_signature(public_key: bytes, message: bytes, signature: bytes, explain: str) -> None:
    """UNAUTHENTICATED (SIGNATURE_INVALID, `explain`) unless `signature` is the key's
    Ed25519 signature of `message`."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except nacl.exceptions.BadSignatureError:
        raise _login_failed(explain, "SIGNATURE_INVALID") from None
