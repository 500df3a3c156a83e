"""The client's side of the flow: the token endpoint (a code or a refresh token for tokens),
client registration (RFC 7591) and revocation (RFC 7009). Answers are JSON, never cached;
errors are RFC 6749 §5.2 `error` and `error_description`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from formation_mcp.auth.oauth_clients import ClientRegistry
from formation_mcp.auth.oauth_errors import OAuthError, invalid_request
from formation_mcp.auth.oauth_tokens import OAuthTokenManager
from formation_mcp.clock import now_us
from formation_mcp.errors import ResourceExhausted, Unavailable
from formation_mcp.oauth.params import client_credentials, form_values, read_body
from formation_mcp.proxies import ProxyTrust
from formation_mcp.public_urls import client_address

log = logging.getLogger(__name__)

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
CORS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, mcp-protocol-version",
    "access-control-max-age": "600",
}
"""Browser-based clients (the MCP Inspector) talk to these endpoints from a page of their own.
No cookies are involved, so any origin may: what a request proves is in the request."""

Handler = Callable[[Request], Awaitable[Response]]


def json_response(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=NO_STORE | CORS)


def error_response(error: OAuthError, basic: bool = False) -> JSONResponse:
    response = json_response(
        {"error": error.error, "error_description": error.description}, error.status
    )
    if error.status == 401 and basic:
        response.headers["www-authenticate"] = 'Basic realm="formation-mcp"'
    return response


def oauth_json(handler: Handler) -> Handler:
    """OAuthError and the server's own troubles as RFC 6749 JSON errors."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as error:
            basic = request.headers.get("authorization", "").lower().startswith("basic ")
            return error_response(error, basic)
        except ResourceExhausted as error:
            return error_response(OAuthError("temporarily_unavailable", error.message, 429))
        except Unavailable as error:
            return error_response(OAuthError("temporarily_unavailable", error.message, 503))

    return wrapped


class ClientEndpoints:
    def __init__(
        self, clients: ClientRegistry, tokens: OAuthTokenManager, proxies: ProxyTrust
    ) -> None:
        self._clients = clients
        self._tokens = tokens
        self._proxies = proxies

    async def token(self, request: Request) -> Response:
        form = await form_values(request)
        client_id, secret, method = client_credentials(request, form)
        address = client_address(request, self._proxies)
        client = await self._clients.resolve(client_id, address)
        self._clients.authenticate(client, secret, method)
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            answer = await self._tokens.exchange(
                client,
                form.get("code", ""),
                form.get("redirect_uri", ""),
                form.get("code_verifier", ""),
                form.get("resource", ""),
                address,
            )
        elif grant_type == "refresh_token":
            answer = await self._tokens.refresh(
                client,
                form.get("refresh_token", ""),
                form.get("resource", ""),
                form.get("scope", ""),
                address,
            )
        else:
            raise OAuthError(
                "unsupported_grant_type", "grant_type is authorization_code or refresh_token"
            )
        return json_response(answer.to_json())

    async def register(self, request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise invalid_request("register with an application/json body (RFC 7591)")
        try:
            body = json.loads(await read_body(request))
        except ValueError:
            raise OAuthError("invalid_client_metadata", "the body is not JSON") from None
        record, secret = await self._clients.register(body, client_address(request, self._proxies))
        answer: dict[str, Any] = {
            "client_id": record.client_id,
            "client_id_issued_at": now_us() // 1_000_000,
            **record.metadata.registration_response(),
        }
        if secret is not None:
            answer |= {"client_secret": secret, "client_secret_expires_at": 0}
        return json_response(answer, 201)

    async def revoke(self, request: Request) -> Response:
        form = await form_values(request)
        client_id, secret, method = client_credentials(request, form)
        client = await self._clients.resolve(client_id, client_address(request, self._proxies))
        self._clients.authenticate(client, secret, method)
        if "token" not in form:
            raise invalid_request("token is required")
        await self._tokens.revoke(
            client,
            form["token"],
            form.get("token_type_hint", ""),
            client_address(request, self._proxies),
        )
        return Response(status_code=200, headers=NO_STORE | CORS)


async def preflight(_request: Request) -> Response:
    return Response(status_code=204, headers=CORS)
