"""`formation://tools/{name}` over Streamable HTTP through Envoy: a tool read by its name or
its MCP name, and its `name` completed from the tools the caller may call."""

from __future__ import annotations

import json

import grpc
import mcp_types as types
import pytest
from formation.mcp.v1 import tools_pb2, tools_pb2_grpc
from mcp.shared.exceptions import MCPError
from tests.support.auth import Md
from tests.support.mcp import MODERN, http_client

NOT_FOUND = -32002


@pytest.mark.parametrize("name", ["test.echo", "test_echo"])
async def test_a_tool_is_read_by_its_name_or_its_mcp_name(
    name: str, mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token, mode=MODERN) as client:
        read = await client.read_resource(f"formation://tools/{name}")
    content = read.contents[0]
    assert isinstance(content, types.TextResourceContents)
    body = json.loads(content.text)
    assert body["name"] == "tools/test.echo"
    assert body["inputSchema"]["properties"]["text"]["type"] == "string"


async def test_an_unknown_tool_is_not_found(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        with pytest.raises(MCPError) as missing:
            await client.read_resource("formation://tools/no.such.tool")
    assert missing.value.error.code == NOT_FOUND


async def test_tool_names_complete_from_the_tools_the_caller_may_call(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    async with http_client(mcp_url, token) as client:
        completed = await client.complete(
            types.ResourceTemplateReference(uri="formation://tools/{name}"),
            {"name": "name", "value": "test."},
        )
    callable_tools = await tools_pb2_grpc.ToolsServiceStub(channel).ListTools(
        tools_pb2.ListToolsRequest(page_size=1000, filter="allowed = true"), metadata=as_account
    )
    expected = sorted(
        tool.name.removeprefix("tools/")
        for tool in callable_tools.tools
        if tool.name.startswith("tools/test.")
    )
    assert "test.echo" in completed.completion.values
    assert completed.completion.values == expected
