"""Server interceptors.

`ErrorInterceptor` is the one place where exceptions become `google.rpc.Status`: a domain
`FmcpError` keeps its code, reason and details; anything unexpected becomes INTERNAL with the
request id (and the traceback goes to the log). It also logs every call (request id, method,
code, latency) and counts it in the metrics.

Who the caller is, is decided by `api.auth_interceptor.AuthInterceptor`, which runs inside this one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_status import rpc_status

from formation_mcp.api.wrapping import (
    Context,
    StreamBehavior,
    UnaryBehavior,
    WrappingInterceptor,
    metadata_value,
    responses,
)
from formation_mcp.errors import FmcpError, Internal
from formation_mcp.metrics import Metrics

log = logging.getLogger("formation_mcp.rpc")

REQUEST_ID_KEY = "x-request-id"


class _CallRecord:
    """Outcome of one call, logged and counted when it ends."""

    __slots__ = ("code", "method", "metrics", "request_id", "start")

    def __init__(self, method: str, request_id: str, metrics: Metrics) -> None:
        self.method = method
        self.request_id = request_id
        self.metrics = metrics
        self.start = time.perf_counter()
        self.code = grpc.StatusCode.OK

    async def fail(self, context: Context, exc: BaseException) -> None:
        """Abort the call with the status for `exc` (raises grpc's AbortError)."""
        if isinstance(exc, FmcpError):
            error = exc
        else:
            log.error(
                "unexpected error",
                exc_info=exc,
                extra={"request_id": self.request_id, "method": self.method},
            )
            error = Internal(
                f"internal error; quote request id {self.request_id} when reporting it",
                metadata={"requestId": self.request_id},
            )
        self.code = error.code
        await context.abort_with_status(rpc_status.to_status(error.to_status(self.request_id)))

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.start
        self.metrics.rpc_finished(self.method, self.code.name, elapsed)
        level = logging.INFO if self.code is not grpc.StatusCode.INTERNAL else logging.ERROR
        if log.isEnabledFor(level):
            log.log(
                level,
                "rpc",
                extra={
                    "request_id": self.request_id,
                    "method": self.method,
                    "code": self.code.name,
                    "latency_ms": round(elapsed * 1000, 3),
                },
            )


class ErrorInterceptor(WrappingInterceptor):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def _start(self, method: str, context: Context) -> _CallRecord:
        request_id = metadata_value(context, REQUEST_ID_KEY) or uuid.uuid4().hex
        return _CallRecord(method, request_id, self._metrics)

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        async def wrapped(request: Any, context: Context) -> Any:
            call = self._start(method, context)
            try:
                return await behavior(request, context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                call.code = context.code() or grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                await call.fail(context, exc)
            finally:
                call.finish()

        return wrapped

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            call = self._start(method, context)
            try:
                async for response in responses(behavior(request, context)):
                    yield response
            except (grpc.aio.AbortError, asyncio.CancelledError):
                call.code = context.code() or grpc.StatusCode.CANCELLED
                raise
            except Exception as exc:
                await call.fail(context, exc)
            finally:
                call.finish()

        return wrapped
