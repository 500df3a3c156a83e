"""Wrapping gRPC method handlers: what interceptors use to run code around every call."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, cast

import grpc

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
"""A server-streaming behaviour; wrappers must accept both async generators and coroutines
that write with `context.write()` (grpc's own health Watch is one)."""
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def wrap_handler(
    handler: Handler,
    unary: Callable[[UnaryBehavior], UnaryBehavior],
    stream: Callable[[StreamBehavior], StreamBehavior],
) -> Handler:
    """The same handler with `unary` / `stream` wrapped around its behaviour.
    Request-streaming methods (only reflection has them) pass through unchanged."""
    if handler.request_streaming:
        return handler
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            stream(cast(StreamBehavior, handler.unary_stream)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        unary(cast(UnaryBehavior, handler.unary_unary)),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


async def responses(result: AsyncIterator[Any] | Awaitable[Any]) -> AsyncIterator[Any]:
    """The messages of a streaming behaviour, whichever of the two styles it uses."""
    if inspect.isawaitable(result):
        await result
        return
    async for response in result:
        yield response
