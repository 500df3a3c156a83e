"""`/mcp`: the Streamable HTTP transport, served by the server's own HTTP side (and through
Envoy). Each request is checked for its `Origin` (403) and its bearer token (401 with the
protected-resource metadata); then the SDK's session manager serves it, and tool calls go to our
gRPC API on loopback with that same token, so auth, ownership and audit are the API's own
(the token's audience is this endpoint, not the API: the call carries the process's bridge
secret and the audience, which the API's auth interceptor accepts from this endpoint alone).

The session manager needs a running task group: `start()` runs it in a task of its own (anyio
scopes must be left by the task that entered them), `stop()` ends every session first, so open
SSE streams never hold up the HTTP side's shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.authentication import AuthCredentials
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.client.auth import bearer
from formation_mcp.mcp_server.bridge import Context, CredentialsError, Metadata, ToolBridge
from formation_mcp.mcp_server.http_auth import (
    MCP_PATH,
    RESOURCE_METADATA_PATH,
    BearerAuthenticator,
    Verified,
    resource_metadata,
)
from formation_mcp.mcp_server.origins import OriginPolicy
from formation_mcp.proxies import BRIDGE_AUDIENCE_HEADER, BRIDGE_SECRET_HEADER, ProxyTrust

log = logging.getLogger(__name__)

SESSION_IDLE_SECONDS = 30 * 60.0
MAX_REQUEST_BYTES = 4 * 1024 * 1024


class _LoopbackBackend:
    """Our own gRPC API on loopback, called with the token the MCP client presented."""

    def __init__(self, grpc_target: Callable[[], str], bridge_secret: str) -> None:
        self._target = grpc_target
        self._bridge_secret = bridge_secret
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target())
        return self._channel

    async def credentials(self, ctx: Context) -> Metadata:
        request = ctx.request
        user = request.scope.get("user") if isinstance(request, HTTPConnection) else None
        if not isinstance(user, AuthenticatedUser) or not user.access_token.resource:
            raise CredentialsError("this MCP request carries no verified access token")
        return (
            *bearer(user.access_token.token),
            (BRIDGE_SECRET_HEADER, self._bridge_secret),
            (BRIDGE_AUDIENCE_HEADER, user.access_token.resource),
        )

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None


class McpHttpEndpoint:
    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        issuer: str,
        grpc_target: Callable[[], str],
        allowed_origins: tuple[str, ...] = (),
        proxies: ProxyTrust,
        bridge_secret: str,
        retention_seconds: float,
        sessionless: bool = False,
    ) -> None:
        """`bridge_secret`: the one the gRPC server of this process was given;
        `retention_seconds`: its FMCP_OPERATION_TTL (the tasks' ttl); `sessionless`: serve
        2025-11-25 without sessions, for a process whose port other processes share (the
        kernel hands each connection to any of them, so a session held in one process's
        memory would be missing on the next request; each request then stands alone, and
        what needs a session, the standing GET stream with its subscriptions and task status
        notifications, and logging/setLevel, is not offered)."""
        self._backend = _LoopbackBackend(grpc_target, bridge_secret)
        self._closing = False
        self._bridge = ToolBridge(
            self._backend, closing=lambda: self._closing, retention_seconds=retention_seconds
        )
        server = self._bridge.server()
        self._manager = StreamableHTTPSessionManager(
            app=server,
            session_idle_timeout=None if sessionless else SESSION_IDLE_SECONDS,
            max_request_body_size=MAX_REQUEST_BYTES,
            stateless=sessionless,
        )
        self._auth = BearerAuthenticator(verifier, issuer, proxies)
        self._issuer = issuer
        self._proxies = proxies
        self._origins = OriginPolicy(allowed_origins)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(MCP_PATH, endpoint=_Asgi(self._serve)),
            Route(RESOURCE_METADATA_PATH, endpoint=self._metadata, methods=["GET"]),
            Route(RESOURCE_METADATA_PATH + MCP_PATH, endpoint=self._metadata, methods=["GET"]),
        ]

    async def start(self) -> None:
        ready = asyncio.Event()

        async def run() -> None:
            async with self._manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.get_running_loop().create_task(run())
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            await self._task  # raises what stopped it

    async def stop(self) -> None:
        """End every MCP session (a tool call in flight stops waiting; its operation goes on)."""
        self._closing = True
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._bridge.close()
        await self._backend.close()

    def _forbidden_origin(self, connection: HTTPConnection) -> Response | None:
        origin = connection.headers.get("origin")
        if self._origins.allows(origin):
            return None
        log.warning("refused an MCP request from origin %r", origin)
        return JSONResponse(
            {"error": "forbidden_origin", "error_description": f"origin {origin} is not allowed"},
            status_code=403,
        )

    async def _metadata(self, request: Request) -> Response:
        return self._forbidden_origin(request) or resource_metadata(
            request, self._issuer, self._proxies
        )

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = HTTPConnection(scope)
        refused = self._forbidden_origin(connection)
        if refused is None:
            outcome = await self._auth.authenticate(connection)
            if isinstance(outcome, Verified):
                scope["user"] = outcome.user
                scope["auth"] = AuthCredentials([])
                await self._manager.handle_request(scope, receive, send)
                return
            refused = outcome
        await refused(scope, receive, send)


class _Asgi:
    """A plain ASGI callable (Starlette routes call functions and methods with a Request)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
