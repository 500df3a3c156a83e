"""Which browser origins may reach the MCP endpoint (the Streamable HTTP transport says: check
`Origin`, or a web page could drive a local server through DNS rebinding)."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """No `Origin` (not a browser) passes; a loopback origin (any port, http or https) passes;
    otherwise only the configured origins (FMCP_MCP_ALLOWED_ORIGINS), compared exactly."""

    def __init__(self, allowed: tuple[str, ...] = ()) -> None:
        self._allowed = frozenset(normalize_origin(origin) for origin in allowed)

    def allows(self, origin: str | None) -> bool:
        if origin is None:
            return True
        normalized = normalize_origin(origin)
        if normalized in self._allowed:
            return True
        try:
            parts = urlsplit(normalized)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a malformed port
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and host in LOOPBACK_HOSTS
