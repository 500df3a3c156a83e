"""Who the gRPC caller is: the address login rate limits key on (see `formation_mcp.proxies`
for when a front door's x-forwarded-for is believed)."""

from __future__ import annotations

from formation_mcp.api.wrapping import Context
from formation_mcp.proxies import FORWARDED_FOR_HEADER, PROXY_SECRET_HEADER, ProxyTrust


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string (`ipv4:10.1.2.3:5555`, `ipv6:[::1]:5555`, the brackets
    sometimes percent-encoded); other kinds (`unix:/path`) are returned whole."""
    kind, _, rest = peer.partition(":")
    if kind not in ("ipv4", "ipv6"):
        return peer
    host = rest.rpartition(":")[0]
    return host.replace("%5B", "").replace("%5D", "").strip("[]")


def metadata_values(context: Context, key: str) -> list[str]:
    """Every value of an invocation metadata key (keys are lower-case), in order."""
    return [
        value if isinstance(value, str) else value.decode()
        for entry_key, value in context.invocation_metadata() or ()
        if entry_key == key
    ]


def client_address(context: Context, trust: ProxyTrust) -> str:
    """The caller's address: its direct peer, or behind a trusted proxy the client address
    the proxy forwarded."""
    return trust.client_address(
        peer_host(context.peer() or ""),
        metadata_values(context, FORWARDED_FOR_HEADER),
        metadata_values(context, PROXY_SECRET_HEADER),
    )
