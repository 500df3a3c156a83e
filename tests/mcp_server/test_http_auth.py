"""The MCP endpoint as an OAuth resource server: tokens checked with their audience, 401s that
lead to the RFC 9728 metadata, and browser origins checked (through real Envoy)."""

from __future__ import annotations

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.auth.tokens import TokenIssuer
from formation_mcp.client.auth import login
from formation_mcp.settings import Settings, SettingsError

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


async def post(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, json=INITIALIZE, headers=ACCEPT | headers)


async def test_no_token_is_401_pointing_at_the_resource_metadata(mcp_url: str, envoy: str) -> None:
    response = await post(mcp_url)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = f"{envoy}/.well-known/oauth-protected-resource/mcp"
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url}"' in challenge
    assert "error=" not in challenge  # RFC 6750 §3.1: no error code when no token was sent
    async with httpx.AsyncClient(timeout=10) as http:
        metadata = (await http.get(metadata_url)).json()
    assert metadata["resource"] == mcp_url
    assert metadata["authorization_servers"] == [envoy]
    assert metadata["bearer_methods_supported"] == ["header"]


async def test_a_token_for_another_audience_is_401(
    mcp_url: str, app: Application, session: auth_pb2.Session
) -> None:
    issuer = TokenIssuer(app.signing_key, app.settings.auth_issuer, "someone-else", 60)
    token = issuer.issue(session.account.name, tuple(session.account.roles)).token
    response = await post(mcp_url, authorization=f"Bearer {token}")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert "another audience" in challenge and "resource_metadata=" in challenge


async def test_a_malformed_token_is_401(mcp_url: str) -> None:
    response = await post(mcp_url, authorization="Bearer not-a-jwt")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_valid_token_opens_a_session(mcp_url: str, token: str) -> None:
    response = await post(mcp_url, authorization=f"Bearer {token}")
    assert response.status_code == 200
    assert response.headers["mcp-session-id"]


async def test_the_apis_own_token_is_401(mcp_url: str, session: auth_pb2.Session) -> None:
    """A session's token is for the API (FMCP_AUTH_AUDIENCE), not for this endpoint."""
    response = await post(mcp_url, authorization=f"Bearer {session.access_token}")
    assert response.status_code == 401
    assert "another audience" in response.headers["www-authenticate"]


async def test_a_token_for_the_endpoint_on_another_host_is_401(
    app: Application, session: auth_pb2.Session, mcp_url: str, envoy: str
) -> None:
    """The audience is the endpoint as this request reached it: a token for the same server
    under another name (the HTTP side itself, not Envoy) is another resource."""
    other = mcp_token(app, session.access_token, f"http://{app.http.address}/mcp")
    response = await post(mcp_url, authorization=f"Bearer {other}")
    assert response.status_code == 401


async def test_a_foreign_origin_is_403(mcp_url: str, token: str) -> None:
    response = await post(mcp_url, authorization=f"Bearer {token}", origin="https://evil.example")
    assert response.status_code == 403


async def test_a_loopback_origin_is_allowed(mcp_url: str, token: str) -> None:
    response = await post(mcp_url, authorization=f"Bearer {token}", origin="http://localhost:5173")
    assert response.status_code == 200


async def test_a_configured_origin_is_allowed(start_app: StartApp) -> None:
    app = await start_app(mcp_allowed_origins=("https://app.example.com",))
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
    url = f"http://{app.http.address}/mcp"
    bearer = f"Bearer {mcp_token(app, session.access_token, url)}"
    assert (
        await post(url, authorization=bearer, origin="https://app.example.com")
    ).status_code == 200
    refused = await post(url, authorization=bearer, origin="https://app.example.com.evil.example")
    assert refused.status_code == 403


def test_allowed_origins_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {"FMCP_MCP_ALLOWED_ORIGINS": "https://app.example.com, http://10.0.0.5:3000/"}
    )
    assert settings.mcp_allowed_origins == ("https://app.example.com", "http://10.0.0.5:3000")
    with pytest.raises(SettingsError, match="FMCP_MCP_ALLOWED_ORIGINS"):
        Settings.from_env({"FMCP_MCP_ALLOWED_ORIGINS": "https://app.example.com/path"})


async def test_a_session_is_bound_to_the_account_that_opened_it(
    mcp_url: str, token: str, app: Application, channel: grpc.aio.Channel
) -> None:
    opened = await post(mcp_url, authorization=f"Bearer {token}")
    session_id = opened.headers["mcp-session-id"]
    other_session = await login(channel, Ed25519PrivateKey.generate())
    other = mcp_token(app, other_session.access_token, mcp_url)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            mcp_url,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers=ACCEPT
            | {
                "authorization": f"Bearer {other}",
                "mcp-session-id": session_id,
                "mcp-protocol-version": "2025-11-25",
            },
        )
    assert response.status_code == 404  # as if the session did not exist


# -- the scheme a front door forwards -------------------------------------------------------------


async def metadata_document(base: str, **headers: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(
            f"{base}/.well-known/oauth-protected-resource/mcp", headers=headers
        )
    assert response.status_code == 200
    document: dict[str, object] = response.json()
    return document


async def test_a_direct_client_cannot_claim_another_scheme(app: Application) -> None:
    base = f"http://{app.http.address}"
    response = await post(f"{base}/mcp", **{"x-forwarded-proto": "https"})
    assert f'resource_metadata="{base}/.well-known/' in response.headers["www-authenticate"]
    document = await metadata_document(base, **{"x-forwarded-proto": "https"})
    assert document["resource"] == f"{base}/mcp"


async def test_a_trusted_proxy_forwards_the_scheme(app: Application) -> None:
    """The test plays the proxy, with the server's secret."""
    proxy = {"x-fmcp-proxy-secret": app.settings.proxy_secret, "x-forwarded-proto": "https"}
    document = await metadata_document(f"http://{app.http.address}", **proxy)
    assert document["resource"] == f"https://{app.http.address}/mcp"


async def test_a_trusted_proxy_forwards_only_http_or_https(app: Application) -> None:
    proxy = {"x-fmcp-proxy-secret": app.settings.proxy_secret, "x-forwarded-proto": "javascript"}
    document = await metadata_document(f"http://{app.http.address}", **proxy)
    assert document["resource"] == f"http://{app.http.address}/mcp"


async def test_through_envoy_the_scheme_is_the_one_envoy_saw(envoy: str) -> None:
    claims = {"x-forwarded-proto": "https", "x-fmcp-proxy-secret": "f" * 43}
    document = await metadata_document(envoy, **claims)
    assert document["resource"] == f"{envoy}/mcp"
