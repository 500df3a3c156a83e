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
