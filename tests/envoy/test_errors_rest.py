"""gRPC status -> HTTP status through Envoy, for every code the server returns (and can be made
to return cheaply): the body is the JSON google.rpc.Status with its code and ErrorInfo.

Envoy's mapping (grpcToHttpStatus): INVALID_ARGUMENT and FAILED_PRECONDITION are both 400,
UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS 409,
RESOURCE_EXHAUSTED 429. UNIMPLEMENTED (501) is no longer returned by the server.
"""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import StartEnvoy, assert_error, auth, b64, details, field_violations, url
from tests.support.operations import Worker, new_operation
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.auth.keys import public_bytes


async def test_negative_page_size_is_400_invalid_argument_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        url("/v1/operations", page_size=-1), headers=auth(session.access_token)
    )
    body = assert_error(response, 400, 3, "INVALID_ARGUMENT")
    assert field_violations(body) == ["page_size"]


async def test_bad_filter_is_400_invalid_argument_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        url("/v1/operations", filter="owner = bob"), headers=auth(session.access_token)
    )
    body = assert_error(response, 400, 3, "INVALID_ARGUMENT")
    assert field_violations(body) == ["filter"]
    assert "owner" in body["message"]


async def test_missing_token_is_401_token_missing(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/operations")
    assert_error(response, 401, 16, "TOKEN_MISSING")


async def test_garbage_token_is_401_token_invalid(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/operations", headers=auth("not.a.token"))
    assert_error(response, 401, 16, "TOKEN_INVALID")


async def test_missing_permission_is_403(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get("/v1/accounts", headers=auth(session.access_token))
    assert_error(response, 403, 7, "MISSING_PERMISSION")


async def test_unknown_operation_is_404_operation_not_found(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    name = "operations/" + "0" * 32
    response = await client.get(f"/v1/{name}", headers=auth(session.access_token))
    body = assert_error(response, 404, 5, "OPERATION_NOT_FOUND")
    assert details(body, "ErrorInfo")[0]["metadata"] == {"name": name}


async def test_creating_an_account_twice_is_409_account_exists(
    client: httpx.AsyncClient, admin: auth_pb2.Session
) -> None:
    account = {"public_key": b64(public_bytes(Ed25519PrivateKey.generate()))}
    first = await client.post("/v1/accounts", headers=auth(admin.access_token), json=account)
    assert first.status_code == 200
    again = await client.post("/v1/accounts", headers=auth(admin.access_token), json=account)
    assert_error(again, 409, 6, "ACCOUNT_EXISTS")


async def test_deleting_a_running_operation_is_failed_precondition_as_400(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    """gRPC FAILED_PRECONDITION is HTTP 400 in Envoy (not 412); the body's code tells it
    apart from INVALID_ARGUMENT."""
    name = await new_operation(app, session.account.name)
    await Worker(app, name).start()
    response = await client.delete(f"/v1/{name}", headers=auth(session.access_token))
    assert_error(response, 400, 9, "OPERATION_NOT_DONE")


async def test_login_rate_limit_is_429_with_retry_info(
    start_app: StartApp, start_envoy: StartEnvoy
) -> None:
    """On a server of its own, with one login attempt per minute per key."""
    application = await start_app(run_worker=False, login_rate_per_minute=1)
    base_url = await start_envoy(application)
    public_key = {"public_key": b64(public_bytes(Ed25519PrivateKey.generate()))}
    async with httpx.AsyncClient(base_url=base_url) as client:
        first = await client.post("/v1/auth/challenge", json=public_key)
        assert first.status_code == 200
        second = await client.post("/v1/auth/challenge", json=public_key)
    body = assert_error(second, 429, 8, "RATE_LIMITED")
    [retry] = details(body, "RetryInfo")
    assert retry["retry_delay"].endswith("s") and float(retry["retry_delay"][:-1]) > 0
