"""The authorization server's routes on the server's HTTP side (Envoy routes /oauth/ and
/.well-known/oauth-authorization-server here, untouched by the REST transcoder)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from formation.mcp.v1 import auth_pb2
from google.protobuf import json_format
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from formation_mcp.auth.authorizations import AuthorizationManager
from formation_mcp.auth.oauth_clients import ClientRegistry
from formation_mcp.auth.oauth_tokens import OAuthTokenManager
from formation_mcp.oauth.authorize import BrowserEndpoints
from formation_mcp.oauth.metadata import (
    AUTHORIZE_PATH,
    JWKS_PATH,
    REGISTER_PATH,
    REQUEST_PAGE_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    authorization_server_metadata,
)
from formation_mcp.oauth.token import CORS, ClientEndpoints, json_response, oauth_json, preflight
from formation_mcp.proxies import ProxyTrust
from formation_mcp.public_urls import AUTHORIZATION_SERVER_METADATA_PATH, base_url

Jwks = Callable[[], Awaitable[auth_pb2.Jwks]]


class AuthorizationServer:
    def __init__(
        self,
        clients: ClientRegistry,
        authorizations: AuthorizationManager,
        tokens: OAuthTokenManager,
        jwks: Jwks,
        proxies: ProxyTrust,
    ) -> None:
        self._browser = BrowserEndpoints(clients, authorizations, proxies)
        self._client = ClientEndpoints(clients, tokens, proxies)
        self._jwks = jwks
        self._proxies = proxies

    def routes(self) -> list[BaseRoute]:
        return [
            Route(AUTHORIZATION_SERVER_METADATA_PATH, self._metadata, methods=["GET", "OPTIONS"]),
            Route(AUTHORIZE_PATH, self._browser.authorize, methods=["GET"]),
            Route(REQUEST_PAGE_PATH + "/{request_id}", self._browser.request_page, methods=["GET"]),
            Route(TOKEN_PATH, oauth_json(self._client.token), methods=["POST"]),
            Route(REGISTER_PATH, oauth_json(self._client.register), methods=["POST"]),
            Route(REVOKE_PATH, oauth_json(self._client.revoke), methods=["POST"]),
            Route(JWKS_PATH, self._jwks_document, methods=["GET", "OPTIONS"]),
            *(
                Route(path, preflight, methods=["OPTIONS"])
                for path in (TOKEN_PATH, REGISTER_PATH, REVOKE_PATH)
            ),
        ]

    async def _metadata(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=CORS)
        document = authorization_server_metadata(base_url(request, self._proxies))
        response = json_response(document)
        response.headers["cache-control"] = "max-age=3600"
        return response

    async def _jwks_document(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=CORS)
        document = json_format.MessageToDict(await self._jwks(), preserving_proto_field_name=True)
        response = json_response(document)
        response.headers["cache-control"] = "max-age=60"
        return response
