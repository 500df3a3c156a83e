"""`fmcp authorize CODE` and `fmcp account sessions`: what a person sees and decides."""

from __future__ import annotations

import json

import httpx
from tests.oauth.host import ManualHost, code_on, pkce_pair
from tests.support.cli import Fmcp

from formation_mcp.app import Application


async def pending_code(app: Application, **overrides: str) -> str:
    host = ManualHost(f"http://{app.http.address}")
    await host.register(client_name="CLI Host")
    _verifier, challenge = pkce_pair()
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(host.authorize_url(challenge, **overrides))
    return code_on(page.text)


async def test_authorize_shows_the_request_and_approves_when_told_yes(
    fmcp: Fmcp, cli_app: Application
) -> None:
    code = await pending_code(cli_app)
    result = await fmcp("authorize", code, stdin="y\n")
    assert result.exit_code == 0, result.output
    assert f"Sign-in request {code}" in result.output
    assert "client:        CLI Host (fmcp-client-" in result.output
    assert "sends you to:  http://127.0.0.1:33418/callback" in result.output
    assert f"for:           http://{cli_app.http.address}/mcp" in result.output
    assert "Give CLI Host full access as accounts/" in result.output
    assert "approved: CLI Host has full access as accounts/" in result.output


async def test_answering_no_denies_the_request(fmcp: Fmcp, cli_app: Application) -> None:
    code = await pending_code(cli_app)
    result = await fmcp("authorize", code, stdin="n\n")
    assert result.exit_code == 0 and "denied: CLI Host gets no access" in result.output
    again = await fmcp("authorize", code, "--yes")
    assert again.exit_code == 8 and "This request is denied: nothing to decide." in again.output


async def test_authorize_read_only_and_json(fmcp: Fmcp, cli_app: Application) -> None:
    code = await pending_code(cli_app)
    result = await fmcp("authorize", code, "--read-only", "--yes", "-o", "json")
    assert result.exit_code == 0, result.output
    decided = json.loads(result.stdout)
    assert decided["state"] == "APPROVED" and decided["granted_scope"] == "read-only"


async def test_deny_without_asking_and_bad_combinations(fmcp: Fmcp, cli_app: Application) -> None:
    code = await pending_code(cli_app)
    assert (await fmcp("authorize", code, "--deny", "--yes")).exit_code == 2
    denied = await fmcp("authorize", code, "--deny")
    assert denied.exit_code == 0 and "denied" in denied.output


async def test_an_unknown_code_exits_not_found(fmcp: Fmcp) -> None:
    result = await fmcp("authorize", "BCDF-GHJK", "--yes")
    assert result.exit_code == 6 and "AUTHORIZATION_REQUEST_NOT_FOUND" in result.output


async def test_sessions_lists_and_marks_the_current_one_then_revokes(fmcp: Fmcp) -> None:
    assert (await fmcp("login")).exit_code == 0
    assert (await fmcp("login")).exit_code == 0  # a second session, the one in use
    listed = await fmcp("account", "sessions")
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split() == [
        "ID",
        "CURRENT",
        "KIND",
        "CLIENT",
        "SCOPE",
        "STATE",
        "CREATED",
        "LAST_USED",
    ]
    assert len(rows) == 2 and rows[0].split()[1] == "*"  # newest first: the current session
    older = rows[1].split()[0]
    revoked = await fmcp("account", "sessions", "revoke", older)
    assert revoked.exit_code == 0 and f"revoked: grants/{older} (fmcp login)" in revoked.output
    active = json.loads((await fmcp("account", "sessions", "-o", "json")).stdout)
    assert [grant["name"] for grant in active] == [f"grants/{rows[0].split()[0]}"]
    everything = json.loads((await fmcp("account", "sessions", "--all", "-o", "json")).stdout)
    assert {grant["state"] for grant in everything} == {"ACTIVE", "REVOKED"}
