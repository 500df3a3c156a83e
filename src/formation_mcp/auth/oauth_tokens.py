"""The token endpoint's work: an approved request's code exchanged for a grant's first tokens
(PKCE S256, the same redirect URI, the same resource), refresh tokens rotated as for logins
(reuse revokes the grant), and revocation (RFC 7009).

Access tokens for MCP hosts are ordinary access tokens of the account (its current roles) with
the MCP endpoint as audience (RFC 8707), the grant's scope, its id (`sid`) and the client's.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import NoReturn

import jwt
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.auth import grant_store, oauth_store, refresh_tokens, store
from formation_mcp.auth.client_metadata import REFRESH_TOKEN
from formation_mcp.auth.grant_store import GrantRecord
from formation_mcp.auth.grants import (
    CODE_REUSED,
    REFRESH_TOKEN_REUSED,
    REVOKED_BY_CLIENT,
    GrantManager,
)
from formation_mcp.auth.keys import account_name
from formation_mcp.auth.oauth_errors import OAuthError, invalid_grant, invalid_scope, invalid_target
from formation_mcp.auth.oauth_rules import (
    RuleError,
    canonical_resource,
    narrower_scope,
    parse_scope,
    pkce_matches,
    secret_hash,
)
from formation_mcp.auth.oauth_store import ClientRecord, RequestRecord
from formation_mcp.auth.tokens import TokenIssuer, TokenVerifier
from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.errors import FmcpError, Unauthenticated
from formation_mcp.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenResponse:
    """RFC 6749 §5.1."""

    access_token: str
    expires_in: int
    scope: str
    refresh_token: str | None

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


def _same_resource(given: str, expected: str) -> bool:
    try:
        return canonical_resource(given) == canonical_resource(expected)
    except RuleError:
        return False


class OAuthTokenManager:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        grants: GrantManager,
        issuer: TokenIssuer,
        verifier: TokenVerifier,
    ) -> None:
        self._db = database
        self._settings = settings
        self._grants = grants
        self._issuer = issuer
        self._verifier = verifier

    async def exchange(
        self,
        client: ClientRecord,
        code: str,
        redirect_uri: str,
        verifier: str,
        resource: str,
        address: str,
    ) -> TokenResponse:
        """grant_type=authorization_code. A code is spent once: presenting it again revokes
        the grant it made (RFC 6749 §4.1.2)."""
        if not code:
            raise invalid_grant("code is required")
        now = now_us()
        async with self._db.read() as conn:
            request = await oauth_store.get_request_by_code(conn, secret_hash(code))
        if request is None or request.client_id != client.client_id:
            raise invalid_grant("unknown authorization code")
        if request.status == oauth_store.EXCHANGED:
            await self._code_reused(request, now, address)
        refusal = self._refusal(request, now, redirect_uri, verifier, resource)
        if refusal is not None:
            await self._audit_refusal(request, refusal, now, address)
            raise refusal
        grant_id = uuid.uuid4().hex
        async with self._db.write() as conn:
            made = await self._new_grant(conn, client, request, grant_id, now, address)
        if made is None:  # another request spent the code a moment ago
            await self._code_reused(request, now, address)
        roles, grant, refresh_token = made
        log.info(
            "oauth grant",
            extra={
                "grant": grant_id,
                "client": client.client_id,
                "account": account_name(grant.key_id),
            },
        )
        return self._tokens(roles, grant, now, refresh_token, grant.scope)

    async def _new_grant(
        self,
        conn: AsyncConnection,
        client: ClientRecord,
        request: RequestRecord,
        grant_id: str,
        now: int,
        address: str,
    ) -> tuple[tuple[str, ...], GrantRecord, str | None] | None:
        """Spend the code and make the grant (None when the code was spent meanwhile): the
        account's roles, the grant, its first refresh token."""
        if not await oauth_store.exchange_code(conn, request.id, grant_id):
            return None
        assert request.key_id is not None and request.granted_scope is not None
        account = await self._account(conn, request.key_id)
        refresh = None
        expire = now + int(self._settings.refresh_token_ttl_seconds * 1_000_000)
        if REFRESH_TOKEN in client.metadata.grant_types:
            refresh, expire = await refresh_tokens.mint(
                conn, request.key_id, grant_id, self._settings.refresh_token_ttl_seconds, now
            )
        grant = GrantRecord(
            id=grant_id,
            key_id=request.key_id,
            kind=grant_store.OAUTH,
            client_id=client.client_id,
            client_name=client.metadata.client_name,
            scope=request.granted_scope,
            resource=request.resource,
            create_time=now,
            last_use_time=now,
            expire_time=expire,
        )
        await self._grants.record(conn, grant, grant_store.GRANTED, address=address)
        return account.roles, grant, refresh

    def _refusal(
        self, request: RequestRecord, now: int, redirect_uri: str, verifier: str, resource: str
    ) -> OAuthError | None:
        if request.status != oauth_store.ISSUED or request.code_expire_time is None:
            return invalid_grant("unknown authorization code")
        if request.code_expire_time < now:
            return invalid_grant("the authorization code expired; sign in again")
        if redirect_uri != request.redirect_uri:
            return invalid_grant("redirect_uri is not the one the code was issued for")
        if not pkce_matches(verifier, request.code_challenge):
            return invalid_grant("code_verifier does not match the code_challenge (PKCE S256)")
        if resource and not _same_resource(resource, request.resource):
            return invalid_target(f"the code was issued for the resource {request.resource}")
        return None

    async def _code_reused(self, request: RequestRecord, now: int, address: str) -> NoReturn:
        """A spent code presented again: it leaked, so what it bought is revoked."""
        if request.grant_id:
            async with self._db.write() as conn:
                payload = await self._grants.revoke_within(
                    conn, request.grant_id, now, CODE_REUSED, address=address
                )
                await grant_store.audit(
                    conn,
                    [
                        grant_store.audit_row(
                            grant_store.CODE_REUSED,
                            now=now,
                            account=account_name(request.key_id or ""),
                            grant_id=request.grant_id,
                            client_id=request.client_id,
                            address=address,
                        )
                    ],
                )
            self._grants.committed(payload)
            log.warning(
                "authorization code reused: grant revoked", extra={"grant": request.grant_id}
            )
        raise invalid_grant("the authorization code was already used; its tokens are revoked")

    async def _audit_refusal(
        self, request: RequestRecord, refusal: OAuthError, now: int, address: str
    ) -> None:
        async with self._db.write() as conn:
            await grant_store.audit(
                conn,
                [
                    grant_store.audit_row(
                        grant_store.REFUSED,
                        now=now,
                        account=account_name(request.key_id or ""),
                        client_id=request.client_id,
                        scope=request.granted_scope or "",
                        address=address,
                        detail=f"{refusal.error}: {refusal.description}",
                    )
                ],
            )

    async def refresh(
        self, client: ClientRecord, refresh_token: str, resource: str, scope: str, address: str
    ) -> TokenResponse:
        """grant_type=refresh_token: rotate, as logins do; a reused token revokes the grant."""
        if REFRESH_TOKEN not in client.metadata.grant_types:
            raise OAuthError("unauthorized_client", "this client did not register refresh_token")
        now = now_us()
        payload = ""
        async with self._db.write() as conn:
            try:
                row, spent = await refresh_tokens.spend(conn, refresh_token, now)
            except FmcpError as error:
                raise invalid_grant(error.message) from None
            grant = await grant_store.get_grant(conn, row.family_id)
            if (
                grant is None
                or grant.kind != grant_store.OAUTH
                or grant.client_id != client.client_id
            ):
                raise invalid_grant("unknown or revoked refresh token")
            if resource and not _same_resource(resource, grant.resource):
                raise invalid_target(f"this grant's tokens are for {grant.resource}")
            try:
                token_scope = (
                    narrower_scope(grant.scope, parse_scope(scope)) if scope else grant.scope
                )
            except RuleError as error:
                raise invalid_scope(str(error)) from None
            if spent:
                account = await self._account(conn, row.key_id)
                successor = await refresh_tokens.mint(
                    conn, row.key_id, row.family_id, self._settings.refresh_token_ttl_seconds, now
                )
                await grant_store.touch_grant(conn, row.family_id, now, successor[1])
            else:
                payload = await self._grants.revoke_within(
                    conn, row.family_id, now, REFRESH_TOKEN_REUSED, address=address
                )
        if payload:
            self._grants.committed(payload)
            log.warning("oauth refresh token reused: grant revoked", extra={"grant": row.family_id})
            raise invalid_grant(
                "this refresh token was already used, so it leaked: the grant is revoked"
            )
        return self._tokens(account.roles, grant, now, successor[0], token_scope)

    async def revoke(self, client: ClientRecord, token: str, hint: str, address: str) -> None:
        """RFC 7009: a refresh token or an access token of this client ends its whole grant.
        A token that is not one (or not this client's) is ignored, as the RFC asks."""
        grant_id = await self._grant_of(token, hint)
        if not grant_id:
            return
        async with self._db.write() as conn:
            grant = await grant_store.get_grant(conn, grant_id)
            if (
                grant is None
                or grant.kind != grant_store.OAUTH
                or grant.client_id != client.client_id
            ):
                return
            payload = await self._grants.revoke_within(
                conn, grant_id, now_us(), REVOKED_BY_CLIENT, address=address
            )
        self._grants.committed(payload)

    async def _grant_of(self, token: str, hint: str) -> str:
        """The grant a presented token belongs to, or "" when it is none of ours."""
        if not token:
            return ""
        if hint != "access_token":
            async with self._db.read() as conn:
                row = await store.get_refresh_token(conn, refresh_tokens.token_hash(token))
            if row is not None:
                return row.family_id
        try:  # an access token: ours only if it verifies for the audience it names
            audience = jwt.decode(token, options={"verify_signature": False}).get("aud")
        except jwt.InvalidTokenError:
            return ""
        if not isinstance(audience, str):
            return ""
        try:
            caller = await self._verifier.verify(token, audience)
        except Unauthenticated:
            return ""
        return caller.grant_id

    @staticmethod
    async def _account(conn: AsyncConnection, kid: str) -> store.AccountRecord:
        """The grant's account, if it may still get tokens (invalid_grant otherwise)."""
        account = await store.get_account(conn, kid)
        if account is None or account.disabled:
            raise invalid_grant("the account is disabled; its owner must sign in again")
        return account

    def _tokens(
        self,
        roles: tuple[str, ...],
        grant: GrantRecord,
        now: int,
        refresh_token: str | None,
        scope: str,
    ) -> TokenResponse:
        access = self._issuer.issue(
            account_name(grant.key_id),
            roles,
            now,
            audience=grant.resource,
            scope=scope,
            grant_id=grant.id,
            client_id=grant.client_id,
        )
        return TokenResponse(access.token, self._issuer.ttl_seconds, scope, refresh_token)
