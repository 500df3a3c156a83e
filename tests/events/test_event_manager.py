"""EventManager on every database: recording is idempotent by key, listing is newest first
with paging and owner scoping, watching resumes from a cursor exactly once, retention."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from tests.support.waiting import wait_until

from formation_mcp.changes import ChangeBus
from formation_mcp.clock import now_us
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.errors import InvalidArgument, PermissionDenied
from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import EventRecord, NewEvent, Severity
from formation_mcp.identity import Caller
from formation_mcp.permissions import ADMIN, USER


@pytest.fixture
async def events(database_url: str) -> AsyncIterator[EventManager]:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        yield EventManager(database, ChangeBus(), ttl_seconds=3600, sweep_batch=2)
    finally:
        await database.close()


@pytest.fixture
def user() -> Caller:
    return Caller(account=f"accounts/{uuid.uuid4().hex}", roles=frozenset({USER}))


def an_event(owner: str, kind: str = "instance.running", **changes: object) -> NewEvent:
    values: dict[str, object] = {
        "key": uuid.uuid4().hex,
        "type": kind,
        "resource": "instances/abc",
        "owner": owner,
        "time": now_us(),
        "severity": Severity.INFO,
        "message": f"{kind} happened",
        **changes,
    }
    return NewEvent(**values)  # type: ignore[arg-type]


async def test_an_event_recorded_twice_under_one_key_is_recorded_once(
    events: EventManager, user: Caller
) -> None:
    event = an_event(user.account)
    first = await events.record([event])
    again = await events.record([event, event])
    assert len(first) == 1 and again == []
    listed, _ = await events.list(user, "", 0, "")
    assert [record.id for record in listed] == [first[0].id]


async def test_events_are_listed_newest_first_a_page_at_a_time(
    events: EventManager, user: Caller
) -> None:
    recorded = await events.record([an_event(user.account) for _ in range(5)])
    ids = [record.id for record in recorded]
    assert ids == sorted(ids)
    first, token = await events.list(user, "", 2, "")
    second, token2 = await events.list(user, "", 2, token)
    third, last = await events.list(user, "", 2, token2)
    assert [r.id for r in first + second + third] == ids[::-1] and last == ""


async def test_a_page_token_from_another_filter_is_invalid(
    events: EventManager, user: Caller
) -> None:
    await events.record([an_event(user.account) for _ in range(3)])
    _, token = await events.list(user, "", 1, "")
    with pytest.raises(InvalidArgument) as info:
        await events.list(user, 'type = "pack.*"', 1, token)
    assert info.value.field_violations[0].field == "page_token"


async def test_a_caller_sees_only_their_own_events_and_admins_all_with_all_users(
    events: EventManager, user: Caller
) -> None:
    other = Caller(account=f"accounts/{uuid.uuid4().hex}", roles=frozenset({USER}))
    admin = Caller(account=f"accounts/{uuid.uuid4().hex}", roles=frozenset({ADMIN}))
    mine, theirs = await events.record([an_event(user.account), an_event(other.account)])
    assert [r.id for r in (await events.list(user, "", 0, ""))[0]] == [mine.id]
    everyone = {r.id for r in (await events.list(admin, "", 1000, "", all_users=True))[0]}
    assert {mine.id, theirs.id} <= everyone
    assert (await events.list(admin, "", 0, ""))[0] == []
    with pytest.raises(PermissionDenied):
        await events.list(user, "", 0, "", all_users=True)


async def test_the_filter_selects_by_type_prefix_and_severity(
    events: EventManager, user: Caller
) -> None:
    await events.record(
        [
            an_event(user.account, "instance.running"),
            an_event(user.account, "instance.failed", severity=Severity.ERROR),
            an_event(user.account, "pack.built"),
        ]
    )
    instances, _ = await events.list(user, 'type = "instance.*"', 0, "")
    errors, _ = await events.list(user, "severity = ERROR", 0, "")
    assert [r.type for r in instances] == ["instance.failed", "instance.running"]
    assert [r.type for r in errors] == ["instance.failed"]


async def next_events(stream: AsyncGenerator[EventRecord, None], count: int) -> list[EventRecord]:
    async with asyncio.timeout(10):
        return [await anext(stream) for _ in range(count)]


async def test_a_watch_gets_new_events_live_and_a_reconnect_resumes_exactly_once(
    events: EventManager, user: Caller
) -> None:
    stream = events.watch(user, "", "")
    waiting = asyncio.ensure_future(next_events(stream, 2))
    await wait_until(lambda: events.hub.watchers == 1)  # subscribed before anything happens
    first = await events.record([an_event(user.account), an_event(user.account)])
    assert [r.id for r in await waiting] == [r.id for r in first]
    await stream.aclose()

    later = await events.record([an_event(user.account) for _ in range(3)])
    resumed = events.watch(user, "", first[-1].name)
    assert [r.id for r in await next_events(resumed, 3)] == [r.id for r in later]
    latest = await events.record([an_event(user.account)])
    assert [r.id for r in await next_events(resumed, 1)] == [latest[0].id]
    await resumed.aclose()


async def test_a_watch_skips_what_its_filter_or_owner_rules_out(
    events: EventManager, user: Caller
) -> None:
    other = f"accounts/{uuid.uuid4().hex}"
    start = await events.record([an_event(user.account)])
    await events.record(
        [
            an_event(other, "instance.failed"),
            an_event(user.account, "instance.running"),
            an_event(user.account, "instance.failed"),
        ]
    )
    stream = events.watch(user, 'type = "instance.failed"', start[0].id)
    got = await next_events(stream, 1)
    assert got[0].type == "instance.failed" and got[0].owner == user.account
    await stream.aclose()


async def test_a_malformed_cursor_is_invalid_argument_naming_after(
    events: EventManager, user: Caller
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await anext(events.watch(user, "", "events/not-an-id"))
    assert info.value.field_violations[0].field == "after"


async def test_events_older_than_the_ttl_are_swept_in_batches(
    database_url: str, user: Caller
) -> None:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        keeping = EventManager(database, ChangeBus(), ttl_seconds=3600, sweep_batch=2)
        await keeping.record([an_event(user.account) for _ in range(5)])
        assert await keeping.sweep() == 0
        expiring = EventManager(database, ChangeBus(), ttl_seconds=-1, sweep_batch=2)
        assert await expiring.sweep() >= 5
        assert (await keeping.list(user, "", 0, ""))[0] == []
    finally:
        await database.close()
