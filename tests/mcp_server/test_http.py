"""The MCP server over Streamable HTTP, through real Envoy, driven by the SDK's own client."""

from __future__ import annotations

import json

import anyio
import mcp_types as types
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.rpc import code_pb2
from mcp.shared.exceptions import MCPError
from tests.support.auth import Md
from tests.support.mcp import LEGACY, MODERN, ProgressLog, http_client, operation_of, text_of
from tests.support.operations import metadata_of
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.app import Application
from formation_mcp.tools.registry import HOST_SAFE_NAME

FORMFILE = (
    "NAME mcp-hello\nRUN echo one > one.txt\nRUN echo two && cp app.py out.py\nRUN echo three\n"
)


async def test_initialize_negotiates_2025_11_25(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "formation-mcp"
        assert client.server_capabilities.tools is not None


async def test_the_2026_07_28_revision_calls_tools_too(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN) as client:
        assert client.protocol_version == MODERN
        result = await client.call_tool("test.echo", {"text": "new"})
    assert result.structured_content == {"echo": "new"}


async def test_tools_are_listed_by_name_with_schemas_and_annotations(
    mcp_url: str, token: str, app: Application
) -> None:
    async with http_client(mcp_url, token) as client:
        listed = await client.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    names = [tool.name for tool in listed.tools]
    assert names == sorted(names) and "pack_build" in tools and "test_echo" in tools
    assert "test_admin" not in tools  # an admin's tool: this caller may not call it
    echo = tools["test_echo"]
    spec = app.registry.resolve("test.echo").spec
    assert echo.title == "Echo" and echo.description == spec.description
    assert echo.input_schema == spec.input_schema
    assert echo.output_schema == spec.output_schema
    assert echo.annotations == types.ToolAnnotations(
        title="Echo",
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )
    read = tools["test_read"].annotations
    assert read is not None and read.read_only_hint is True and read.open_world_hint is False
    build = tools["pack_build"]
    assert set(build.input_schema["properties"]) >= {"formfile", "context_files"}
    assert build.meta is not None and build.meta["formation.cloud/long_running"] is True
    assert build.meta["formation.cloud/name"] == "pack.build"


async def test_every_listed_tool_name_is_one_every_mcp_host_accepts(
    mcp_url: str, token: str, app: Application
) -> None:
    async with http_client(mcp_url, token) as client:
        listed = await client.list_tools()
    names = [tool.name for tool in listed.tools]
    callable_by_a_user = [tool for tool in app.registry if not tool.spec.admin_only]
    assert len(names) == len(callable_by_a_user) >= 8
    assert [name for name in names if not HOST_SAFE_NAME.fullmatch(name)] == []


@pytest.mark.parametrize("name", ["test_echo", "test.echo"])
async def test_a_tool_is_called_by_its_listed_name_or_its_dotted_one(
    mcp_url: str, token: str, name: str
) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool(name, {"text": "either"})
    assert result.is_error is False and result.structured_content == {"echo": "either"}


async def test_a_quick_tool_returns_structured_content_and_the_same_json_as_text(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test.echo", {"text": "hi", "count": 2})
    assert result.is_error is False
    assert result.structured_content == {"echo": "hihi"}
    assert json.loads(text_of(result)) == {"echo": "hihi"}


async def test_pack_build_reports_every_progress_step_then_the_result(
    mcp_url: str,
    token: str,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    as_account: Md,
) -> None:
    progress = ProgressLog()
    arguments = {"formfile": FORMFILE, "context_files": {"app.py": "print('hi')\n"}}
    async with http_client(mcp_url, token) as client:
        with anyio.fail_after(60):
            result = await client.call_tool("pack.build", arguments, progress_callback=progress)
    assert result.is_error is False, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["name"] == "mcp-hello"
    # Every change of the operation after its creation, as the API recorded it: each rise of
    # the percentage, and each new message at the same percentage, is one notification with
    # that change's stage and message; the values rise every time.
    watch = operations_stub.WatchOperation(
        operations_pb2.WatchOperationRequest(name=operation_of(result), after_sequence=1),
        metadata=as_account,
    )
    expected: list[tuple[int, str | None]] = []
    async for change in watch:
        metadata = metadata_of(change)
        message = ": ".join(p for p in (metadata.stage, metadata.status_message) if p) or None
        last_percent, last_message = expected[-1] if expected else (0, None)
        rose = metadata.progress_percent > last_percent
        if rose or (metadata.progress_percent < 100 and message and message != last_message):
            expected.append((metadata.progress_percent, message))
    values = [value for value, _total, _message in progress.steps]
    assert len(expected) >= 3
    assert expected[-1][0] == 100
    assert [(int(value), message) for value, _total, message in progress.steps] == expected
    assert values == sorted(set(values))


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(LEGACY, id="2025-11-25-notifications-cancelled"),
        pytest.param(MODERN, id="2026-07-28-stream-closed"),
    ],
)
async def test_cancelling_a_call_cancels_its_operation(
    mode: str,
    mcp_url: str,
    token: str,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    as_account: Md,
) -> None:
    progress = ProgressLog()

    async def cancelled() -> bool:
        listed = await operations_stub.ListOperations(
            operations_pb2.ListOperationsRequest(), metadata=as_account
        )
        operation = listed.operations[0]
        return bool(operation.done and operation.error.code == code_pb2.CANCELLED)

    async with http_client(mcp_url, token, mode=mode) as client:
        async with anyio.create_task_group() as group:

            async def call() -> None:
                await client.call_tool(
                    "test.sleep", {"steps": 1000, "delay_ms": 20}, progress_callback=progress
                )

            group.start_soon(call)
            with anyio.fail_after(DEADLINE):
                await progress.first.wait()
            group.cancel_scope.cancel()  # notifications/cancelled, or (2026) the stream closes
        await eventually(cancelled)  # while the session goes on


async def test_a_schema_violation_is_an_error_result_listing_the_fields(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test.echo", {"text": "x" * 101, "count": 0, "extra": 1})
    assert result.is_error is True
    text = text_of(result)
    assert "INVALID_ARGUMENT" in text
    for field in ("arguments.text", "arguments.count", "arguments:"):
        assert f"- {field}" in text, text
    assert "reason: ARGUMENTS_INVALID" in text


async def test_a_control_character_in_an_argument_is_an_error_result_naming_it(
    mcp_url: str, token: str
) -> None:
    """The MCP bridge calls the gRPC API, so the request gate's refusal reaches the model."""
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test.echo", {"text": "a\x00b"})
    assert result.is_error is True
    text = text_of(result)
    assert "- arguments.text: contains the control character U+0000 (NUL)" in text, text
    assert "reason: CONTROL_CHARACTER" in text


async def test_a_failing_tool_is_an_error_result_with_its_message(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test.fail", {})
    assert result.is_error is True
    assert "test.fail failed (FAILED_PRECONDITION): the test tool failed on purpose" in text_of(
        result
    )
    operation_of(result)  # names the operation, for GetOperation later


async def test_a_tool_the_role_may_not_call_is_an_error_result(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test.admin", {})
    assert result.is_error is True
    assert "PERMISSION_DENIED" in text_of(result)


async def test_an_unknown_tool_is_a_protocol_error(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool("no.such.tool", {})
    assert raised.value.code == types.INVALID_PARAMS
    assert "no.such.tool" in raised.value.message


async def test_a_long_call_without_a_progress_token_is_answered_within_one_call_tool(
    mcp_url: str, token: str, app: Application
) -> None:
    method = "/formation.mcp.v1.OperationsService/WatchOperation"

    def watches() -> float:
        labels = {"method": method, "code": "OK"}
        return app.metrics.registry.get_sample_value("fmcp_grpc_calls_total", labels) or 0.0

    before = watches()
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("test_sleep", {"steps": 2, "delay_ms": 1})
    assert result.is_error is False and result.structured_content == {"steps": 2}
    assert watches() == before
