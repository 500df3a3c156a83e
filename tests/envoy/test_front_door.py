"""The Envoy front door, for real: REST transcoding, errors as JSON, health, native gRPC, and
what Envoy itself refuses (unknown paths and query parameters, oversize bodies)."""

from __future__ import annotations

import grpc
import httpx
import pytest
from formation.mcp.v1 import (
    auth_pb2,
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import struct_pb2
from tests.support.envoy import assert_error, auth, field_violations
from tests.support.operations import Worker, metadata_of, new_operation
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer
from formation_mcp.openapi import OUTPUT as OPENAPI_DOCUMENT

RUNNING = operations_pb2.OperationMetadata.RUNNING


async def test_rest_call_with_a_token_lists_tools(envoy: str, session: auth_pb2.Session) -> None:
    async with httpx.AsyncClient(base_url=envoy) as client:
        response = await client.get(
            "/v1/tools", headers={"authorization": f"Bearer {session.access_token}"}
        )
    assert response.status_code == 200
    assert isinstance(response.json()["tools"], list)


async def test_rest_error_is_the_google_rpc_status_with_its_error_info(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as client:
        response = await client.get("/v1/tools")
    body = response.json()
    assert response.status_code == 401 and body["code"] == 16
    assert [d["reason"] for d in body["details"] if d["@type"].endswith("ErrorInfo")] == [
        "TOKEN_MISSING"
    ]


async def test_unknown_path_is_404_not_503(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as client:
        assert (await client.get("/v1/nope")).status_code == 404


async def test_healthz_goes_to_the_servers_http_side(envoy: str, app: Application) -> None:
    async with httpx.AsyncClient(base_url=envoy) as client:
        response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_the_openapi_document_is_served_by_the_http_side(envoy: str) -> None:
    async with httpx.AsyncClient(base_url=envoy) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == OPENAPI_DOCUMENT.read_bytes()


async def test_unknown_query_parameter_is_400(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        "/v1/operations", params={"colour": "blue"}, headers=auth(session.access_token)
    )
    assert response.status_code == 400
    assert "colour" in response.text


async def test_query_with_spaces_form_encoded_as_plus(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        "/v1/tools",
        params={"filter": 'category = "test-read"'},  # sent as filter=category+%3D+%22test-read%22
        headers=auth(session.access_token),
    )
    assert response.status_code == 200
    assert [tool["name"] for tool in response.json()["tools"]] == ["tools/test.read"]


OVERSIZE_BODIES = [int(mib * 1024 * 1024) for mib in (4.1, 4.5, 5, 6)] * 3


async def test_every_body_over_4_mib_is_413(session: auth_pb2.Session, envoy: str) -> None:
    """Several sizes, three times each, each on a new connection (Envoy closes it after 413)."""
    statuses: list[int] = []
    for size in OVERSIZE_BODIES:
        body = b'{"arguments":{"blob":"' + b"x" * size + b'"}}'
        async with httpx.AsyncClient(base_url=envoy) as client:
            response = await client.post(
                "/v1/tools/test.read:call",
                headers={**auth(session.access_token), "content-type": "application/json"},
                content=body,
            )
        statuses.append(response.status_code)
    assert statuses == [413] * len(OVERSIZE_BODIES)


async def test_body_of_3_mib_passes_envoy(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.read:call",
        headers=auth(session.access_token),
        json={"arguments": {"blob": "x" * (3 * 1024 * 1024)}},
    )
    assert response.status_code == 200
    assert response.json()["response"]["output"] == {"value": 42}


LONG_TEXT = "x" * 100_000
LONG_ARGUMENT_BUG = (
    "BUG: src/formation_mcp/tools/registry.py: a schema violation's description (and the "
    "status message) quote the whole offending value (jsonschema's \"'xxx...' is too long\"), "
    "so a 100 kB argument makes 200 kB of grpc-message / grpc-status-details-bin trailers: "
    "native clients fail with RESOURCE_EXHAUSTED (16 KiB metadata limit), and Envoy resets "
    "its whole HTTP/2 connection to the server (GOAWAY), a 502 here and every other call on "
    "that connection cut. Fix: describe violations without the value (or cap it at ~100 "
    "characters), and cap Status messages in errors.py"
)


async def test_a_long_invalid_argument_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.post(
        "/v1/tools/test.echo:call",
        headers=auth(session.access_token),
        json={"arguments": {"text": LONG_TEXT}},
    )
    body = assert_error(response, 400, 3, "ARGUMENTS_INVALID")
    assert field_violations(body) == ["arguments.text"]


async def test_a_long_invalid_argument_does_not_cut_other_calls_on_its_connection(
    app: Application, session: auth_pb2.Session, envoy: str
) -> None:
    """Native gRPC on one channel, so that the watch and the bad call share Envoy's worker and
    so its HTTP/2 connection to the server (REST clients share them the same way)."""
    name = await new_operation(app, session.account.name)
    metadata = bearer(session.access_token)
    async with grpc.aio.insecure_channel(envoy.removeprefix("http://")) as channel:
        watch = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
            operations_pb2.WatchOperationRequest(name=name), metadata=metadata, timeout=DEADLINE
        )
        snapshot = await watch.read()
        assert isinstance(snapshot, lro_pb2.Operation) and not snapshot.done
        arguments = struct_pb2.Struct()
        arguments.update({"text": LONG_TEXT})
        with pytest.raises(grpc.aio.AioRpcError):
            await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
                tools_pb2.CallToolRequest(name="tools/test.echo", arguments=arguments),
                metadata=metadata,
                timeout=DEADLINE,
            )
        await Worker(app, name).start()
        change = await watch.read()
        assert isinstance(change, lro_pb2.Operation) and metadata_of(change).state == RUNNING
        watch.cancel()
