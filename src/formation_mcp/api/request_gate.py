"""The request gate: a request that does not decode, or that carries a control character where
none belongs (`request_strings`), is refused with INVALID_ARGUMENT before the call runs.

grpcio decodes a request before any interceptor's behaviour runs, and a deserializer that
raises ends the call with UNKNOWN and the Python exception's name. So the gate hands grpcio a
deserializer that never raises: what does not decode becomes a `RefusedRequest` carrying the
error, which the gate's behaviour raises inside the call, where `ErrorInterceptor` (outside
the gate) renders it like any other error. The gate runs for every unary and server-streaming
method of every service: whatever front door a call came through (gRPC, REST through Envoy's
transcoder, the MCP bridge), it ends here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor

from formation_mcp.api.request_strings import RequestCheck, checker_for
from formation_mcp.api.wrapping import (
    Context,
    Deserializer,
    StreamBehavior,
    UnaryBehavior,
    WrappingInterceptor,
    responses,
)
from formation_mcp.errors import InvalidArgument

REASON: Final = "MALFORMED_REQUEST"

_PLAIN_WHY: Final = (
    ("bad UTF-8", "a string field is not valid UTF-8"),
    (
        "MaxDepth",
        "messages are nested deeper than the protobuf decoder allows (100 levels; each level "
        "of objects or lists in a Struct such as `arguments` takes up to 3)",
    ),
    ("corrupt", "the protobuf wire format is corrupt or truncated"),
)
"""The protobuf runtime's (upb's) words for why a message does not decode, in plain words."""


@dataclass(frozen=True, slots=True)
class RefusedRequest:
    """What the gate's deserializer returns for bytes that are not a request."""

    error: InvalidArgument


def request_type(method: str) -> Descriptor | None:
    """The request message type of `/package.Service/Method`, if the default pool knows it."""
    service, _, name = method.removeprefix("/").partition("/")
    try:
        return descriptor_pool.Default().FindMethodByName(f"{service}.{name}").input_type
    except KeyError:
        return None


def why_undecodable(error: Exception) -> str:
    text = str(error)
    for needle, plain in _PLAIN_WHY:
        if needle in text:
            return plain
    return text.rpartition("': ")[2] or "it does not decode"


def undecodable(type_name: str, error: Exception) -> InvalidArgument:
    return InvalidArgument(
        f"the request is not a valid {type_name} message: {why_undecodable(error)}",
        reason=REASON,
        metadata={"type": type_name},
    )


class RequestGate(WrappingInterceptor):
    def wrap_deserializer(
        self, method: str, deserializer: Deserializer | None
    ) -> Deserializer | None:
        if deserializer is None:
            return None
        descriptor = request_type(method)
        type_name = descriptor.full_name if descriptor is not None else f"{method} request"
        decode = deserializer

        def deserialize(data: bytes) -> Any:
            try:
                return decode(data)
            except Exception as error:  # any way of not decoding is the client's
                return RefusedRequest(undecodable(type_name, error))

        return deserialize

    @staticmethod
    def _check(method: str) -> RequestCheck:
        descriptor = request_type(method)
        strings = checker_for(descriptor) if descriptor is not None else None

        def check(request: Any) -> None:
            if request.__class__ is RefusedRequest:
                raise request.error
            if strings is not None:
                strings(request)

        return check

    def wrap_unary(self, method: str, behavior: UnaryBehavior) -> UnaryBehavior:
        check = self._check(method)

        async def wrapped(request: Any, context: Context) -> Any:
            check(request)
            return await behavior(request, context)

        return wrapped

    def wrap_stream(self, method: str, behavior: StreamBehavior) -> StreamBehavior:
        check = self._check(method)

        async def wrapped(request: Any, context: Context) -> AsyncIterator[Any]:
            check(request)
            async for response in responses(behavior(request, context)):
                yield response

        return wrapped
