"""`pack.list` and `pack.get` as an MCP host calls them: read-only, the caller's packs only,
the Formfile as its document."""

from __future__ import annotations

import grpc
from tests.support.auth import Md
from tests.support.mcp import http_client, text_of
from tests.support.workloads import build


async def test_the_pack_tools_are_read_only(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("pack_list", "pack_get"):
        annotations = tools[name].annotations
        assert annotations is not None and annotations.read_only_hint is True, name
        assert tools[name].output_schema is not None


async def test_pack_list_and_pack_get_show_the_callers_build(
    mcp_url: str, token: str, channel: grpc.aio.Channel, as_account: Md
) -> None:
    build_id = await build(channel, as_account)
    async with http_client(mcp_url, token) as client:
        listed = await client.call_tool("pack_list", {"limit": 1})
        got = await client.call_tool("pack_get", {"build_id": build_id})
        missing = await client.call_tool("pack_get", {"build_id": "0" * 64})
    assert listed.structured_content is not None
    assert [p["build_id"] for p in listed.structured_content["packs"]] == [build_id]
    assert got.structured_content is not None
    assert got.structured_content["name"] == "web"
    assert got.structured_content["formfile"]["expose"] == [8080]
    assert missing.is_error is True and "PACK_NOT_FOUND" in text_of(missing)


async def test_pack_build_takes_the_formfile_as_an_object(mcp_url: str, token: str) -> None:
    document = {"name": "mcp-object", "run": ["echo hi"], "entrypoint": ["python3", "app.py"]}
    async with http_client(mcp_url, token) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        result = await client.call_tool(
            "pack_build", {"formfile": document, "context_files": {"app.py": "print(1)\n"}}
        )
    assert tools["pack_build"].input_schema["properties"]["formfile"]["type"] == [
        "string",
        "object",
    ]
    assert result.is_error is False, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["name"] == "mcp-object"
