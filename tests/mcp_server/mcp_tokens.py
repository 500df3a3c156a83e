"""Access tokens for the MCP endpoint, as the authorization server issues them to an MCP host
its owner approved (audience: the endpoint's URL), made here without the browser round-trip so
tests of the endpoint itself stay short. The flow that issues them is tested in tests/oauth."""

from __future__ import annotations

import jwt

from formation_mcp.app import Application
from formation_mcp.auth.tokens import TokenIssuer
from formation_mcp.permissions import FULL_SCOPE


def mcp_token(app: Application, api_token: str, mcp_url: str, scope: str = FULL_SCOPE) -> str:
    """A token for `mcp_url` of the account (and roles) of the API token `api_token`."""
    claims = jwt.decode(api_token, options={"verify_signature": False})
    issuer = TokenIssuer(
        app.signing_key,
        app.settings.auth_issuer,
        app.settings.auth_audience,
        app.settings.access_token_ttl_seconds,
    )
    issued = issuer.issue(str(claims["sub"]), tuple(claims["roles"]), audience=mcp_url, scope=scope)
    return issued.token
