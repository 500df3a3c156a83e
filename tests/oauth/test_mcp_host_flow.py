"""An MCP host signs in the way Claude, Cursor and the Inspector do: the official SDK's OAuth
client, headless, through Envoy. Discovery starts from the 401, the client registers, the
person approves with `fmcp authorize CODE`, the host gets tokens for the MCP endpoint, lists
and calls tools, refreshes when its access token expires, and loses access when the grant is
revoked."""

from __future__ import annotations

import json
import time

import httpx
from tests.oauth.host import HeadlessUser, Host, ManualHost, connected, make_host
from tests.support.cli import Fmcp
from tests.support.waiting import eventually

from formation_mcp.app import Application

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


async def post_mcp(url: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(
            url, json=INITIALIZE, headers=ACCEPT | {"authorization": f"Bearer {token}"}
        )


async def sessions(fmcp: Fmcp, *args: str) -> list[dict[str, object]]:
    result = await fmcp("account", "sessions", *args, "-o", "json")
    assert result.exit_code == 0, result.output
    listed: list[dict[str, object]] = json.loads(result.output)
    return listed


async def signed_in_host(mcp_url: str, user: HeadlessUser) -> Host:
    host = make_host(mcp_url, user)
    async with connected(mcp_url, host) as client:
        await client.list_tools()
    return host


async def test_a_host_discovers_registers_signs_in_with_the_key_and_calls_tools(
    mcp_url: str, front_door: str, user: HeadlessUser
) -> None:
    host = make_host(mcp_url, user)
    async with connected(mcp_url, host) as client:
        listed = await client.list_tools()
        result = await client.call_tool("test_echo", {"text": "signed in"})
    assert "test_echo" in {tool.name for tool in listed.tools}
    assert result.is_error is False and result.structured_content == {"echo": "signed in"}
    steps = [(method, path, status) for method, path, status in host.exchange.requests]
    assert steps[:6] == [
        ("POST", "/mcp", 401),
        ("GET", "/.well-known/oauth-protected-resource/mcp", 200),
        ("GET", "/.well-known/oauth-authorization-server", 200),
        ("POST", "/oauth/register", 201),
        ("POST", "/oauth/token", 200),
        ("POST", "/mcp", 200),
    ]
    # The page said which client asks, for what, and the code; the CLI showed it and approved.
    page = user.pages[0]
    assert "Test Host" in page and f"{front_door}/mcp" in page and "full:" in page
    assert (
        "Sign-in request" in user.outputs[0]
        and "approved: Test Host has full access" in (user.outputs[0])
    )
    # The browser went back with the code and the host's state, and nothing else.
    assert set(httpx.URL(user.redirects[0]).params) == {"code", "state"}
    tokens = host.storage.tokens
    assert tokens is not None and tokens.refresh_token and tokens.scope == "full"
    assert tokens.access_token not in user.redirects[0]


async def test_the_hosts_grant_is_listed_with_the_users_sessions(
    mcp_url: str, user: HeadlessUser, fmcp: Fmcp
) -> None:
    await signed_in_host(mcp_url, user)
    listed = await sessions(fmcp)
    oauth = [grant for grant in listed if grant["kind"] == "OAUTH"]
    assert len(oauth) == 1 and oauth[0]["client_name"] == "Test Host"
    assert oauth[0]["resource"] == mcp_url and oauth[0]["state"] == "ACTIVE"
    assert {grant["kind"] for grant in listed} == {"OAUTH", "LOGIN"}  # the CLI's own session


async def test_the_host_refreshes_its_token_after_it_expires(
    mcp_url: str, user: HeadlessUser
) -> None:
    host = make_host(mcp_url, user)
    async with connected(mcp_url, host) as client:
        await client.list_tools()
        first = host.storage.tokens
        assert first is not None and first.expires_in is not None
        expiry = time.time() + first.expires_in

        async def expired() -> bool:
            return time.time() > expiry

        await eventually(expired)
        result = await client.call_tool("test_echo", {"text": "after refresh"})
    assert result.structured_content == {"echo": "after refresh"}
    second = host.storage.tokens
    assert second is not None
    assert second.access_token != first.access_token
    assert second.refresh_token and second.refresh_token != first.refresh_token  # rotated
    assert host.exchange.requests.count(("POST", "/oauth/token", 200)) == 2
    assert len(user.pages) == 1  # no second sign-in


async def test_revoking_the_grant_ends_the_hosts_access_at_once(
    mcp_url: str, user: HeadlessUser, fmcp: Fmcp, oauth_app: Application
) -> None:
    host = await signed_in_host(mcp_url, user)
    tokens = host.storage.tokens
    assert tokens is not None and tokens.refresh_token
    assert (await post_mcp(mcp_url, tokens.access_token)).status_code == 200
    grant = next(g for g in await sessions(fmcp) if g["kind"] == "OAUTH")
    revoked = await fmcp("account", "sessions", "revoke", str(grant["name"]))
    assert revoked.exit_code == 0, revoked.output
    assert "revoked: grants/" in revoked.output
    refused = await post_mcp(mcp_url, tokens.access_token)
    assert refused.status_code == 401
    assert "revoked" in refused.headers["www-authenticate"]
    client_id = host.storage.client_info.client_id if host.storage.client_info else ""
    manual = ManualHost(mcp_url.removesuffix("/mcp"), client_id)
    again = await manual.token(grant_type="refresh_token", refresh_token=tokens.refresh_token)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert [g["state"] for g in await sessions(fmcp, "--all") if g["kind"] == "OAUTH"] == [
        "REVOKED"
    ]


async def test_the_host_can_revoke_its_own_grant(mcp_url: str, user: HeadlessUser) -> None:
    """RFC 7009: the refresh token (or an access token) ends the whole grant."""
    host = await signed_in_host(mcp_url, user)
    tokens = host.storage.tokens
    info = host.storage.client_info
    assert tokens is not None and tokens.refresh_token and info is not None
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            mcp_url.removesuffix("/mcp") + "/oauth/revoke",
            data={"token": tokens.refresh_token, "client_id": info.client_id},
        )
    assert response.status_code == 200
    assert (await post_mcp(mcp_url, tokens.access_token)).status_code == 401
