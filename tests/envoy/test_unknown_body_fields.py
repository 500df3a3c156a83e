"""A REST body with a field its request message does not have is 400 naming the field (the
transcoder alone would drop it, and the call would fail for a reason the client cannot see),
at any depth where the message is known; free-form JSON (a tool's arguments) takes any key."""

from __future__ import annotations

import json

import httpx
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, field_violations

JSON = {"content-type": "application/json"}


def headers(session: auth_pb2.Session) -> dict[str, str]:
    return {**auth(session.access_token), **JSON}


async def test_a_forgotten_arguments_wrapper_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call", headers=headers(session), json={"text": "hi"}
    )
    body = assert_error(response, 400, 3, "UNKNOWN_FIELD")
    assert field_violations(body) == ["text"]
    assert body["message"] == (
        "text: unknown field: formation.mcp.v1.CallToolRequest has arguments, name, "
        "reason, request_id, validate_only, wait"
    )


async def test_any_key_is_taken_inside_free_form_arguments(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    arguments = {"text": "hi", "count": 2}
    response = await client.post(
        "/v1/tools/test.echo:call", headers=headers(session), json={"arguments": arguments}
    )
    assert response.status_code == 200, response.text
    assert response.json()["response"]["output"] == {"echo": "hihi"}


async def test_json_names_and_proto_names_are_both_fields(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    body = {"arguments": {"text": "a"}, "requestId": "r-1", "validate_only": True}
    response = await client.post("/v1/tools/test.echo:call", headers=headers(session), json=body)
    assert response.status_code == 200, response.text


async def test_an_escaped_name_is_read_as_the_client_wrote_it(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    content = b'{"arguments": {"text": "a"}, "\\u0074ext": "hi"}'
    response = await client.post(
        "/v1/tools/test.echo:call", headers=headers(session), content=content
    )
    assert field_violations(assert_error(response, 400, 3, "UNKNOWN_FIELD")) == ["text"]


async def test_an_unknown_field_inside_a_known_message_is_named_by_its_path(
    client: httpx.AsyncClient, admin: auth_pb2.Session
) -> None:
    account = {"public_key": "AAAA", "roles": ["user"], "rolez": ["admin"]}
    response = await client.post("/v1/accounts", headers=headers(admin), json=account)
    body = assert_error(response, 400, 3, "UNKNOWN_FIELD")
    assert field_violations(body) == ["rolez"]
    assert "formation.mcp.v1.Account has " in body["message"]


async def test_an_unknown_field_of_a_wait_is_refused_before_the_wait(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/operations/0123:wait", headers=headers(session), json={"timout": "1s"}
    )
    assert field_violations(assert_error(response, 400, 3, "UNKNOWN_FIELD")) == ["timout"]


async def test_a_name_with_quotes_comes_back_as_valid_json(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    weird = 'a"b\\c\u00e9'
    response = await client.post(
        "/v1/tools/test.echo:call", headers=headers(session), content=json.dumps({weird: 1})
    )
    assert response.status_code == 400
    assert field_violations(response.json()) == ['a"b\\c?']
