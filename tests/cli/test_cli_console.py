"""`fmcp console`: a one-time sign-in link for the web console."""

from __future__ import annotations

import httpx
import pytest
from tests.support.cli import Fmcp

from formation_mcp.app import Application


async def test_console_prints_a_link_the_browser_exchanges_once(
    fmcp: Fmcp, cli_app: Application
) -> None:
    base = f"http://{cli_app.http.address}"
    result = await fmcp("console", "--url", base + "/")
    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert link.startswith(f"{base}/console/signin?code=")
    code = link.split("code=", 1)[1]
    async with httpx.AsyncClient() as browser:
        shown = await browser.get(link)
        first = await browser.post(f"{base}/console/signin", data={"code": code})
        second = await browser.post(f"{base}/console/signin", data={"code": code})
    assert shown.status_code == 200 and code in shown.text
    assert (first.status_code, first.headers["location"]) == (303, "/console/")
    assert second.status_code == 401


async def test_console_defaults_to_the_front_door(
    fmcp: Fmcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FMCP_PUBLIC_URL", "https://fmcp.example.com")
    result = await fmcp("console")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("https://fmcp.example.com/console/signin?code=")
