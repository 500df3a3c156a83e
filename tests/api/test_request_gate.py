"""Requests that do not decode are INVALID_ARGUMENT with a plain message (not UNKNOWN naming a
Python exception), sent as raw bytes over a generic channel; control characters are refused
before the call runs. Through Envoy: tests/envoy/test_malformed_rest.py."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from formation.mcp.v1 import auth_pb2, operations_pb2, tools_pb2, tools_pb2_grpc
from google.protobuf.message import DecodeError
from tests.support.errors import error_info, field_violations

from formation_mcp.api.request_gate import why_undecodable
from formation_mcp.client.auth import bearer

GET_OPERATION = "/formation.mcp.v1.OperationsService/GetOperation"
WATCH_OPERATION = "/formation.mcp.v1.OperationsService/WatchOperation"
CALL_TOOL = "/formation.mcp.v1.ToolsService/CallTool"
NOT_A = "the request is not a valid {} message: {}"
BAD_UTF8 = "a string field is not valid UTF-8"
CORRUPT = "the protobuf wire format is corrupt or truncated"


def length_delimited(field: int, payload: bytes) -> bytes:
    """One LEN record of the protobuf wire format: tag, varint length, payload."""
    size, length = len(payload), b""
    while size >= 0x80:
        length += bytes([size & 0x7F | 0x80])
        size >>= 7
    return bytes([field << 3 | 2]) + length + bytes([size]) + payload


def nested_struct(depth: int) -> bytes:
    """A google.protobuf.Struct `{"a": {"a": ... "x"}}` with `depth` objects, as bytes
    (the runtime refuses to build one this deep itself)."""
    value = length_delimited(3, b"x")  # Value.string_value
    struct = b""
    for _ in range(depth):
        struct = length_delimited(1, length_delimited(1, b"a") + length_delimited(2, value))
        value = length_delimited(5, struct)  # Value.struct_value
    return struct


async def unary_raw(
    channel: grpc.aio.Channel, method: str, data: bytes, metadata: Any = ()
) -> grpc.aio.AioRpcError:
    """Send `data` as the request of `method` as it is; the call must fail."""
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        method, request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(data, metadata=metadata)
    return caught.value


def assert_malformed(error: grpc.aio.AioRpcError, message: str) -> None:
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)
    assert error_info(error).reason == "MALFORMED_REQUEST"


async def test_bad_utf8_in_a_string_field_is_invalid_argument(
    channel: grpc.aio.Channel, as_account: Any
) -> None:
    data = length_delimited(1, b"operations/\xff\xfe")
    error = await unary_raw(channel, GET_OPERATION, data, as_account)
    assert_malformed(error, NOT_A.format("formation.mcp.v1.GetOperationRequest", BAD_UTF8))


async def test_a_truncated_request_is_invalid_argument(
    channel: grpc.aio.Channel, as_account: Any
) -> None:
    data = operations_pb2.GetOperationRequest(name="operations/" + "0" * 32).SerializeToString()
    error = await unary_raw(channel, GET_OPERATION, data[:-5], as_account)
    assert_malformed(error, NOT_A.format("formation.mcp.v1.GetOperationRequest", CORRUPT))


async def test_a_corrupt_wire_format_is_invalid_argument(
    channel: grpc.aio.Channel, as_account: Any
) -> None:
    error = await unary_raw(channel, GET_OPERATION, b"\x0f\xff\xff\xff", as_account)  # wire type 7
    assert_malformed(error, NOT_A.format("formation.mcp.v1.GetOperationRequest", CORRUPT))


async def test_nesting_past_the_protobuf_limit_is_invalid_argument(
    channel: grpc.aio.Channel, as_account: Any
) -> None:
    data = length_delimited(1, b"tools/test.echo") + length_delimited(2, nested_struct(200))
    error = await unary_raw(channel, CALL_TOOL, data, as_account)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith(
        "the request is not a valid formation.mcp.v1.CallToolRequest message: messages are "
        "nested deeper than the protobuf decoder allows"
    )


async def test_a_streaming_method_refuses_an_undecodable_request(
    channel: grpc.aio.Channel, as_account: Any
) -> None:
    call: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
        WATCH_OPERATION, request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call(length_delimited(1, b"\xc3"), metadata=as_account):
            pass
    assert_malformed(caught.value, NOT_A.format("formation.mcp.v1.WatchOperationRequest", BAD_UTF8))


async def test_grpcs_own_health_service_is_guarded_too(channel: grpc.aio.Channel) -> None:
    error = await unary_raw(channel, "/grpc.health.v1.Health/Check", b"\x0a\x05ab")
    assert_malformed(error, NOT_A.format("grpc.health.v1.HealthCheckRequest", CORRUPT))


async def test_an_undecodable_request_is_refused_before_authentication(
    channel: grpc.aio.Channel,
) -> None:
    error = await unary_raw(channel, GET_OPERATION, length_delimited(1, b"\xff"))
    assert_malformed(error, NOT_A.format("formation.mcp.v1.GetOperationRequest", BAD_UTF8))


async def test_a_control_character_in_an_argument_is_invalid_argument_naming_it(
    channel: grpc.aio.Channel, session: auth_pb2.Session
) -> None:
    stub = tools_pb2_grpc.ToolsServiceStub(channel)
    request = tools_pb2.CallToolRequest(name="tools/test.echo")
    request.arguments.update({"text": "a\x00b"})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CallTool(request, metadata=bearer(session.access_token))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["arguments.text"]
    assert error_info(caught.value).reason == "CONTROL_CHARACTER"


def test_a_decoder_error_of_unknown_cause_is_passed_on_without_its_type_prefix() -> None:
    error = DecodeError("Error parsing message with type 'formation.mcp.v1.X': Something odd")
    assert why_undecodable(error) == "Something odd"


def test_a_decoder_error_without_words_still_gets_a_plain_reason() -> None:
    assert why_undecodable(ValueError()) == "it does not decode"
