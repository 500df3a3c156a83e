"""Live events for the watchers in this process.

The hub keeps the id of the newest event it has read (`mark`). When an event is recorded
(here, or on another replica: a change notice) it reads the events after `mark` once, in id
order, and hands them to every subscription; each watcher filters them itself. A subscription
holds at most `capacity` events: a watcher that falls further behind is told (`Overflowed`)
and reads the gap from the table, so it never holds up the others or grows memory.

Ids are committed in id order (see `store`), so reading "after mark" never skips an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from formation_mcp.events.model import EventRecord

log = logging.getLogger(__name__)

READ_BATCH = 1000
Loader = Callable[[str, int], Awaitable[list[EventRecord]]]
"""Events after an id (oldest first), at most that many."""
Newest = Callable[[], Awaitable[str]]


class Overflowed(Exception):
    """The subscription fell more than its capacity behind: read the gap from the table."""


class Subscription:
    def __init__(self, capacity: int, start: str) -> None:
        self.start = start
        """The newest event the hub had read when this subscription began."""
        self._capacity = capacity
        self._events: deque[EventRecord] = deque()
        self._overflowed = False
        self._ready = asyncio.Event()

    def put(self, batch: list[EventRecord]) -> None:
        if self._overflowed:
            return
        if len(self._events) + len(batch) > self._capacity:
            self._events.clear()
            self._overflowed = True
        else:
            self._events.extend(batch)
        self._ready.set()

    async def next(self) -> list[EventRecord]:
        """The events received since the last call (waits for some)."""
        await self._ready.wait()
        self._ready.clear()
        if self._overflowed:
            self._overflowed = False
            raise Overflowed
        batch = list(self._events)
        self._events.clear()
        return batch


class EventHub:
    def __init__(self, load: Loader, newest: Newest, capacity: int) -> None:
        self._load = load
        self._newest = newest
        self._capacity = capacity
        self._subscriptions: set[Subscription] = set()
        self._mark: str | None = None
        self._again = False
        self._reading: asyncio.Task[None] | None = None

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    async def subscribe(self) -> Subscription:
        if self._mark is None:
            newest = await self._newest()
            if self._mark is None:
                self._mark = newest
        subscription = Subscription(self._capacity, self._mark)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        if not self._subscriptions and self._reading is None:
            self._mark = None  # nobody listens: start from the newest again next time

    def changed(self, _payload: str = "") -> None:
        """Something was recorded: read it (once, however many notices arrive meanwhile)."""
        if not self._subscriptions or self._mark is None:
            return
        if self._reading is not None:
            self._again = True
            return
        self._reading = asyncio.get_running_loop().create_task(self._read())

    def resync(self) -> None:
        self.changed()

    async def resync_every(self, seconds: float) -> None:
        """Notices may be lost (a reconnect): read anyway now and then."""
        while True:
            await asyncio.sleep(seconds)
            self.changed()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    async def _read(self) -> None:
        try:
            while True:
                self._again = False
                while self._mark is not None:
                    batch = await self._load(self._mark, READ_BATCH)
                    if not batch:
                        break
                    self._mark = batch[-1].id
                    for subscription in list(self._subscriptions):
                        subscription.put(batch)
                    if len(batch) < READ_BATCH:
                        break
                if not self._again:
                    return
        except Exception as exc:  # the database is down: the next notice or resync retries
            log.warning("could not read new events: %s", exc)
        finally:
            self._reading = None
            if not self._subscriptions:
                self._mark = None
