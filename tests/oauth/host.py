"""An MCP host and its user, headless: the official SDK's OAuth client (`OAuthClientProvider`)
for the host, and for the person a `HeadlessUser` that opens the authorize URL the host would
open in a browser, reads the code on the sign-in page, decides with `fmcp authorize CODE`
(the CLI, as that person's account), and follows the page back to the host's redirect URI.

Also `ManualHost`: the same flow step by step with plain HTTP, for the tests of each refusal.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider, OAuthFlowError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from pydantic import AnyUrl
from tests.support.cli import Fmcp

REDIRECT_URI = "http://127.0.0.1:33418/callback"
CODE_ON_PAGE = re.compile(r"fmcp authorize ([A-Z]{4}-[A-Z]{4})")
PAGE_LINK = re.compile(r'href="(/oauth/requests/[^"]+)"')


def code_on(page: str) -> str:
    found = CODE_ON_PAGE.search(page)
    assert found, page
    return found.group(1)


def page_link(page: str) -> str:
    found = PAGE_LINK.search(page)
    assert found, page
    return found.group(1)


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


class MemoryStorage:
    """The host's token and client storage (the SDK's TokenStorage protocol)."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class HeadlessUser:
    """The person: `decision` is what they pass to `fmcp authorize CODE` (`--yes`,
    `--read-only --yes`, `--deny`), or `answer` what they type at its question."""

    fmcp: Fmcp
    decision: tuple[str, ...] = ("--yes",)
    answer: str | None = None
    pages: list[str] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    async def open(self, authorize_url: str) -> str:
        """Open the authorize URL, decide, reload the page: the URL the browser is sent to."""
        async with httpx.AsyncClient(timeout=20) as browser:
            page = await browser.get(authorize_url)
            assert page.status_code == 200, page.text
            self.pages.append(page.text)
            args = () if self.answer is not None else self.decision
            result = await self.fmcp("authorize", code_on(page.text), *args, stdin=self.answer)
            self.outputs.append(result.output)
            assert result.exit_code == 0, result.output
            back = await browser.get(urljoin(authorize_url, page_link(page.text)))
        assert back.status_code == 303, back.text
        location = back.headers["location"]
        self.redirects.append(location)
        return location

    async def redirect_handler(self, authorize_url: str) -> None:
        await self.open(authorize_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        query = query_of(self.redirects[-1])
        if "error" in query:
            raise OAuthFlowError(f"{query['error']}: {query.get('error_description', '')}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"))


@dataclass
class Exchange:
    """What the host's HTTP client did: (method, path, status) in order."""

    requests: list[tuple[str, str, int]] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        request = response.request
        self.requests.append((request.method, request.url.path, response.status_code))


def host_metadata(name: str = "Test Host") -> OAuthClientMetadata:
    return OAuthClientMetadata(
        client_name=name,
        redirect_uris=[AnyUrl(REDIRECT_URI)],
        token_endpoint_auth_method="none",
    )


@dataclass
class Host:
    provider: OAuthClientProvider
    storage: MemoryStorage
    exchange: Exchange


def make_host(
    mcp_url: str,
    user: HeadlessUser,
    *,
    client_metadata_url: str | None = None,
    storage: MemoryStorage | None = None,
) -> Host:
    storage = storage or MemoryStorage()
    provider = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=host_metadata(),
        storage=storage,
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
        client_metadata_url=client_metadata_url,
    )
    return Host(provider, storage, Exchange())


@asynccontextmanager
async def connected(mcp_url: str, host: Host, **client_options: Any) -> AsyncIterator[Client]:
    """An initialized MCP session of the host (signing in first when it has no tokens)."""
    async with (
        httpx2.AsyncClient(
            auth=host.provider,
            timeout=httpx2.Timeout(30, read=300),
            event_hooks={"response": [host.exchange.record]},
            **client_options,
        ) as http,
        Client(streamable_http_client(mcp_url, http_client=http)) as client,
    ):
        yield client


# -- the flow by hand ---------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    return verifier, challenge.rstrip("=")


@dataclass
class ManualHost:
    """One registered client driving the flow with plain HTTP against `base` (scheme://host)."""

    base: str
    client_id: str = ""
    redirect_uri: str = REDIRECT_URI

    async def register(self, **metadata: Any) -> dict[str, Any]:
        body = {"client_name": "Manual Host", "redirect_uris": [self.redirect_uri]} | metadata
        async with httpx.AsyncClient(timeout=20) as http:
            response = await http.post(f"{self.base}/oauth/register", json=body)
        assert response.status_code == 201, response.text
        registered: dict[str, Any] = response.json()
        self.client_id = registered["client_id"]
        return registered

    def authorize_url(self, challenge: str, state: str = "st4te", **overrides: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": f"{self.base}/mcp",
            "scope": "full",
        } | overrides
        return f"{self.base}/oauth/authorize?{urlencode(params)}"

    async def token(self, **form: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=20) as http:
            return await http.post(
                f"{self.base}/oauth/token", data={"client_id": self.client_id} | form
            )

    async def exchange(self, code: str, verifier: str, **overrides: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "resource": f"{self.base}/mcp",
        } | overrides
        return await self.token(**form)

    async def signed_in(
        self, user: HeadlessUser, **overrides: str
    ) -> tuple[str, str, dict[str, str]]:
        """Authorize as `user`: (code, verifier, the redirect's query)."""
        verifier, challenge = pkce_pair()
        location = await user.open(self.authorize_url(challenge, **overrides))
        query = query_of(location)
        return query.get("code", ""), verifier, query

    async def tokens(self, user: HeadlessUser, **overrides: str) -> dict[str, Any]:
        code, verifier, _query = await self.signed_in(user, **overrides)
        response = await self.exchange(code, verifier)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body
