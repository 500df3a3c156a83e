"""The MCP endpoint as an OAuth 2.1 resource server (MCP authorization, RFC 9728, RFC 8707).

Bearer tokens are access tokens for this endpoint: issued by our authorization server to an
MCP host the account approved, with the endpoint's URL as their audience (the resource the
host named). They are verified as the gRPC interceptor verifies the API's tokens (signature,
issuer, expiry, revocation), with that audience: a token for any other resource, the API's
own tokens included, is refused with 401, and this endpoint's tokens are refused by the API.

The protected-resource metadata names the resource and the authorization server (the same
host) as the client reached them (`formation_mcp.public_urls`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from formation_mcp.auth.oauth_rules import SCOPES_SUPPORTED
from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.errors import Unauthenticated
from formation_mcp.proxies import ProxyTrust
from formation_mcp.public_urls import (
    MCP_PATH,
    RESOURCE_METADATA_PATH,
    base_url,
    mcp_resource_url,
    resource_metadata_url,
)

__all__ = ["MCP_PATH", "RESOURCE_METADATA_PATH", "BearerAuthenticator", "Verified"]


def resource_metadata(connection: HTTPConnection, issuer: str, proxies: ProxyTrust) -> Response:
    """RFC 9728 metadata: the resource, and our authorization server on the same host
    (RFC 8414 metadata at /.well-known/oauth-authorization-server)."""
    document = {
        "resource": mcp_resource_url(connection, proxies),
        "authorization_servers": [base_url(connection, proxies)],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(SCOPES_SUPPORTED),
        "resource_name": "Formation MCP control plane",
        "formation_mcp_token_issuer": issuer,
    }
    return JSONResponse(
        document,
        headers={"cache-control": "max-age=3600", "access-control-allow-origin": "*"},
    )


def unauthorized(
    connection: HTTPConnection, proxies: ProxyTrust, description: str, *, token_given: bool
) -> Response:
    """401 with the challenge that leads a client to the metadata (RFC 6750 §3, RFC 9728 §5.1):
    no `error` when no token was sent, `invalid_token` when one was and failed."""
    parts = [f'resource_metadata="{resource_metadata_url(connection, proxies)}"']
    if token_given:
        parts += ['error="invalid_token"', f'error_description="{_quoted(description)}"']
    error = "invalid_token" if token_given else "unauthorized"
    body = {"error": error, "error_description": description}
    return Response(
        json.dumps(body),
        status_code=401,
        media_type="application/json",
        headers={"www-authenticate": "Bearer " + ", ".join(parts)},
    )


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


@dataclass(frozen=True, slots=True)
class Verified:
    user: AuthenticatedUser


class BearerAuthenticator:
    def __init__(self, verifier: TokenVerifier, issuer: str, proxies: ProxyTrust) -> None:
        self._verifier = verifier
        self._issuer = issuer
        self._proxies = proxies

    async def authenticate(self, connection: HTTPConnection) -> Verified | Response:
        """The caller, as the SDK's session manager knows users (a session stays bound to the
        account that opened it), or the 401 to send."""
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if not header:
            return unauthorized(
                connection, self._proxies, "an access token is required", token_given=False
            )
        if scheme.lower() != "bearer" or not token:
            return unauthorized(
                connection,
                self._proxies,
                "the authorization header must be `Bearer <token>`",
                token_given=True,
            )
        audience = mcp_resource_url(connection, self._proxies)
        try:
            caller = await self._verifier.verify(token, audience)
        except Unauthenticated as exc:
            return unauthorized(connection, self._proxies, exc.message, token_given=True)
        access = AccessToken(
            token=token,
            client_id=caller.account,
            scopes=[caller.scope],
            resource=audience,
            expires_at=caller.token_expire_time // 1_000_000,
            subject=caller.account,
            claims={"iss": self._issuer},
        )
        return Verified(AuthenticatedUser(access))
