"""EventPublisher: events emitted while a message is in flight go together in the next one,
flattened and in order; an unreachable broker is retried, or fails the events of a stopping
worker."""

from __future__ import annotations

import asyncio

import pytest
from formation.mcp.internal.v1 import queue_pb2
from tests.support.waiting import wait_until

from formation_mcp.broker.base import BrokerUnavailable
from formation_mcp.worker import event_publisher
from formation_mcp.worker.event_publisher import EventPublisher

DEADLINE_SECONDS = 5


class Broker:
    """Holds every publish until the test confirms it; records each message's events."""

    def __init__(self) -> None:
        self.messages: list[list[tuple[str, int]]] = []
        self.in_flight: list[asyncio.Future[None]] = []
        self.failures: list[Exception] = []

    async def publish(self, body: bytes) -> None:
        if self.failures:
            raise self.failures.pop(0)
        event = queue_pb2.OperationEvent.FromString(body)
        self.messages.append(
            [(each.operation, each.sequence) for each in [event, *event.following]]
        )
        confirmed = asyncio.get_running_loop().create_future()
        self.in_flight.append(confirmed)
        await confirmed

    async def confirm_next(self) -> None:
        """Confirm the message in flight (once there is one)."""
        await wait_until(lambda: bool(self.in_flight), DEADLINE_SECONDS)
        self.in_flight.pop(0).set_result(None)

    async def one_in_flight(self) -> None:
        await wait_until(lambda: len(self.in_flight) == 1, DEADLINE_SECONDS)


def event(operation: str, sequence: int) -> queue_pb2.OperationEvent:
    return queue_pb2.OperationEvent(operation=operation, sequence=sequence)


async def test_the_first_event_goes_at_once_and_the_next_ones_together_after_it() -> None:
    broker = Broker()
    publisher = EventPublisher(broker.publish, lambda: False)
    first = asyncio.ensure_future(publisher.send(event("operations/a", 1)))
    await broker.one_in_flight()
    later = [asyncio.ensure_future(publisher.send(event(f"operations/{n}", 1))) for n in "bcd"]
    await broker.confirm_next()
    await first
    await broker.confirm_next()
    await asyncio.gather(*later)
    assert broker.messages == [
        [("operations/a", 1)],
        [("operations/b", 1), ("operations/c", 1), ("operations/d", 1)],
    ]


async def test_an_event_with_following_ones_is_flattened_in_order() -> None:
    broker = Broker()
    publisher = EventPublisher(broker.publish, lambda: False)
    started = event("operations/a", 1)
    started.following.append(event("operations/a", 2))
    blocker = asyncio.ensure_future(publisher.send(event("operations/z", 1)))
    await broker.one_in_flight()
    sending = [
        asyncio.ensure_future(publisher.send(event("operations/b", 1))),
        asyncio.ensure_future(publisher.send(started)),
        asyncio.ensure_future(publisher.send(event("operations/b", 2))),
    ]
    await broker.confirm_next()
    await blocker
    await broker.confirm_next()
    await asyncio.gather(*sending)
    assert broker.messages[1] == [
        ("operations/b", 1),
        ("operations/a", 1),
        ("operations/a", 2),
        ("operations/b", 2),
    ]


async def test_a_message_carries_at_most_max_events() -> None:
    broker = Broker()
    publisher = EventPublisher(broker.publish, lambda: False)
    blocker = asyncio.ensure_future(publisher.send(event("operations/z", 1)))
    await broker.one_in_flight()
    count = event_publisher.MAX_EVENTS + 1
    sending = [
        asyncio.ensure_future(publisher.send(event("operations/a", n))) for n in range(count)
    ]
    await broker.confirm_next()
    await blocker
    await broker.confirm_next()
    await broker.confirm_next()
    await asyncio.gather(*sending)
    assert [len(message) for message in broker.messages] == [1, event_publisher.MAX_EVENTS, 1]
    assert [sequence for message in broker.messages[1:] for _, sequence in message] == list(
        range(count)
    )


async def test_an_unreachable_broker_is_retried_until_it_confirms() -> None:
    broker = Broker()
    broker.failures = [BrokerUnavailable("down"), BrokerUnavailable("still down")]
    publisher = EventPublisher(broker.publish, lambda: False)
    sending = asyncio.ensure_future(publisher.send(event("operations/a", 1)))
    await broker.confirm_next()
    await sending
    assert broker.messages == [[("operations/a", 1)]]


async def test_a_stopping_worker_fails_the_events_it_cannot_publish() -> None:
    broker = Broker()
    broker.failures = [BrokerUnavailable("down")]
    publisher = EventPublisher(broker.publish, lambda: True)
    with pytest.raises(BrokerUnavailable):
        async with asyncio.timeout(DEADLINE_SECONDS):
            await publisher.send(event("operations/a", 1))
    assert broker.messages == []
