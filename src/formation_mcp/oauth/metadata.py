"""The authorization server's discovery document (RFC 8414), at
/.well-known/oauth-authorization-server on the host the client reached (the issuer the
protected-resource metadata names)."""

from __future__ import annotations

from typing import Any

from formation_mcp.auth.client_metadata import AUTH_METHODS, GRANT_TYPES
from formation_mcp.auth.oauth_rules import SCOPES_SUPPORTED

AUTHORIZE_PATH = "/oauth/authorize"
REQUEST_PAGE_PATH = "/oauth/requests"
TOKEN_PATH = "/oauth/token"
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
JWKS_PATH = "/oauth/jwks"


def authorization_server_metadata(issuer: str) -> dict[str, Any]:
    """`issuer` is scheme://host as the client reached us; every endpoint is under it."""
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + AUTHORIZE_PATH,
        "token_endpoint": issuer + TOKEN_PATH,
        "registration_endpoint": issuer + REGISTER_PATH,
        "revocation_endpoint": issuer + REVOKE_PATH,
        "jwks_uri": issuer + JWKS_PATH,
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": True,
    }
