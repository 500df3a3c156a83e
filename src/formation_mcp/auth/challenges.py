"""The login challenge: the exact, domain-separated text a key signs."""

from __future__ import annotations

from datetime import UTC, datetime

PREFIX = "formation-mcp-login-v1"


def rfc3339(micros: int) -> str:
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def challenge_message(
    *, domain: str, kid: str, nonce: str, challenge_id: str, issued_at: int, expire_at: int
) -> bytes:
    """Every field on its own line; nothing the client controls can add a line."""
    lines = [
        PREFIX,
        f"domain: {domain}",
        f"key_id: {kid}",
        f"nonce: {nonce}",
        f"issued_at: {rfc3339(issued_at)}",
        f"expiration_time: {rfc3339(expire_at)}",
        f"challenge_id: {challenge_id}",
    ]
    return "\n".join(lines).encode()


AUTHORIZE_PREFIX = "formation-mcp-authorize-v1"


def authorization_message(
    *,
    domain: str,
    kid: str,
    request: str,
    nonce: str,
    client_id: str,
    redirect_uri: str,
    resource: str,
    decision: str,
    expire_at: int,
) -> bytes:
    """What a key signs to approve (`decision` = `approve full` or `approve read-only`) or deny
    (`deny`) an MCP host's authorization request: every field on its own line, none of them
    able to hold a line break (the server refuses such values), so the text says exactly which
    request, client, redirect and resource the decision is for. `request` is the request's
    name (`authorizationRequests/{code}`), `nonce` the request's own (AuthorizationRequest.nonce),
    `expire_at` its expiry in µs."""
    lines = [
        AUTHORIZE_PREFIX,
        f"domain: {domain}",
        f"key_id: {kid}",
        f"request: {request}",
        f"nonce: {nonce}",
        f"client_id: {client_id}",
        f"redirect_uri: {redirect_uri}",
        f"resource: {resource}",
        f"decision: {decision}",
        f"expiration_time: {rfc3339(expire_at)}",
    ]
    return "\n".join(lines).encode()
