"""The browser's side of the flow: the authorize endpoint, which checks the request and shows
the sign-in page, and the page's own address, which it reloads until the request is decided
and then sends the browser back to the client (with the code, or with access_denied).

Before the client and its redirect URI are known to be right, errors are shown on a page and
the browser goes nowhere (RFC 6749 §4.1.2.1); after, they go back to the client as `error`.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from formation_mcp.auth.authorizations import (
    AuthorizationManager,
    Finished,
    NewRequest,
    SendBack,
    redirect_with,
)
from formation_mcp.auth.oauth_clients import ClientRegistry
from formation_mcp.auth.oauth_errors import OAuthError
from formation_mcp.auth.oauth_rules import (
    RuleError,
    canonical_resource,
    check_code_challenge,
    check_state,
    narrower_scope,
    parse_scope,
    redirect_uri_matches,
)
from formation_mcp.errors import ResourceExhausted, Unavailable
from formation_mcp.oauth.metadata import REQUEST_PAGE_PATH
from formation_mcp.oauth.page import HEADERS, message_page, waiting_page
from formation_mcp.oauth.params import query_values
from formation_mcp.proxies import ProxyTrust
from formation_mcp.public_urls import client_address, mcp_resource_url

log = logging.getLogger(__name__)

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{20,64}")
TITLE = "Sign-in request refused"


def _back(redirect_uri: str, state: str, error: str, description: str) -> Response:
    url = redirect_with(redirect_uri, error=error, error_description=description, state=state)
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def _login_hint(text: str) -> str:
    """A key id from `login_hint` (`accounts/{key_id}` or the key id); "" for none."""
    kid = text.removeprefix("accounts/")
    if text and not _KEY_ID.fullmatch(kid):
        raise RuleError("login_hint must be an account (accounts/{key_id}) or its key id")
    return kid


class BrowserEndpoints:
    def __init__(
        self,
        clients: ClientRegistry,
        authorizations: AuthorizationManager,
        proxies: ProxyTrust,
    ) -> None:
        self._clients = clients
        self._authorizations = authorizations
        self._proxies = proxies

    async def authorize(self, request: Request) -> Response:
        try:
            params = query_values(request)
            client = await self._clients.resolve(
                params.get("client_id", ""), client_address(request, self._proxies)
            )
        except OAuthError as error:
            return message_page(TITLE, error.description, 400)
        registered = client.metadata.redirect_uris
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            if len(registered) != 1:
                return message_page(TITLE, "redirect_uri is required for this client", 400)
            redirect_uri = registered[0]
        elif not any(redirect_uri_matches(uri, redirect_uri) for uri in registered):
            return message_page(TITLE, "redirect_uri is not one this client registered", 400)
        state = params.get("state", "")
        try:
            check_state(state)
        except RuleError as error:
            return _back(redirect_uri, "", "invalid_request", str(error))
        if params.get("response_type") != "code":
            return _back(redirect_uri, state, "unsupported_response_type", "response_type is code")
        try:
            new = NewRequest(
                client=client,
                redirect_uri=redirect_uri,
                state=state,
                code_challenge=check_code_challenge(
                    params.get("code_challenge", ""), params.get("code_challenge_method", "plain")
                ),
                resource=self._resource(request, params.get("resource")),
                scope=self._scope(params.get("scope"), client.metadata.scope),
                login_hint=_login_hint(params.get("login_hint", "")),
            )
        except OAuthError as error:
            return _back(redirect_uri, state, error.error, error.description)
        except RuleError as error:
            return _back(redirect_uri, state, "invalid_request", str(error))
        try:
            record = await self._authorizations.start(new, client_address(request, self._proxies))
        except ResourceExhausted as error:
            return _back(redirect_uri, state, "temporarily_unavailable", error.message)
        except Unavailable as error:
            return _back(redirect_uri, state, "temporarily_unavailable", error.message)
        log.info(
            "authorization requested",
            extra={"client": client.client_id, "scope": new.scope, "redirect": redirect_uri},
        )
        outcome = await self._authorizations.page(record.id)
        assert not isinstance(outcome, SendBack | Finished)
        return waiting_page(outcome, f"{REQUEST_PAGE_PATH}/{record.id}")

    def _resource(self, request: Request, given: str | None) -> str:
        """RFC 8707: tokens are for this server's MCP endpoint, the only resource we serve
        (the one it is when none is named)."""
        ours = canonical_resource(mcp_resource_url(request, self._proxies))
        if given is None:
            return ours
        try:
            asked = canonical_resource(given)
        except RuleError as error:
            raise OAuthError("invalid_target", str(error)) from None
        if asked != ours:
            raise OAuthError("invalid_target", f"this server grants tokens for {ours} only")
        return ours

    @staticmethod
    def _scope(given: str | None, registered: str) -> str:
        """What the request asks for (the client's registered scope when it names none),
        never more than the client registered (RFC 7591 `scope`)."""
        try:
            asked = parse_scope(given if given is not None else registered)
            return narrower_scope(parse_scope(registered), asked) if registered else asked
        except RuleError as error:
            raise OAuthError("invalid_scope", str(error)) from None

    async def request_page(self, request: Request) -> Response:
        request_id = request.path_params["request_id"]
        if not _REQUEST_ID.fullmatch(request_id):
            return message_page(
                "Unknown sign-in request", "This sign-in request does not exist.", 404
            )
        outcome = await self._authorizations.page(request_id)
        if isinstance(outcome, SendBack):
            return RedirectResponse(outcome.url, status_code=303, headers=HEADERS)
        if isinstance(outcome, Finished):
            return message_page("Sign-in", outcome.message, outcome.status)
        return waiting_page(outcome, f"{REQUEST_PAGE_PATH}/{request_id}")
