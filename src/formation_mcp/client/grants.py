"""`client.grants` (the account's sessions and MCP hosts: list, revoke) and
`client.authorizations` (an MCP host's sign-in request: read it, approve or deny it with the
key, as `fmcp authorize CODE` does)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc

from formation_mcp.auth.challenges import authorization_message
from formation_mcp.auth.keys import key_id, public_bytes
from formation_mcp.client.errors import FmcpClientError
from formation_mcp.client.models import AuthorizationRequest, Grant

if TYPE_CHECKING:
    from formation_mcp.client.client import Client

AUTHORIZATION_PREFIX = "authorizationRequests/"


def authorization_request_name(code: str) -> str:
    """`authorizationRequests/{code}` from a code as the sign-in page shows it (or a name)."""
    code = code.strip()
    return code if code.startswith(AUTHORIZATION_PREFIX) else AUTHORIZATION_PREFIX + code


@dataclass(frozen=True, slots=True)
class ConsoleLink:
    """A one-time sign-in link's code for the web console: open `url(base)` within a minute."""

    code: str
    path: str
    expire_time: datetime

    def url(self, base: str) -> str:
        """The link on the front door at `base` (e.g. `http://127.0.0.1:8080`)."""
        return base.rstrip("/") + self.path


def grant_name(name: str) -> str:
    return name if name.startswith("grants/") else f"grants/{name}"


def decision_signature(
    key: Ed25519PrivateKey, request: AuthorizationRequest, decision: str
) -> bytes:
    """The key's signature of the decision on `request` (`approve full`, `approve read-only`
    or `deny`), over the exact text the server checks."""
    if request.expire_time is None:
        raise FmcpClientError("the sign-in request has no expiry time", client_side=True)
    expire_us = int(request.expire_time.timestamp()) * 1_000_000 + request.expire_time.microsecond
    message = authorization_message(
        domain=request.domain,
        kid=key_id(public_bytes(key)),
        request=request.name,
        nonce=request.nonce,
        client_id=request.client_id,
        redirect_uri=request.redirect_uri,
        resource=request.resource,
        decision=decision,
        expire_at=expire_us,
    )
    return key.sign(message)


class GrantsAPI:
    """`client.grants`: the account's login sessions and the MCP hosts it approved."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return auth_pb2_grpc.AuthServiceStub(self._client.channel)

    async def list(
        self, filter: str = "", *, page_size: int = 0, limit: int | None = None
    ) -> AsyncIterator[Grant]:
        """Newest first, fetching pages as you iterate (`filter`: `kind = OAUTH`,
        `state = ACTIVE`, joined by AND); stops after `limit`."""
        page_token = ""
        seen = 0
        while True:
            page: auth_pb2.ListGrantsResponse = await self._client.unary(
                self._stub().ListGrants,
                auth_pb2.ListGrantsRequest(
                    filter=filter, page_size=page_size, page_token=page_token
                ),
                idempotent=True,
            )
            for message in page.grants:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield Grant.from_proto(message)
            page_token = page.next_page_token
            if not page_token:
                return

    async def revoke(self, name: str) -> Grant:
        """End a grant (`grants/{id}` or the id): its refresh and access tokens stop working."""
        grant: auth_pb2.Grant = await self._client.unary(
            self._stub().RevokeGrant,
            auth_pb2.RevokeGrantRequest(name=grant_name(name)),
            idempotent=True,
        )
        return Grant.from_proto(grant)

    async def console_link(self) -> ConsoleLink:
        """A one-time sign-in link for the web console, as this account (and this token's
        scope): exchanged once, within a minute, for a console session (a new grant of
        sorts, ended by signing out of the console)."""
        link: auth_pb2.ConsoleLink = await self._client.unary(
            self._stub().CreateConsoleLink, auth_pb2.CreateConsoleLinkRequest(), idempotent=False
        )
        return ConsoleLink(link.code, link.path, link.expire_time.ToDatetime(tzinfo=UTC))


class AuthorizationsAPI:
    """`client.authorizations`: an MCP host's sign-in request, decided with the client's key."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> auth_pb2_grpc.AuthServiceAsyncStub:
        return auth_pb2_grpc.AuthServiceStub(self._client.channel)

    def _key(self) -> Ed25519PrivateKey:
        key = self._client.token_source.key
        if key is None:
            raise FmcpClientError(
                "deciding a sign-in request needs the account's Ed25519 key, not a token",
                client_side=True,
            )
        return key

    async def get(self, code: str) -> AuthorizationRequest:
        """The request whose code is `code` (as the sign-in page shows it)."""
        request: auth_pb2.AuthorizationRequest = await self._client.unary(
            self._stub().GetAuthorizationRequest,
            auth_pb2.GetAuthorizationRequestRequest(name=authorization_request_name(code)),
            idempotent=True,
            authenticated=False,
        )
        return AuthorizationRequest.from_proto(request)

    async def approve(
        self, code: str, *, scope: str | None = None, shown: AuthorizationRequest | None = None
    ) -> AuthorizationRequest:
        """Approve with the key: the host gets tokens for this account, with the scope asked
        for or the narrower `scope` (`read-only`). `shown` is the request as the user saw it
        (from `get`): the signature then covers exactly that."""
        request = shown or await self.get(code)
        key = self._key()
        granted = scope or request.scope
        decided: auth_pb2.AuthorizationRequest = await self._client.unary(
            self._stub().ApproveAuthorizationRequest,
            auth_pb2.ApproveAuthorizationRequestRequest(
                name=request.name,
                public_key=public_bytes(key),
                signature=decision_signature(key, request, f"approve {granted}"),
                scope=granted,
            ),
            idempotent=True,
            authenticated=False,
        )
        return AuthorizationRequest.from_proto(decided)

    async def deny(
        self, code: str, *, shown: AuthorizationRequest | None = None
    ) -> AuthorizationRequest:
        """Deny with the key: the host is told access_denied."""
        request = shown or await self.get(code)
        key = self._key()
        decided: auth_pb2.AuthorizationRequest = await self._client.unary(
            self._stub().DenyAuthorizationRequest,
            auth_pb2.DenyAuthorizationRequestRequest(
                name=request.name,
                public_key=public_bytes(key),
                signature=decision_signature(key, request, "deny"),
            ),
            idempotent=True,
            authenticated=False,
        )
        return AuthorizationRequest.from_proto(decided)
