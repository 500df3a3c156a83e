"""The server's own small HTTP side: /metrics (Prometheus), /healthz and /openapi.json, plus
the routes other parts mount on it (the MCP endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from formation_mcp.errors import Unavailable
from formation_mcp.listening import ListenError, describe
from formation_mcp.metrics import Metrics

OPENAPI_DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "formation_mcp.openapi.json"
"""The committed OpenAPI document of the REST API (`python -m formation_mcp.openapi`)."""


def build_app(
    metrics: Metrics,
    check_health: Callable[[], Awaitable[None]],
    openapi_document: Path = OPENAPI_DOCUMENT,
    routes: Sequence[BaseRoute] = (),
) -> Starlette:
    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        try:
            await check_health()
        except Unavailable as exc:
            return JSONResponse(
                {"status": "unavailable", "reason": exc.message}, status_code=exc.http_status
            )
        return JSONResponse({"status": "ok"})

    async def openapi(_request: Request) -> Response:
        try:
            document = await asyncio.to_thread(openapi_document.read_bytes)
        except FileNotFoundError:
            return JSONResponse({"status": "not_found"}, status_code=404)
        return Response(document, media_type="application/json")

    return Starlette(
        routes=[
            Route("/metrics", metrics_endpoint),
            Route("/healthz", healthz),
            Route("/openapi.json", openapi),
            *routes,
        ]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: the application owns signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpSide:
    def __init__(
        self,
        listen: str,
        app: Starlette,
        *,
        reuse_port: bool = False,
        variable: str = "FMCP_HTTP_LISTEN",
    ) -> None:
        host, _, port = listen.rpartition(":")
        try:
            self._socket = socket.create_server((host, int(port)), reuse_port=reuse_port)
        except OSError as exc:
            raise ListenError(variable, listen, describe(exc)) from None
        # Accepted connections inherit this: without it a response written as two small
        # segments (headers, then body) waits ~40 ms for the peer's delayed ACK (Nagle).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self._socket.getsockname()[1]
        self.address = f"{host}:{self.port}"
        # proxy_headers off: uvicorn would otherwise believe x-forwarded-for/-proto from any
        # loopback peer; what a front door says is judged by formation_mcp.proxies instead.
        config = uvicorn.Config(
            app, log_level="warning", lifespan="off", access_log=False, proxy_headers=False
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket])
        )
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the startup error
                raise OSError(f"the HTTP side on {self.address} stopped during start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()
