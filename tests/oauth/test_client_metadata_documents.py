"""A host named by its Client ID Metadata Document (what the current MCP revision expects): the
SDK's OAuth client uses the document's URL as its client_id without registering; the server
fetches the document over HTTPS (here from a loopback server the test allows), checks it,
keeps it, and the flow is the same as for a registered client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.oauth.conftest import person
from tests.oauth.document_server import DocumentServer, document_server
from tests.oauth.host import REDIRECT_URI, HeadlessUser, ManualHost, connected, make_host, pkce_pair
from tests.oauth.test_mcp_host_flow import sessions
from tests.support.servers import make_settings

from formation_mcp.app import Application
from formation_mcp.auth.metadata_fetch import ClientMetadataFetcher

DOCUMENT_PATH = "/oauth/client-metadata.json"


@dataclass
class Setup:
    app: Application
    documents: DocumentServer
    client_id: str

    @property
    def mcp_url(self) -> str:
        return f"http://{self.app.http.address}/mcp"


@pytest.fixture
async def setup(database_url: str, tmp_path: Path) -> AsyncIterator[Setup]:
    async with document_server(tmp_path / "tls") as documents:
        client_id = documents.base + DOCUMENT_PATH
        documents.documents[DOCUMENT_PATH] = {
            "client_id": client_id,
            "client_name": "Document Host",
            "client_uri": "https://host.example",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }
        fetcher = ClientMetadataFetcher(
            allowed_networks=("127.0.0.0/8", "::1/128"), ssl_context=documents.trust
        )
        if database_url.startswith("sqlite"):
            database_url = f"sqlite+aiosqlite:///{tmp_path / 'fmcp.db'}"
        app = Application(
            make_settings(tmp_path / "data", database_url), client_metadata_fetcher=fetcher
        )
        await app.start()
        try:
            yield Setup(app, documents, client_id)
        finally:
            await app.stop()


async def test_a_host_named_by_its_metadata_document_signs_in_without_registering(
    setup: Setup, tmp_path: Path
) -> None:
    fmcp = person(setup.app, tmp_path / "person")
    user = HeadlessUser(fmcp)
    host = make_host(setup.mcp_url, user, client_metadata_url=setup.client_id)
    async with connected(setup.mcp_url, host) as client:
        result = await client.call_tool("test_echo", {"text": "by document"})
    assert result.structured_content == {"echo": "by document"}
    assert not any(path == "/oauth/register" for _m, path, _s in host.exchange.requests)
    assert "Document Host" in user.pages[0] and setup.client_id in user.pages[0]
    grants = [g for g in await sessions(fmcp) if g["kind"] == "OAUTH"]
    assert [(g["client_id"], g["client_name"]) for g in grants] == [
        (setup.client_id, "Document Host")
    ]


async def test_the_document_is_fetched_once_and_kept(setup: Setup, tmp_path: Path) -> None:
    manual = ManualHost(f"http://{setup.app.http.address}", setup.client_id)
    for attempt in range(2):
        user = HeadlessUser(person(setup.app, tmp_path / str(attempt)))
        assert (await manual.tokens(user))["access_token"]
    assert setup.documents.fetched == {DOCUMENT_PATH: 1}


async def test_a_document_that_names_another_client_id_is_refused(setup: Setup) -> None:
    other = setup.documents.base + "/other.json"
    setup.documents.documents["/other.json"] = {
        "client_id": setup.client_id,  # not its own URL
        "redirect_uris": [REDIRECT_URI],
    }
    _verifier, challenge = pkce_pair()
    manual = ManualHost(f"http://{setup.app.http.address}", other)
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(manual.authorize_url(challenge))
    assert page.status_code == 400
    assert "client_id must be the URL it was fetched from" in page.text


async def test_a_private_address_is_refused_and_fetches_are_rate_limited(
    start_app: Callable[..., Awaitable[Application]],
) -> None:
    """By default a document on a private address is not fetched; and whoever opens sign-in
    requests cannot make the server fetch URLs faster than the login rate."""
    app = await start_app(login_rate_per_minute=1)
    _verifier, challenge = pkce_pair()
    pages = []
    async with httpx.AsyncClient(timeout=20) as browser:
        for number in range(2):
            manual = ManualHost(f"http://{app.http.address}", f"https://127.0.0.1/{number}.json")
            pages.append(await browser.get(manual.authorize_url(challenge)))
    assert [page.status_code for page in pages] == [400, 400]
    assert "is not a public address" in pages[0].text
    assert "too many client metadata fetch attempts" in pages[1].text
