"""The server's URLs as a client reached them: the MCP endpoint (the protected resource, and
the audience of MCP hosts' tokens) and the authorization server (its issuer identifier).

They are the Host the client asked for, with the scheme a trusted front door forwarded (see
`formation_mcp.proxies`: our Envoy overwrites x-forwarded-proto with the client's scheme), else
the connection's own; so they are right behind any front door without another setting.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from formation_mcp.proxies import (
    FORWARDED_FOR_HEADER,
    FORWARDED_PROTO_HEADER,
    PROXY_SECRET_HEADER,
    ProxyTrust,
)

MCP_PATH = "/mcp"
RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource"
AUTHORIZATION_SERVER_METADATA_PATH = "/.well-known/oauth-authorization-server"


def base_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """scheme://host the client used: x-forwarded-proto counts only from a trusted proxy, and
    only as http or https."""
    scheme = connection.url.scheme
    peer = connection.client.host if connection.client is not None else ""
    if proxies.trusts(peer, connection.headers.getlist(PROXY_SECRET_HEADER)):
        forwarded = connection.headers.get(FORWARDED_PROTO_HEADER, "").split(",")[0]
        if forwarded.strip().lower() in ("http", "https"):
            scheme = forwarded.strip().lower()
    host = connection.headers.get("host") or connection.url.netloc
    return f"{scheme}://{host.lower()}"


def mcp_resource_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """The MCP endpoint as a resource (RFC 8707, RFC 9728): what MCP hosts' tokens name as
    their audience."""
    return base_url(connection, proxies) + MCP_PATH


def resource_metadata_url(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """RFC 9728 §3.1: the well-known prefix inserted before the resource's path."""
    return base_url(connection, proxies) + RESOURCE_METADATA_PATH + MCP_PATH


def client_address(connection: HTTPConnection, proxies: ProxyTrust) -> str:
    """The client's address (behind a trusted proxy, the one it forwarded)."""
    peer = connection.client.host if connection.client is not None else ""
    return proxies.client_address(
        peer,
        connection.headers.getlist(FORWARDED_FOR_HEADER),
        connection.headers.getlist(PROXY_SECRET_HEADER),
    )
