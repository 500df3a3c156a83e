"""Wrapping gRPC method handlers: the base of our interceptors.

A `WrappingInterceptor` wraps each method's behaviour once and caches the wrapped handler per
method, so a call pays for the wrapper's code only, not for building it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
UnaryBehavior = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Any]]
StreamBehavior = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Any]]
"""A server-streaming behaviour; wrappers must accept both async generators and coroutines
that write with `context.write()` (grpc's own health Watch is one)."""
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Deserializer = Callable[[bytes], Any]
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


def metadata_value(context: Context, key: str) -> str | None:
    """The first value of an invocation metadata key (keys are lower-case)."""
    for entry_key, value in context.invocation_metadata() or ():
        if entry_key == key:
            return value if isinstance(value, str) else value.decode()
    return None


async def responses(result: AsyncIterator[Any] | Awaitable[Any]) -> AsyncIterator[Any]:
    """The messages of a streaming behaviour, whichever of the two styles it uses."""
    if inspect.isawaitable(result):
        await result
        return
    async for response in result:
        yield response


class WrappingInterceptor(grpc.aio.ServerInterceptor):
    """Runs `wrap_unary` / `wrap_stream` around every unary and server-streaming method.
    Request-streaming methods (only reflection has them) pass through unchanged."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        raise NotImplementedError

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        raise NotImplementedError

    def wrap_deserializer(
        self, method: str, deserializer: Deserializer | None
    ) -> Deserializer | None:
        """The request deserializer of the wrapped handler: by default the handler's own."""
        return deserializer

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Handler) -> Handler:
        deserializer = self.wrap_deserializer(method, handler.request_deserializer)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self.wrap_stream(method, cast(StreamBehavior, handler.unary_stream)),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.unary_unary_rpc_method_handler(
            self.wrap_unary(method, cast(UnaryBehavior, handler.unary_unary)),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
