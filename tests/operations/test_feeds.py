"""Feeds: changes this process wrote reach its watchers with their snapshot (no database
read); changes it only heard about are read once per feed."""

from __future__ import annotations

import asyncio

from google.longrunning import operations_pb2 as lro_pb2
from tests.support.waiting import DEADLINE

from formation_mcp.operations.feeds import FeedHub
from formation_mcp.operations.store import EventRecord


class Events:
    """A stand-in for the events table that counts its reads."""

    def __init__(self) -> None:
        self.stored: list[EventRecord] = []
        self.reads = 0

    def add(self, sequence: int) -> lro_pb2.Operation:
        operation = lro_pb2.Operation(name=f"operations/op-{sequence}")
        self.stored.append(EventRecord(sequence, operation.SerializeToString()))
        return operation

    async def load(self, _operation_id: str, after: int, limit: int) -> list[EventRecord]:
        self.reads += 1
        return [event for event in self.stored if event.sequence > after][:limit]


async def test_a_local_change_reaches_watchers_without_a_read() -> None:
    events = Events()
    hub = FeedHub(events.load, capacity=16)
    async with hub.subscribe("op") as subscription:
        subscription.start_at(1)
        hub.local_change("op", 2, events.add(2))
        changes = await asyncio.wait_for(subscription.changes_after(1), DEADLINE)
    assert [sequence for sequence, _ in changes] == [2]
    assert events.reads == 0


async def test_a_change_heard_about_is_read_from_the_database() -> None:
    events = Events()
    hub = FeedHub(events.load, capacity=16)
    async with hub.subscribe("op") as subscription:
        subscription.start_at(1)
        events.add(2)
        hub.changed("op", 2)
        changes = await asyncio.wait_for(subscription.changes_after(1), DEADLINE)
    assert [sequence for sequence, _ in changes] == [2]
    assert events.reads == 1


async def test_a_local_change_past_a_gap_waits_for_the_read_of_the_gap() -> None:
    events = Events()
    hub = FeedHub(events.load, capacity=16)
    async with hub.subscribe("op") as subscription:
        subscription.start_at(1)
        events.add(2)
        hub.local_change("op", 3, events.add(3))  # 2 came from elsewhere: not applied alone
        hub.changed("op", 3)
        changes = await asyncio.wait_for(subscription.changes_after(1), DEADLINE)
    assert [sequence for sequence, _ in changes] == [2, 3]
    assert events.reads == 1


async def test_changes_noticed_before_priming_are_read_only_when_newer() -> None:
    events = Events()
    hub = FeedHub(events.load, capacity=16)
    async with hub.subscribe("op") as subscription:
        events.add(2)
        hub.changed("op", 2)  # while the watcher was reading the operation at sequence 2
        subscription.start_at(2)
        await asyncio.sleep(0)
        assert events.reads == 0
        events.add(3)
        hub.changed("op", 3)
        changes = await asyncio.wait_for(subscription.changes_after(2), DEADLINE)
    assert [sequence for sequence, _ in changes] == [3]


async def test_a_change_noticed_before_priming_that_the_read_missed_is_read() -> None:
    events = Events()
    hub = FeedHub(events.load, capacity=16)
    async with hub.subscribe("op") as subscription:
        events.add(2)
        events.add(3)
        hub.changed("op", 3)  # committed after the watcher's read saw sequence 2
        subscription.start_at(2)
        changes = await asyncio.wait_for(subscription.changes_after(2), DEADLINE)
    assert [sequence for sequence, _ in changes] == [3]
    assert events.reads == 1


async def test_a_read_in_flight_is_not_cancelled_when_the_last_watcher_leaves() -> None:
    """Cancelling a statement mid-way costs the database connection (it is discarded)."""
    reading, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def slow_load(_operation_id: str, _after: int, _limit: int) -> list[EventRecord]:
        reading.set()
        await release.wait()
        finished.set()
        return []

    hub = FeedHub(slow_load, capacity=16)
    async with hub.subscribe("op") as subscription:
        subscription.start_at(1)
        hub.changed("op", 2)
        await asyncio.wait_for(reading.wait(), DEADLINE)
    assert "op" not in hub.feed_ids
    release.set()
    await asyncio.wait_for(finished.wait(), DEADLINE)  # a cancelled read never gets here
