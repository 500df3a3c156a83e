"""OperationsService over REST through Envoy: get, list, cancel, delete, wait."""

from __future__ import annotations

import httpx
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, field_violations, state, url
from tests.support.operations import Worker, new_operation

from formation_mcp.app import Application


async def test_get_operation(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    response = await client.get(f"/v1/{name}", headers=auth(session.access_token))
    assert response.status_code == 200
    operation = response.json()
    assert (operation["name"], operation["done"]) == (name, False)
    metadata = operation["metadata"]
    assert metadata["@type"] == "type.googleapis.com/formation.mcp.v1.OperationMetadata"
    assert (metadata["tool"], metadata["owner"], metadata["state"]) == (
        "test.sleep",
        session.account.name,
        "PENDING",
    )
    assert "error" not in operation and "response" not in operation


async def test_another_owners_operation_is_404_operation_not_found(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, "accounts/someone-else")
    response = await client.get(f"/v1/{name}", headers=auth(session.access_token))
    assert_error(response, 404, 5, "OPERATION_NOT_FOUND")


async def test_list_operations_filter_page_size_and_page_token_round_trip(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    owner = session.account.name
    sleeps = [await new_operation(app, owner) for _ in range(3)]
    await new_operation(app, owner, tool="test.echo")
    query: dict[str, str | int] = {"filter": 'tool = "test.sleep" AND done = false', "page_size": 2}
    first = await client.get(url("/v1/operations", **query), headers=auth(session.access_token))
    assert first.status_code == 200
    token = first.json()["next_page_token"]
    assert token
    second = await client.get(
        url("/v1/operations", **query, page_token=token), headers=auth(session.access_token)
    )
    assert second.status_code == 200
    assert second.json()["next_page_token"] == ""
    pages = [first.json()["operations"], second.json()["operations"]]
    assert [[op["name"] for op in page] for page in pages] == [sleeps[:0:-1], sleeps[:1]]


async def test_page_token_with_another_filter_is_400(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    for _ in range(2):
        await new_operation(app, session.account.name)
    first = await client.get(url("/v1/operations", page_size=1), headers=auth(session.access_token))
    response = await client.get(
        url(
            "/v1/operations",
            page_size=1,
            page_token=first.json()["next_page_token"],
            filter="state = PENDING",
        ),
        headers=auth(session.access_token),
    )
    body = assert_error(response, 400, 3, "INVALID_ARGUMENT")
    assert field_violations(body) == ["page_token"]


async def test_cancel_pending_operation_ends_it_cancelled(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    response = await client.post(f"/v1/{name}:cancel", headers=auth(session.access_token), json={})
    assert response.status_code == 200
    operation = response.json()
    assert (operation["done"], operation["error"]["code"], state(operation)) == (
        True,
        1,
        "CANCELLED",
    )


async def test_delete_finished_operation_then_it_is_404(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    await worker.start()
    await worker.succeed({"steps": 1})
    response = await client.delete(f"/v1/{name}", headers=auth(session.access_token))
    assert (response.status_code, response.json()) == (200, {})
    after = await client.get(f"/v1/{name}", headers=auth(session.access_token))
    assert_error(after, 404, 5, "OPERATION_NOT_FOUND")


async def test_wait_with_a_short_timeout_returns_the_operation_not_done(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    response = await client.post(
        f"/v1/{name}:wait", headers=auth(session.access_token), json={"timeout": "0.2s"}
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["done"]) == (name, False)
    assert response.elapsed.total_seconds() >= 0.2


async def test_wait_on_a_finished_operation_returns_its_response(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    await worker.start()
    await worker.succeed({"steps": 2})
    response = await client.post(
        f"/v1/{name}:wait", headers=auth(session.access_token), json={"timeout": "5s"}
    )
    assert response.json()["done"] is True
    assert response.json()["response"]["output"] == {"steps": 2}
