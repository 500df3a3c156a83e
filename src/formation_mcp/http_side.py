"""The server's own small HTTP side: /metrics (Prometheus) and /healthz."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Generator

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from formation_mcp.errors import Unavailable
from formation_mcp.metrics import Metrics


def build_app(metrics: Metrics, check_health: Callable[[], Awaitable[None]]) -> Starlette:
    async def metrics_endpoint(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        try:
            await check_health()
        except Unavailable as exc:
            return JSONResponse({"status": "unavailable", "reason": exc.message}, status_code=503)
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/metrics", metrics_endpoint), Route("/healthz", healthz)])


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our event loop: the application owns signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpSide:
    def __init__(self, listen: str, app: Starlette) -> None:
        host, _, port = listen.rpartition(":")
        self._socket = socket.create_server((host, int(port)), reuse_port=False)
        self.port: int = self._socket.getsockname()[1]
        self.address = f"{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
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
