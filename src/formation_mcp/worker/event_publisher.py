"""Publishing a worker's events: the events emitted while one message is being published and
confirmed go together in the next one (like a group commit: the first goes at once, no timer).
Under load one publish and one confirm carry many operations' events, and the API server
receives, applies and acks them as one delivery.

A message is its first event with the others in `following` (`queue.proto`), in the order they
were emitted. Messages go one at a time, each once the one before it is confirmed, so the
events of every operation reach the API in the order its tool sent them. A message carries at
most MAX_EVENTS events and, unless one event alone is bigger, MAX_BYTES of them.

While the broker is unreachable a message is retried (events are idempotent) until it is
confirmed, unless the worker is stopping: then it fails, and so does every event in it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from formation.mcp.internal.v1 import queue_pb2

from formation_mcp.broker.base import BrokerUnavailable

log = logging.getLogger(__name__)

MAX_EVENTS = 128
MAX_BYTES = 256 * 1024
RETRY_FIRST_SECONDS = 0.05
RETRY_MAX_SECONDS = 5.0


class _Emitted:
    """One event as emitted (with the events that go with it), and its sender waiting."""

    __slots__ = ("events", "sent", "size")

    def __init__(self, event: queue_pb2.OperationEvent, sent: asyncio.Future[None]) -> None:
        self.events = _flattened(event)
        self.size = sum(each.ByteSize() for each in self.events)
        self.sent = sent


class EventPublisher:
    def __init__(
        self, publish: Callable[[bytes], Awaitable[None]], stopping: Callable[[], bool]
    ) -> None:
        """`publish`: one message with confirm (raises BrokerUnavailable); `stopping`: whether
        the worker stops (then an unreachable broker fails the events instead of retrying)."""
        self._publish = publish
        self._stopping = stopping
        self._pending: list[_Emitted] = []
        self._sender: asyncio.Task[None] | None = None

    async def send(self, event: queue_pb2.OperationEvent) -> None:
        """Returns once the message carrying `event` is confirmed."""
        loop = asyncio.get_running_loop()
        emitted = _Emitted(event, loop.create_future())
        self._pending.append(emitted)
        if self._sender is None or self._sender.done():
            self._sender = loop.create_task(self._send_pending())
        await emitted.sent

    async def _send_pending(self) -> None:
        while self._pending:
            batch = self._take_batch()
            try:
                await self._send_batch(batch)
            except BaseException as exc:
                for emitted in batch:
                    _settle(emitted.sent, exc)
                if not isinstance(exc, Exception):
                    for emitted in self._pending:
                        _settle(emitted.sent, exc)
                    self._pending.clear()
                    raise
            else:
                for emitted in batch:
                    _settle(emitted.sent, None)

    def _take_batch(self) -> list[_Emitted]:
        taken, events, size = 0, 0, 0
        for emitted in self._pending:
            if taken and (
                events + len(emitted.events) > MAX_EVENTS or size + emitted.size > MAX_BYTES
            ):
                break
            taken += 1
            events += len(emitted.events)
            size += emitted.size
        batch = self._pending[:taken]
        del self._pending[:taken]
        return batch

    async def _send_batch(self, batch: list[_Emitted]) -> None:
        events = [event for emitted in batch for event in emitted.events]
        body = events[0].SerializeToString()
        if len(events) > 1:  # a serialized message followed by another merges them
            body += queue_pb2.OperationEvent(following=events[1:]).SerializeToString()
        delay = RETRY_FIRST_SECONDS
        while True:
            try:
                await self._publish(body)
                return
            except BrokerUnavailable as exc:
                if self._stopping():
                    raise
                log.warning("cannot publish events (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)


def _flattened(event: queue_pb2.OperationEvent) -> list[queue_pb2.OperationEvent]:
    """The event without `following`, then the events that were in it."""
    if not event.following:
        return [event]
    head = queue_pb2.OperationEvent()
    head.CopyFrom(event)
    head.ClearField("following")
    return [head, *event.following]


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # its sender was cancelled and no longer waits
        return
    if error is None:
        future.set_result(None)
    elif isinstance(error, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(error)
