"""vm.metrics and vm.recommend over MCP (through Envoy): listed with their schemas and
read-only annotations, callable by their host-safe names."""

from __future__ import annotations

import pytest
from tests.support.mcp import http_client, text_of

from formation_mcp.app import Application


@pytest.mark.parametrize("name", ["vm.metrics", "vm.recommend"])
async def test_the_metrics_tools_are_listed_read_only_with_their_schemas(
    mcp_url: str, token: str, app: Application, name: str
) -> None:
    async with http_client(mcp_url, token) as client:
        listed = await client.list_tools()
    tool = {tool.name: tool for tool in listed.tools}[name.replace(".", "_")]
    spec = app.registry.resolve(name).spec
    assert tool.input_schema == spec.input_schema and tool.output_schema == spec.output_schema
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is True and tool.annotations.idempotent_hint is True


async def test_vm_recommend_with_no_instances_checks_none(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("vm_recommend", {})
    assert result.is_error is False
    assert result.structured_content == {
        "window_seconds": 3600.0,
        "instances_checked": 0,
        "findings": [],
        "truncated": False,
    }


async def test_vm_metrics_of_an_unknown_instance_is_an_error_saying_so(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token) as client:
        result = await client.call_tool("vm_metrics", {"id": "nothing-here"})
    assert result.is_error is True
    assert "no instance 'nothing-here'" in text_of(result)
