"""What the authorization server refuses: a redirect URI the client did not register, a PKCE
verifier that does not match, a code used twice (which also revokes what it bought), a token
for another resource, an expired code or request, a denied request, and a read-only grant
calling a tool that changes things."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import httpx
import pytest
from formation.mcp.v1 import auth_pb2_grpc
from google.protobuf import empty_pb2
from mcp.client.auth import OAuthFlowError
from tests.oauth.conftest import person
from tests.oauth.host import (
    HeadlessUser,
    ManualHost,
    code_on,
    connected,
    make_host,
    pkce_pair,
    query_of,
)
from tests.oauth.test_mcp_host_flow import post_mcp
from tests.support.cli import Fmcp
from tests.support.mcp import text_of
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer

StartApp = Callable[..., Awaitable[Application]]


@pytest.fixture
async def manual(front_door: str) -> ManualHost:
    host = ManualHost(front_door)
    await host.register()
    return host


async def test_an_unregistered_redirect_uri_is_refused_on_the_page(manual: ManualHost) -> None:
    """The browser is not sent to a URI the client did not register (RFC 6749 §4.1.2.1)."""
    _verifier, challenge = pkce_pair()
    url = manual.authorize_url(challenge, redirect_uri="http://127.0.0.1:33418/elsewhere")
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(url)
    assert page.status_code == 400 and "location" not in page.headers
    assert "redirect_uri is not one this client registered" in page.text


async def test_a_loopback_redirect_uri_may_use_another_port(
    manual: ManualHost, user: HeadlessUser
) -> None:
    """RFC 8252 §7.3: a native app listens on whatever loopback port is free."""
    manual.redirect_uri = "http://127.0.0.1:40123/callback"
    code, verifier, query = await manual.signed_in(user)
    assert query["state"] == "st4te"
    assert user.redirects[0].startswith("http://127.0.0.1:40123/callback?code=")
    assert (await manual.exchange(code, verifier)).status_code == 200


async def test_the_token_request_must_name_the_same_redirect_uri(
    manual: ManualHost, user: HeadlessUser
) -> None:
    code, verifier, _query = await manual.signed_in(user)
    response = await manual.exchange(code, verifier, redirect_uri="http://127.0.0.1:1/other")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_pkce_verifier_that_does_not_match_is_refused(
    manual: ManualHost, user: HeadlessUser
) -> None:
    code, _verifier, _query = await manual.signed_in(user)
    other_verifier, _challenge = pkce_pair()
    response = await manual.exchange(code, other_verifier)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "code_verifier does not match the code_challenge (PKCE S256)",
    }
    assert response.headers["cache-control"] == "no-store"


async def test_plain_pkce_is_refused(manual: ManualHost, user: HeadlessUser) -> None:
    verifier, _challenge = pkce_pair()
    url = manual.authorize_url(verifier, code_challenge_method="plain")
    async with httpx.AsyncClient(timeout=20) as browser:
        answer = await browser.get(url)
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query["error"] == "invalid_request" and "S256" in query["error_description"]
    assert query["state"] == "st4te"


async def test_a_code_used_twice_is_refused_and_revokes_its_tokens(
    manual: ManualHost, user: HeadlessUser, front_door: str
) -> None:
    code, verifier, _query = await manual.signed_in(user)
    first = await manual.exchange(code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert (await post_mcp(f"{front_door}/mcp", tokens["access_token"])).status_code == 200
    second = await manual.exchange(code, verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert "already used" in second.json()["error_description"]
    assert (await post_mcp(f"{front_door}/mcp", tokens["access_token"])).status_code == 401
    refreshed = await manual.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refreshed.json()["error"] == "invalid_grant"


async def test_a_token_for_another_resource_is_not_issued(
    manual: ManualHost, user: HeadlessUser
) -> None:
    _verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=20) as browser:
        answer = await browser.get(
            manual.authorize_url(challenge, resource="https://elsewhere.example/mcp")
        )
    assert answer.status_code == 303
    query = query_of(answer.headers["location"])
    assert query["error"] == "invalid_target" and query["state"] == "st4te"
    code, verifier, _query = await manual.signed_in(user)
    response = await manual.exchange(code, verifier, resource="https://elsewhere.example/mcp")
    assert response.status_code == 400 and response.json()["error"] == "invalid_target"


async def test_the_hosts_token_is_refused_by_the_api_and_works_only_on_mcp(
    manual: ManualHost, user: HeadlessUser, oauth_app: Application, front_door: str
) -> None:
    tokens = await manual.tokens(user)
    assert (await post_mcp(f"{front_door}/mcp", tokens["access_token"])).status_code == 200
    async with grpc.aio.insecure_channel(oauth_app.grpc.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentAccount(
                empty_pb2.Empty(), metadata=bearer(tokens["access_token"])
            )
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "another audience" in (refused.value.details() or "")
    # Through Envoy too, where a client's own bridge headers are dropped.
    async with httpx.AsyncClient(timeout=20) as http:
        rest = await http.get(
            f"{front_door}/v1/auth/account",
            headers={
                "authorization": f"Bearer {tokens['access_token']}",
                "x-fmcp-bridge-secret": "guess",
                "x-fmcp-bridge-audience": f"{front_door}/mcp",
            },
        )
    assert rest.status_code == 401


async def test_an_expired_code_is_refused(start_app: StartApp, tmp_path: Path) -> None:
    app = await start_app(oauth_code_ttl_seconds=1.0)
    base = f"http://{app.http.address}"
    manual = ManualHost(base)
    await manual.register()
    code, verifier, _query = await manual.signed_in(HeadlessUser(person(app, tmp_path)))
    issued = time.time()

    async def expired() -> bool:
        return time.time() > issued + 1.0

    await eventually(expired)
    response = await manual.exchange(code, verifier)
    assert response.status_code == 400
    assert response.json()["error_description"] == "the authorization code expired; sign in again"


async def test_a_request_nobody_decides_expires(start_app: StartApp, tmp_path: Path) -> None:
    app = await start_app(oauth_request_ttl_seconds=1.0)
    manual = ManualHost(f"http://{app.http.address}")
    await manual.register()
    fmcp = person(app, tmp_path)
    _verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(manual.authorize_url(challenge))
        link = f"http://{app.http.address}" + page.text.split('href="')[1].split('"')[0]

        async def sent_back() -> bool:
            return (await browser.get(link)).status_code == 303

        await eventually(sent_back)
        back = await browser.get(link)
    query = query_of(back.headers["location"])
    assert query["error"] == "access_denied" and "expired" in query["error_description"]
    assert query["state"] == "st4te"
    late = await fmcp("authorize", code_on(page.text), "--yes")
    assert late.exit_code == 8 and "expired: nothing to decide" in late.output


async def test_a_denied_request_sends_the_host_access_denied(
    mcp_url: str, fmcp: Fmcp, front_door: str
) -> None:
    user = HeadlessUser(fmcp, answer="n\n")  # asked by `fmcp authorize`, the person says no
    host = make_host(mcp_url, user)
    with pytest.RaisesGroup(
        pytest.RaisesExc(OAuthFlowError, match="access_denied"),
        allow_unwrapped=True,
        flatten_subgroups=True,
    ):
        async with connected(mcp_url, host):
            pass
    assert "denied: Test Host gets no access" in user.outputs[0]
    query = query_of(user.redirects[0])
    assert query["error"] == "access_denied" and query["state"]
    assert "code" not in query


async def test_a_read_only_grant_cannot_call_a_tool_that_changes_things(
    mcp_url: str, fmcp: Fmcp
) -> None:
    user = HeadlessUser(fmcp, decision=("--read-only", "--yes"))
    host = make_host(mcp_url, user)
    async with connected(mcp_url, host) as client:
        reading = await client.call_tool("test_read", {})
        writing = await client.call_tool("test_echo", {"text": "no"})
    assert host.storage.tokens is not None and host.storage.tokens.scope == "read-only"
    assert reading.is_error is False
    assert writing.is_error is True
    text = text_of(writing)
    assert "SCOPE_INSUFFICIENT" in text and "read-only" in text
    assert "approved: Test Host has read-only access" in user.outputs[0]


async def test_an_unknown_client_is_refused_on_the_page(front_door: str) -> None:
    _verifier, challenge = pkce_pair()
    manual = ManualHost(front_door, client_id="fmcp-client-unknown")
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(manual.authorize_url(challenge))
    assert page.status_code == 400 and "unknown client_id" in page.text


async def test_a_client_registered_with_a_secret_must_send_it(
    user: HeadlessUser, front_door: str
) -> None:
    confidential = ManualHost(front_door)
    registered = await confidential.register(token_endpoint_auth_method="client_secret_basic")
    secret = registered["client_secret"]
    assert registered["token_endpoint_auth_method"] == "client_secret_basic" and secret
    code, verifier, _query = await confidential.signed_in(user)
    without = await confidential.exchange(code, verifier)
    assert without.status_code == 401 and without.json()["error"] == "invalid_client"
    async with httpx.AsyncClient(timeout=20) as http:
        wrong = await http.post(
            f"{front_door}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": confidential.redirect_uri,
            },
            auth=(confidential.client_id, "not-the-secret"),
        )
        right = await http.post(
            f"{front_door}/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": confidential.redirect_uri,
            },
            auth=(confidential.client_id, secret),
        )
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    assert right.status_code == 200, right.text


async def test_a_client_registered_for_read_only_cannot_ask_for_more(
    front_door: str,
) -> None:
    limited = ManualHost(front_door)
    await limited.register(scope="read-only")
    _verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=20) as browser:
        answer = await browser.get(limited.authorize_url(challenge, scope="full"))
    assert query_of(answer.headers["location"])["error"] == "invalid_scope"


async def test_a_refresh_may_narrow_the_scope_but_not_widen_it(
    manual: ManualHost, user: HeadlessUser, front_door: str
) -> None:
    tokens = await manual.tokens(user)
    narrowed = await manual.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], scope="read-only"
    )
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read-only"
    limited = await manual.tokens(HeadlessUser(user.fmcp, decision=("--read-only", "--yes")))
    widened = await manual.token(
        grant_type="refresh_token", refresh_token=limited["refresh_token"], scope="full"
    )
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"


async def test_the_host_can_revoke_its_grant_with_an_access_token(
    manual: ManualHost, user: HeadlessUser, front_door: str
) -> None:
    tokens = await manual.tokens(user)
    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.post(
            f"{front_door}/oauth/revoke",
            data={
                "token": tokens["access_token"],
                "token_type_hint": "access_token",
                "client_id": manual.client_id,
            },
        )
        ignored = await http.post(  # not a token of ours: nothing to do, and no error
            f"{front_door}/oauth/revoke", data={"token": "nope", "client_id": manual.client_id}
        )
    assert response.status_code == 200 and ignored.status_code == 200
    assert (await post_mcp(f"{front_door}/mcp", tokens["access_token"])).status_code == 401
    refreshed = await manual.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert refreshed.json()["error"] == "invalid_grant"
