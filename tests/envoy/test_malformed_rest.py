"""Malformed REST requests through Envoy are 400 with a google.rpc.Status JSON body and a
plain message, never 500: what Envoy's transcoder refuses itself (a body that is not JSON or
not UTF-8, JSON nested too deep, an unknown query parameter) and what reaches the server
(bad UTF-8 in the path or query, which Envoy forwards as it is; protobuf nesting past the
decoder's limit; control characters in strings)."""

from __future__ import annotations

import httpx
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, field_violations, url

JSON = {"content-type": "application/json"}
NOT_A = "the request is not a valid {} message: {}"


def json_headers(session: auth_pb2.Session) -> dict[str, str]:
    return {**auth(session.access_token), **JSON}


def nested(depth: int) -> bytes:
    """`{"a": {"a": ... 1}}` with `depth` objects."""
    return b'{"a": ' * depth + b"1" + b"}" * depth


async def test_a_body_that_is_not_json_is_400_with_a_status(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call", content=b"{not json", headers=json_headers(session)
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"].startswith("Expected : between key:value pair.")


async def test_a_body_that_is_not_utf8_is_400_with_a_status(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/auth/login", content=b'{"challenge_id": "\xff\xfe"}', headers=JSON
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"].startswith("Encountered non UTF-8 code points.")


async def test_json_of_the_wrong_shape_is_400_with_a_status(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call", content=b'{"request_id": 5}', headers=json_headers(session)
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"] == "request_id: invalid value 5 for type TYPE_STRING"


async def test_an_unknown_query_parameter_is_400_with_a_status(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        url("/v1/operations", colour="blue"), headers=auth(session.access_token)
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert '"colour"' in body["message"]


async def test_bad_utf8_in_the_path_is_400_not_500(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get("/v1/operations/%ff%fe", headers=auth(session.access_token))
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"] == NOT_A.format(
        "formation.mcp.v1.GetOperationRequest", "a string field is not valid UTF-8"
    )


async def test_bad_utf8_in_a_query_parameter_is_400_not_500(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get("/v1/operations?filter=%ff", headers=auth(session.access_token))
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"] == NOT_A.format(
        "formation.mcp.v1.ListOperationsRequest", "a string field is not valid UTF-8"
    )


async def test_nesting_past_the_protobuf_limit_is_400(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    """40 objects: within Envoy's JSON limit, past protobuf's 100 levels (3 per object)."""
    content = b'{"arguments": {"text": ' + nested(40) + b"}}"
    response = await client.post(
        "/v1/tools/test.echo:call", content=content, headers=json_headers(session)
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"].startswith(
        "the request is not a valid formation.mcp.v1.CallToolRequest message: messages are "
        "nested deeper than the protobuf decoder allows"
    )


async def test_nesting_past_envoys_json_limit_is_400(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    content = b'{"arguments": {"text": ' + nested(200) + b"}}"
    response = await client.post(
        "/v1/tools/test.echo:call", content=content, headers=json_headers(session)
    )
    body = assert_error(response, 400, 3, "MALFORMED_REQUEST")
    assert body["message"].startswith("Message too deep.")


async def test_a_nul_in_a_json_argument_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call",
        content=b'{"arguments": {"text": "a\\u0000b"}}',
        headers=json_headers(session),
    )
    body = assert_error(response, 400, 3, "CONTROL_CHARACTER")
    assert field_violations(body) == ["arguments.text"]


async def test_a_nul_in_a_filter_value_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        url("/v1/operations", filter='tool = "a\x00b"'), headers=auth(session.access_token)
    )
    body = assert_error(response, 400, 3, "CONTROL_CHARACTER")
    assert field_violations(body) == ["filter"]


async def test_a_nul_in_a_login_challenge_id_is_400_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    content = b'{"challenge_id": "a\\u0000b", "public_key": "", "signature": ""}'
    response = await client.post("/v1/auth/login", content=content, headers=JSON)
    body = assert_error(response, 400, 3, "CONTROL_CHARACTER")
    assert field_violations(body) == ["challenge_id"]
