"""The web console's session through Envoy: a `fmcp console` link's code is exchanged once,
within a minute, for an httpOnly SameSite=Strict cookie scoped to /console; the console's
REST calls under /console/api/ are made as its account with the CSRF header; sign-out ends
it."""

from __future__ import annotations

import uuid

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.envoy import Json, Lines, auth, rest_login

from formation_mcp.app import Application
from formation_mcp.auth.console_sessions import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    delete_expired,
)
from formation_mcp.clock import now_us
from formation_mcp.db.schema import console_sessions
from formation_mcp.events.model import NewEvent, Severity


async def link(client: httpx.AsyncClient) -> tuple[Json, Json]:
    """A new account's session and a console link for it (over REST, with its token)."""
    session = await rest_login(client, Ed25519PrivateKey.generate())
    response = await client.post(
        "/v1/auth/console:createLink", json={}, headers=auth(session["access_token"])
    )
    assert response.status_code == 200, response.text
    return session, response.json()


async def signed_in(browser: httpx.AsyncClient) -> Json:
    """Signs a browser-like client in through a link; the account it is signed in as."""
    session, created = await link(browser)
    browser.cookies.clear()
    response = await spend(browser, created)
    assert response.status_code == 303, response.text
    account: Json = session["account"]
    return account


async def spend(client: httpx.AsyncClient, created: Json) -> httpx.Response:
    """What the link's page does when its button is pressed: POST the code."""
    return await client.post("/console/signin", data={"code": created["code"]})


def csrf(browser: httpx.AsyncClient) -> dict[str, str]:
    return {CSRF_HEADER: browser.cookies.get(CSRF_COOKIE, path="/console") or ""}


async def test_the_link_sets_an_httponly_strict_session_cookie_scoped_to_the_console(
    client: httpx.AsyncClient,
) -> None:
    _session, created = await link(client)
    assert created["path"] == f"/console/signin?code={created['code']}"
    response = await spend(client, created)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookies = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("fmcp_console="))
    attributes = {a.strip().lower() for a in session_cookie.split(";")[1:]}
    assert {"httponly", "path=/console", "samesite=strict"} <= attributes
    assert "secure" not in attributes  # plain HTTP here


async def test_a_second_use_of_the_link_is_refused(client: httpx.AsyncClient) -> None:
    _session, created = await link(client)
    assert (await spend(client, created)).status_code == 303
    again = await spend(client, created)
    assert again.status_code == 401
    assert "fmcp console" in again.text
    assert "set-cookie" not in again.headers


async def test_opening_the_link_shows_a_button_and_spends_nothing(
    client: httpx.AsyncClient,
) -> None:
    _session, created = await link(client)
    for _ in range(2):  # a link scanner, then the person
        page = await client.get(created["path"])
        assert page.status_code == 200 and "set-cookie" not in page.headers
        assert 'method="post"' in page.text and f'value="{created["code"]}"' in page.text
        assert "script" not in page.text
    assert (await spend(client, created)).status_code == 303


async def test_a_sign_in_posted_from_another_site_is_refused(client: httpx.AsyncClient) -> None:
    _session, created = await link(client)
    forged = await client.post(
        "/console/signin",
        data={"code": created["code"]},
        headers={"origin": "https://evil.example.com"},
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers
    assert (await spend(client, created)).status_code == 303  # the code is still good


async def test_an_expired_link_is_refused(client: httpx.AsyncClient, app: Application) -> None:
    _session, created = await link(client)
    async with app.database.write() as conn:  # a minute has passed
        await conn.execute(
            sa.update(console_sessions)
            .where(console_sessions.c.code_hash.is_not(None))
            .values(expire_time=now_us() - 1)
        )
    assert (await spend(client, created)).status_code == 401


async def test_the_console_calls_the_api_as_the_links_account(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as browser:
        account = await signed_in(browser)
        response = await browser.get("/console/api/v1/auth/account", headers=csrf(browser))
    assert response.status_code == 200, response.text
    assert response.json()["name"] == account["name"]


async def test_a_forged_request_without_the_csrf_token_is_refused(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as browser:
        await signed_in(browser)
        missing = await browser.post("/console/api/v1/operations/x:cancel", json={})
        wrong = await browser.post(
            "/console/api/v1/operations/x:cancel", json={}, headers={CSRF_HEADER: "forged"}
        )
    for response in (missing, wrong):
        assert response.status_code == 403, response.text
        assert "CSRF" in response.json()["message"]


async def test_the_session_cookie_is_not_accepted_outside_the_console(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as browser:
        await signed_in(browser)
        response = await browser.get("/v1/auth/account", headers=csrf(browser))
    assert response.status_code == 401


async def test_sign_out_revokes_the_session(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as browser:
        await signed_in(browser)
        headers = csrf(browser)
        session = browser.cookies.get(SESSION_COOKIE, path="/console")
        assert (await browser.post("/console/signout")).status_code == 403  # no CSRF token
        assert (await browser.post("/console/signout", headers=headers)).status_code == 200
        assert browser.cookies.get(SESSION_COOKIE, path="/console") is None
    # The old cookie, kept by someone: refused on any replica (the session is revoked).
    async with httpx.AsyncClient(base_url=envoy) as kept:
        response = await kept.get(
            "/console/api/v1/auth/account",
            headers={**headers, "cookie": f"{SESSION_COOKIE}={session}"},
        )
    assert response.status_code == 401
    assert "signed out" in response.json()["message"]


async def test_the_console_page_has_a_strict_content_security_policy(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/console/")
    assert response.status_code == 200
    assert '<script type="module" src="/console/app.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    script = await client.get("/console/app.js")
    assert script.headers["content-type"].startswith("text/javascript")


async def test_expired_codes_and_sessions_are_deleted(
    client: httpx.AsyncClient, app: Application
) -> None:
    _session, created = await link(client)
    async with app.database.write() as conn:
        deleted = await delete_expired(conn, now_us() + 120 * 1_000_000, 1000)
    assert deleted >= 1
    assert (await spend(client, created)).status_code == 401


def an_event(owner: str) -> NewEvent:
    return NewEvent(
        uuid.uuid4().hex,
        "instance.running",
        "instances/console",
        owner,
        now_us(),
        Severity.INFO,
        "running",
    )


async def test_the_console_watches_events_as_ndjson(envoy: str, app: Application) -> None:
    async with httpx.AsyncClient(base_url=envoy) as browser:
        account = await signed_in(browser)
        before = await app.events.record([an_event(account["name"])])
        missed = await app.events.record([an_event(account["name"])])
        async with browser.stream(
            "GET",
            "/console/api/v1/events:watch",
            params={"after": before[0].name},
            headers=csrf(browser),
            timeout=None,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            lines = Lines(response)
            try:
                assert (await lines.next())["name"] == missed[0].name
            finally:
                await lines.close()


async def test_an_approver_denies_a_held_call_with_a_comment_from_the_console(
    envoy: str, client: httpx.AsyncClient, admin_key: Ed25519PrivateKey
) -> None:
    admin = await rest_login(client, admin_key)
    caller = await rest_login(client, Ed25519PrivateKey.generate())
    account = caller["account"]["name"]
    policy = await client.patch(
        f"/v1/{account}/policy",
        params={"update_mask": "require_approval"},
        json={"require_approval": ["test.echo"]},
        headers=auth(admin["access_token"]),
    )
    assert policy.status_code == 200, policy.text
    held = await client.post(
        "/v1/tools/test.echo:call",
        json={"arguments": {"text": "deny me"}},
        headers=auth(caller["access_token"]),
    )
    assert held.status_code == 200, held.text
    assert held.json()["metadata"]["state"] == "AWAITING_APPROVAL"
    name = held.json()["name"]
    created = await client.post(
        "/v1/auth/console:createLink", json={}, headers=auth(admin["access_token"])
    )
    async with httpx.AsyncClient(base_url=envoy) as browser:
        assert (await spend(browser, created.json())).status_code == 303
        waiting = await browser.get(
            "/console/api/v1/operations",
            params={"filter": "awaiting_my_approval = true"},
            headers=csrf(browser),
        )
        assert name in [o["name"] for o in waiting.json()["operations"]]
        denied = await browser.post(
            f"/console/api/v1/{name}:deny", json={"comment": "not today"}, headers=csrf(browser)
        )
    assert denied.status_code == 200, denied.text
    seen = await client.get(f"/v1/{name}", headers=auth(caller["access_token"]))
    assert seen.json()["done"] is True
    assert seen.json()["error"]["message"].endswith(": not today")
