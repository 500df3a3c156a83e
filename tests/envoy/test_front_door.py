"""The Envoy front door, for real: REST transcoding, errors as JSON, health, native gRPC."""

from __future__ import annotations

import httpx
from formation.mcp.v1 import auth_pb2

from formation_mcp.app import Application


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
