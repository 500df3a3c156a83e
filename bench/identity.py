"""Who the benchmarks call as: the one place that knows how the server identifies callers.

Before Auth, the server trusts the `x-fmcp-account` metadata (default account `local`). Once
`formation_mcp.auth` exists, calls need a bearer access token: we write the server's signing
key into its data dir before it starts (it loads and publishes that key) and sign a token for
a made-up account with role `user` with it. Imported dynamically, so this module type-checks
and runs on both sides of that change.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formation_mcp.settings import Settings

DEV_ACCOUNT = "local"
BENCH_KEY_ID = "bench-caller"


@dataclass(frozen=True, slots=True)
class Identity:
    owner: str
    """What the store keeps as the owner of the caller's operations."""
    metadata: tuple[tuple[str, str], ...]
    """Call metadata that makes the server see this caller."""

    @property
    def headers(self) -> tuple[str, ...]:
        """The same as HTTP/2 header lines, for curl and h2load."""
        return tuple(f"{key}: {value}" for key, value in self.metadata)


def _auth_module(name: str) -> Any | None:
    try:
        return importlib.import_module(f"formation_mcp.auth.{name}")
    except ImportError:
        return None


def describe() -> str:
    if _auth_module("keys") is None or _auth_module("tokens") is None:
        return f"callers identify with x-fmcp-account: {DEV_ACCOUNT} (no Auth in this tree)"
    return "callers present a bearer access token signed with the server's own key (Auth)"


def for_server(data_dir: Path, audience: str | None = None) -> Identity:
    """The caller for a server that will run with FMCP_DATA_DIR=data_dir (call it before the
    server starts: with Auth this creates the server's signing key). `audience`: the resource
    the token is for when it is not the API, e.g. the MCP endpoint's URL (MCP hosts' tokens
    name it; the API's own are refused there)."""
    keys, tokens = _auth_module("keys"), _auth_module("tokens")
    if keys is None or tokens is None:
        return Identity(DEV_ACCOUNT, (("x-fmcp-account", DEV_ACCOUNT),))
    settings: Any = Settings(data_dir=data_dir)  # its Auth fields exist only with Auth
    signing_key = keys.load_or_create_signing_key(settings.effective_signing_key_file)
    issuer = tokens.TokenIssuer(
        signing_key,
        settings.auth_issuer,
        settings.auth_audience,
        settings.access_token_ttl_seconds,
    )
    account = f"accounts/{BENCH_KEY_ID}"
    if audience is None:
        token = issuer.issue(account, ("user",)).token
    else:
        token = issuer.issue(account, ("user",), audience=audience).token
    return Identity(account, (("authorization", f"Bearer {token}"),))
