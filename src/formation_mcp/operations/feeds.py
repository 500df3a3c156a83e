"""Live feeds of operation changes for watchers in this process.

One `Feed` per watched operation holds a bounded buffer of recent changes, shared by every
watcher of that operation; each watcher keeps only its own cursor (the last sequence it
sent). When the store reports a change, the feed loads the new events from the database
once and wakes its watchers; a change this process wrote itself arrives with its snapshot
and needs no read. A watcher whose cursor fell behind the buffer (a slow client)
reads the gap from the database itself, so it never holds up the others, never grows memory
and never misses the terminal message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable

from google.longrunning import operations_pb2 as lro_pb2

from formation_mcp.operations.store import EventRecord

log = logging.getLogger(__name__)

EventLoader = Callable[[str, int, int], Awaitable[list[EventRecord]]]
Change = tuple[int, lro_pb2.Operation]
"""A change as watchers get it: its sequence and the operation message to send."""


class OperationDeleted(Exception):
    """The watched operation was deleted or expired."""


class Feed:
    def __init__(self, operation_id: str, capacity: int) -> None:
        self.operation_id = operation_id
        self.buffer: deque[Change] = deque(maxlen=capacity)
        self.base = 0  # the buffer holds every change after `base` up to `latest`
        self.latest = 0
        self.primed = False
        self.deleted = False
        self.dirty = False
        self.noticed = 0
        """The highest change noticed before the feed was primed."""
        self.watchers = 0
        self.refresh_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    def changed_event(self) -> asyncio.Event:
        return self._changed

    def wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def prime(self, sequence: int) -> None:
        if not self.primed:
            self.primed = True
            self.base = self.latest = sequence

    def append(self, sequence: int, operation: lro_pb2.Operation) -> None:
        if sequence <= self.latest:
            return
        if len(self.buffer) == self.buffer.maxlen:
            self.base = self.buffer[0][0]
        self.buffer.append((sequence, operation))
        self.latest = sequence

    def after(self, cursor: int) -> list[Change] | None:
        """Buffered changes after `cursor`, or None when the buffer no longer reaches back."""
        if cursor < self.base:
            return None
        return [change for change in self.buffer if change[0] > cursor]


def parse_snapshot(event: EventRecord) -> lro_pb2.Operation:
    operation = lro_pb2.Operation()
    operation.ParseFromString(event.snapshot)
    return operation


class FeedHub:
    """Every feed in this process, keyed by operation id."""

    def __init__(self, load_events: EventLoader, capacity: int) -> None:
        self._load = load_events
        self._capacity = capacity
        self._feeds: dict[str, Feed] = {}

    @property
    def watcher_count(self) -> int:
        return sum(feed.watchers for feed in self._feeds.values())

    @property
    def feed_ids(self) -> frozenset[str]:
        """Operations with a live feed in this process."""
        return frozenset(self._feeds)

    @contextlib.asynccontextmanager
    async def subscribe(self, operation_id: str) -> AsyncIterator[Subscription]:
        feed = self._feeds.get(operation_id)
        if feed is None:
            feed = self._feeds[operation_id] = Feed(operation_id, self._capacity)
        feed.watchers += 1
        try:
            yield Subscription(self, feed)
        finally:
            feed.watchers -= 1
            if feed.watchers == 0 and self._feeds.get(operation_id) is feed:
                # A refresh in flight is left to finish its read and stop: cancelling a
                # statement mid-way costs the database connection (it is discarded).
                del self._feeds[operation_id]

    def changed(self, operation_id: str, sequence: int) -> None:
        """The store committed change `sequence` of an operation (here or on another replica)."""
        feed = self._feeds.get(operation_id)
        if feed is None:
            return
        if not feed.primed:  # its first watcher is still reading the operation
            feed.noticed = max(feed.noticed, sequence)
            return
        if sequence <= feed.latest:
            return
        feed.dirty = True
        self._schedule(feed)

    def local_change(self, operation_id: str, sequence: int, operation: lro_pb2.Operation) -> None:
        """This process committed change `sequence` and has its snapshot: when it is the next
        change of a live feed, watchers get it without a database read. Otherwise the change
        notice that follows (`changed`) has the feed read what it misses."""
        feed = self._feeds.get(operation_id)
        if feed is not None and not feed.primed:
            feed.noticed = max(feed.noticed, sequence)
            return
        if feed is None or feed.dirty or sequence != feed.latest + 1:
            return
        feed.append(sequence, operation)
        feed.wake()

    def deleted(self, operation_id: str) -> None:
        feed = self._feeds.get(operation_id)
        if feed is not None:
            feed.deleted = True
            feed.wake()

    def resync(self) -> None:
        """Re-read every watched operation (after a missed-notification risk)."""
        for feed in self._feeds.values():
            feed.dirty = True
            self._schedule(feed)

    async def resync_every(self, seconds: float) -> None:
        """A safety net under change notification (runs until cancelled): re-read watched
        operations now and then."""
        while True:
            await asyncio.sleep(seconds)
            self.resync()

    def _schedule(self, feed: Feed) -> None:
        if feed.primed and (feed.refresh_task is None or feed.refresh_task.done()):
            feed.refresh_task = asyncio.get_running_loop().create_task(self._refresh(feed))

    async def _refresh(self, feed: Feed) -> None:
        try:
            while feed.dirty and feed.watchers > 0:
                feed.dirty = False
                events = await self._load(feed.operation_id, feed.latest, self._capacity)
                for event in events:
                    feed.append(event.sequence, parse_snapshot(event))
                if events:
                    feed.wake()
                if len(events) == self._capacity:
                    feed.dirty = True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not refresh the feed of operation %s", feed.operation_id)

    async def load_after(self, operation_id: str, cursor: int) -> list[Change]:
        events = await self._load(operation_id, cursor, self._capacity)
        return [(event.sequence, parse_snapshot(event)) for event in events]

    def prime(self, feed: Feed, sequence: int) -> None:
        """Changes noticed while the first watcher read the operation need a read only when
        they are newer than what it read."""
        feed.prime(sequence)
        if feed.noticed > feed.latest:
            feed.dirty = True
        if feed.dirty:
            self._schedule(feed)


class Subscription:
    """One watcher's view of a feed."""

    def __init__(self, hub: FeedHub, feed: Feed) -> None:
        self._hub = hub
        self._feed = feed

    def start_at(self, sequence: int) -> None:
        """The watcher has seen everything up to `sequence` (its snapshot)."""
        self._hub.prime(self._feed, sequence)

    async def changes_after(self, cursor: int, timeout: float | None = None) -> list[Change]:
        """The next changes after `cursor`; waits for one (up to `timeout`, then returns [])."""
        feed = self._feed
        while True:
            changed = feed.changed_event()
            buffered = feed.after(cursor)
            if buffered is None:
                return await self._hub.load_after(feed.operation_id, cursor)
            if buffered:
                return buffered
            if feed.deleted:
                raise OperationDeleted(feed.operation_id)
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                return []
