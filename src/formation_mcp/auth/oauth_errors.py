"""OAuth protocol errors (RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2, RFC 8707 §2): what the
authorization server's HTTP endpoints answer, as `error` and `error_description`."""

from __future__ import annotations


class OAuthError(Exception):
    """`error` is the RFC's code (invalid_request, invalid_client, invalid_grant,
    unauthorized_client, unsupported_grant_type, invalid_scope, invalid_target, access_denied,
    invalid_client_metadata, invalid_redirect_uri, ...); `status` the HTTP status a token or
    registration endpoint answers with."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_target(description: str) -> OAuthError:
    return OAuthError("invalid_target", description)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)
