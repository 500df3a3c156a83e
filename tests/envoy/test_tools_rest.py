"""ToolsService over REST through Envoy: list (filter, paging), get, call."""

from __future__ import annotations

import httpx
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, field_violations, url


async def test_list_tools_with_a_filter(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        url("/v1/tools", filter='category = "test-read"'), headers=auth(session.access_token)
    )
    assert response.status_code == 200
    assert [tool["name"] for tool in response.json()["tools"]] == ["tools/test.read"]


async def test_list_tools_page_by_page(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        response = await client.get(
            url("/v1/tools", page_size=3, page_token=token),
            headers=auth(session.access_token),
        )
        assert response.status_code == 200
        page = response.json()
        assert len(page["tools"]) <= 3
        names += [tool["name"] for tool in page["tools"]]
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    everything = await client.get("/v1/tools", headers=auth(session.access_token))
    assert names == [tool["name"] for tool in everything.json()["tools"]]
    assert pages > 1


async def test_get_tool_by_alias(client: httpx.AsyncClient, session: auth_pb2.Session) -> None:
    response = await client.get("/v1/tools/test_echo", headers=auth(session.access_token))
    assert response.status_code == 200
    tool = response.json()
    assert (tool["name"], tool["aliases"]) == ("tools/test.echo", ["test_echo"])
    assert tool["input_schema"]["required"] == ["text"]
    assert tool["annotations"]["long_running"] is False


async def test_get_missing_tool_is_404_tool_not_found(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get("/v1/tools/no.such.tool", headers=auth(session.access_token))
    body = assert_error(response, 404, 5, "TOOL_NOT_FOUND")
    assert body["details"][0]["metadata"] == {"name": "tools/no.such.tool"}


async def test_call_quick_tool_returns_a_done_operation_with_its_output(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call",
        headers=auth(session.access_token),
        json={"arguments": {"text": "hi", "count": 2}},
    )
    assert response.status_code == 200
    operation = response.json()
    assert operation["done"] is True
    assert operation["response"] == {
        "@type": "type.googleapis.com/formation.mcp.v1.ToolResult",
        "output": {"echo": "hihi"},
    }
    assert operation["metadata"]["state"] == "SUCCEEDED"


async def test_call_missing_tool_is_404_tool_not_found(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/no.such.tool:call", headers=auth(session.access_token), json={}
    )
    assert_error(response, 404, 5, "TOOL_NOT_FOUND")


async def test_call_with_bad_arguments_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call",
        headers=auth(session.access_token),
        json={"arguments": {"text": "hi", "count": 99}},
    )
    body = assert_error(response, 400, 3, "ARGUMENTS_INVALID")
    assert field_violations(body) == ["arguments.count"]


async def test_call_of_an_admin_tool_by_a_user_is_403_missing_permission(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.admin:call", headers=auth(session.access_token), json={}
    )
    assert_error(response, 403, 7, "MISSING_PERMISSION")
