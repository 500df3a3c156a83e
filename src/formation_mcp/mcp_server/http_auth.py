"""The MCP endpoint as an OAuth 2.1 resource server (MCP 2025-11-25 authorization, RFC 9728).

Bearer tokens are our Auth service's access tokens, verified exactly as the gRPC interceptor
verifies them (signature, issuer, expiry, revocation and audience = FMCP_AUTH_AUDIENCE: the
MCP endpoint is one more face of the same resource, the control plane, and forwards the token
only to that resource's own gRPC API). A token for any other audience is refused with 401.

The protected-resource metadata names the resource as the client reached it (the Host it
asked for; the scheme a trusted front door forwarded, see `formation_mcp.proxies`, else the
connection's own), so it is right behind any front door without another setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response

from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.errors import Unauthenticated
from formation_mcp.proxies import FORWARDED_PROTO_HEADER, PROXY_SECRET_HEADER, ProxyTrust

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"


def base_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """scheme://host the client used: x-forwarded-proto counts only from a trusted proxy
    (our Envoy overwrites it with the client's scheme), and only as http or https."""
    scheme = connection.url.scheme
    peer = connection.client.host if connection.client is not None else ""
    if proxies.trusts(peer, connection.headers.getlist(PROXY_SECRET_HEADER)):
        forwarded = connection.headers.get(FORWARDED_PROTO_HEADER, "").split(",")[0]
        if forwarded.strip().lower() in ("http", "https"):
            scheme = forwarded.strip().lower()
    host = connection.headers.get("host") or connection.url.netloc
    return f"{scheme}://{host}"


def resource_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    return base_url(connection, proxies) + MCP_PATH


def metadata_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """RFC 9728 §3.1: the well-known prefix inserted before the resource's path."""
    return base_url(connection, proxies) + METADATA_PATH + MCP_PATH


def resource_metadata(connection: HTTPConnection, issuer: str, proxies: ProxyTrust) -> Response:
    """RFC 9728 metadata. Our Auth service (Ed25519 challenge login, `/v1/auth/*` on the same
    host) is the authorization server; `fmcp token` prints an access token for hosts that take
    a bearer header."""
    document = {
        "resource": resource_url(connection, proxies),
        "authorization_servers": [base_url(connection, proxies)],
        "bearer_methods_supported": ["header"],
        "scopes_supported": [],
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
    parts = [f'resource_metadata="{metadata_url(connection, proxies)}"']
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
        try:
            caller = await self._verifier.verify(token)
        except Unauthenticated as exc:
            return unauthorized(connection, self._proxies, exc.message, token_given=True)
        access = AccessToken(
            token=token,
            client_id=caller.account,
            scopes=[],
            expires_at=caller.token_expire_time // 1_000_000,
            subject=caller.account,
            claims={"iss": self._issuer},
        )
        return Verified(AuthenticatedUser(access))
