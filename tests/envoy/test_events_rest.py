"""EventsService over REST through Envoy: GET /v1/events (a page, newest first) and
GET /v1/events:watch (newline-delimited JSON from a cursor, then live)."""

from __future__ import annotations

import uuid

import httpx
from formation.mcp.v1 import auth_pb2
from tests.support.envoy import assert_error, auth, watch

from formation_mcp.app import Application
from formation_mcp.clock import now_us
from formation_mcp.events.model import NewEvent, Severity


def an_event(owner: str, kind: str) -> NewEvent:
    return NewEvent(
        uuid.uuid4().hex, kind, "instances/rest", owner, now_us(), Severity.ERROR, f"{kind}!"
    )


async def test_list_events_is_a_json_page_newest_first(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    owner = session.account.name
    await app.events.record([an_event(owner, "instance.running"), an_event(owner, "pack.built")])
    response = await client.get(
        "/v1/events",
        params={"filter": 'type = "instance.*"', "page_size": "10"},
        headers=auth(session.access_token),
    )
    assert response.status_code == 200
    events = response.json()["events"]
    assert [e["type"] for e in events] == ["instance.running"]
    assert events[0]["severity"] == "ERROR" and events[0]["name"].startswith("events/")


async def test_a_bad_filter_is_400_naming_the_field(
    client: httpx.AsyncClient, session: auth_pb2.Session
) -> None:
    response = await client.get(
        "/v1/events", params={"filter": "colour = red"}, headers=auth(session.access_token)
    )
    body = assert_error(response, 400, 3, "INVALID_ARGUMENT")
    assert "unknown field 'colour'" in body["message"]


async def test_watch_events_streams_from_the_cursor_then_live_as_ndjson(
    client: httpx.AsyncClient, app: Application, session: auth_pb2.Session
) -> None:
    owner = session.account.name
    before = await app.events.record([an_event(owner, "instance.created")])
    missed = await app.events.record([an_event(owner, "instance.running")])
    async with watch(
        client, "events", session.access_token, params={"after": before[0].name}
    ) as lines:
        assert (await lines.next())["name"] == missed[0].name
        live = await app.events.record([an_event(owner, "instance.failed")])
        line = await lines.next()
        assert (line["name"], line["type"]) == (live[0].name, "instance.failed")
