"""The network tools over MCP (Streamable HTTP through the front door): listed by their
host-safe names with schemas and annotations, and an instance exposed by an MCP host
answers at the URL the call returned."""

from __future__ import annotations

import grpc
import mcp_types as types
from formation.mcp.v1 import auth_pb2
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.auth import Md
from tests.support.mcp import http_client
from tests.support.network import answer, ship_echo
from tests.support.workloads import succeed

from formation_mcp.app import Application


async def test_the_network_tools_are_listed_with_their_schemas_and_annotations(
    app: Application, session: auth_pb2.Session, front_door: str
) -> None:
    url = front_door + "/mcp"
    async with http_client(url, mcp_token(app, session.access_token, url)) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}

    expose, unexpose, routes = (
        listed["network_expose"],
        listed["network_unexpose"],
        listed["network_list"],
    )
    assert expose.input_schema == app.registry.resolve("network.expose").spec.input_schema
    assert expose.annotations == types.ToolAnnotations(
        title="Expose an instance through the front door",
        read_only_hint=False,
        destructive_hint=False,
        idempotent_hint=True,
        open_world_hint=False,
    )
    assert unexpose.annotations is not None and unexpose.annotations.destructive_hint is True
    assert routes.annotations is not None and routes.annotations.read_only_hint is True
    assert routes.output_schema is not None
    assert set(routes.output_schema["properties"]) == {"count", "routes", "truncated"}


async def test_an_mcp_host_exposes_an_instance_and_its_url_answers(
    app: Application,
    channel: grpc.aio.Channel,
    as_account: Md,
    session: auth_pb2.Session,
    front_door: str,
) -> None:
    await ship_echo(channel, as_account, "via-mcp")
    url = front_door + "/mcp"
    async with http_client(url, mcp_token(app, session.access_token, url)) as client:
        result = await client.call_tool("network_expose", {"id": "via-mcp"})

    assert result.is_error is False and result.structured_content is not None
    route_url = result.structured_content["url"]
    assert route_url == front_door + "/apps/via-mcp/"
    assert (await answer(route_url)).text == "via-mcp /"
    await succeed(channel, as_account, "vm.delete", id="via-mcp", force=True)
