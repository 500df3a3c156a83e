"""One contract, two brokers: every test body runs against MemoryBroker and RabbitBroker.

RabbitMQ tests use a random prefix for every exchange and queue (deleted afterwards), so they
never clash with a deployment or with each other. Outside CI an unreachable RabbitMQ skips
them; under CI=true it fails them. Nothing here sleeps to prove an absence: a sentinel
message that arrives first (or a second consumer that receives the rest) proves it by order.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NoReturn

import aio_pika
import pytest

from formation_mcp.broker.base import Broker, BrokerUnavailable, Delivery, work_routing_key
from formation_mcp.broker.factory import create_broker
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.broker.rabbitmq import BrokerTopologyError, RabbitBroker

RABBITMQ_URL = os.environ.get("FMCP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
IN_CI = os.environ.get("CI", "").lower() == "true"
MAX_ATTEMPTS = 3
DEADLINE_SECONDS = 10
RECONNECT_DEADLINE_SECONDS = 30
WORK_KEY = work_routing_key("echo")


class Inbox:
    """Collects what a consumer receives; tests await each item with a deadline."""

    def __init__(self) -> None:
        self._deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self._bodies: asyncio.Queue[bytes] = asyncio.Queue()
        self.received = 0

    async def handler(self, delivery: Delivery) -> None:
        """Keeps the delivery unacked: the test settles it."""
        self.received += 1
        self._deliveries.put_nowait(delivery)

    async def cancel_handler(self, body: bytes) -> None:
        self.received += 1
        self._bodies.put_nowait(body)

    async def next(self) -> Delivery:
        async with asyncio.timeout(DEADLINE_SECONDS):
            return await self._deliveries.get()

    async def next_cancel(self) -> bytes:
        async with asyncio.timeout(DEADLINE_SECONDS):
            return await self._bodies.get()


class RabbitBrokers:
    """Starts RabbitBroker instances sharing one random prefix; `close` closes them all and
    deletes the prefix's queues and exchanges."""

    def __init__(self) -> None:
        self.prefix = f"fmcp-test-{uuid.uuid4().hex[:12]}"
        self._brokers: list[RabbitBroker] = []

    async def new(self) -> RabbitBroker:
        broker = RabbitBroker(
            RABBITMQ_URL, MAX_ATTEMPTS, self.prefix, connect_timeout=5, publish_timeout=2
        )
        try:
            await broker.start()
        except BrokerUnavailable as exc:
            unreachable(f"RabbitMQ is not reachable at {RABBITMQ_URL}: {exc}")
        self._brokers.append(broker)
        return broker

    async def close(self) -> None:
        for broker in self._brokers:
            await broker.close()
        if self._brokers:
            await RabbitBroker(RABBITMQ_URL, MAX_ATTEMPTS, self.prefix).delete_topology()


def unreachable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
async def rabbit() -> AsyncIterator[RabbitBrokers]:
    brokers = RabbitBrokers()
    try:
        yield brokers
    finally:
        await brokers.close()


@pytest.fixture(params=["memory", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "memory":
        memory = MemoryBroker(MAX_ATTEMPTS)
        await memory.start()
        try:
            yield memory
        finally:
            await memory.close()
        return
    brokers = RabbitBrokers()
    try:
        yield await brokers.new()
    finally:
        await brokers.close()


async def test_work_reaches_a_consumer_with_attempt_1(broker: Broker) -> None:
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"\x00payload\xff", "m-1")
    delivery = await inbox.next()
    assert (delivery.body, delivery.attempt) == (b"\x00payload\xff", 1)
    await delivery.ack()


async def test_acked_work_is_not_delivered_again(broker: Broker) -> None:
    first = Inbox()
    consumer = await broker.consume_work(first.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"done", "m-1")
    delivery = await first.next()
    await consumer.stop()
    await delivery.ack()

    second = Inbox()
    await broker.consume_work(second.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"sentinel", "m-2")
    # Had the acked message come back, it would be ahead of the sentinel.
    sentinel = await second.next()
    assert (sentinel.body, sentinel.attempt) == (b"sentinel", 1)
    await sentinel.ack()


async def test_requeue_redelivers_with_attempt_2(broker: Broker) -> None:
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"again", "m-1")
    first = await inbox.next()
    await first.requeue()
    second = await inbox.next()
    assert (second.body, second.attempt) == (b"again", 2)
    await second.ack()


async def test_requeue_after_max_attempts_dead_letters_the_work(broker: Broker) -> None:
    work, dead = Inbox(), Inbox()
    await broker.consume_work(work.handler, prefetch=1)
    await broker.consume_dead_letters(dead.handler)
    await broker.publish_work(WORK_KEY, b"doomed", "m-1")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        delivery = await work.next()
        assert (delivery.body, delivery.attempt) == (b"doomed", attempt)
        await delivery.requeue()
    dead_letter = await dead.next()
    assert (dead_letter.body, dead_letter.attempt) == (b"doomed", MAX_ATTEMPTS)
    await dead_letter.ack()


async def test_prefetch_limits_unacked_deliveries_per_consumer(broker: Broker) -> None:
    holding, rest = Inbox(), Inbox()
    await broker.consume_work(holding.handler, prefetch=2)
    for number in range(5):
        await broker.publish_work(WORK_KEY, b"%d" % number, f"m-{number}")
    held = [await holding.next(), await holding.next()]
    # A second consumer gets the other 3: the first, holding 2 unacked, gets no more.
    await broker.consume_work(rest.handler, prefetch=5)
    others = [await rest.next() for _ in range(3)]
    assert holding.received == 2
    bodies = sorted(delivery.body for delivery in held + others)
    assert bodies == [b"0", b"1", b"2", b"3", b"4"]
    for delivery in held + others:
        await delivery.ack()


async def test_events_arrive_in_publish_order(broker: Broker) -> None:
    seen: list[int] = []
    all_seen = asyncio.Event()

    async def apply(delivery: Delivery) -> None:
        seen.append(int(delivery.body))
        await delivery.ack()
        if len(seen) == 200:
            all_seen.set()

    await broker.consume_events(apply, prefetch=16)
    for number in range(200):
        await broker.publish_event(b"%d" % number)
    async with asyncio.timeout(DEADLINE_SECONDS):
        await all_seen.wait()
    assert seen == list(range(200))


async def test_one_event_consumer_is_active_and_the_next_takes_over(broker: Broker) -> None:
    active, standby = Inbox(), Inbox()
    active_consumer = await broker.consume_events(active.handler, prefetch=10)
    await broker.consume_events(standby.handler, prefetch=10)
    for number in range(3):
        await broker.publish_event(b"%d" % number)
    # Round-robin would give the standby some of them, and this would time out.
    first_three = [await active.next() for _ in range(3)]
    assert [delivery.body for delivery in first_three] == [b"0", b"1", b"2"]
    for delivery in first_three:
        await delivery.ack()
    await active_consumer.stop()

    await broker.publish_event(b"3")
    taken_over = await standby.next()
    assert taken_over.body == b"3"
    await taken_over.ack()


async def test_cancels_fan_out_to_every_cancel_consumer(broker: Broker) -> None:
    one, two = Inbox(), Inbox()
    await broker.consume_cancels(one.cancel_handler)
    await broker.consume_cancels(two.cancel_handler)
    await broker.publish_cancel(b"stop op-1")
    assert await one.next_cancel() == b"stop op-1"
    assert await two.next_cancel() == b"stop op-1"


async def test_work_published_before_any_consumer_waits_for_one(broker: Broker) -> None:
    await broker.publish_work(WORK_KEY, b"early", "m-1")
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=1)
    delivery = await inbox.next()
    assert (delivery.body, delivery.attempt) == (b"early", 1)
    await delivery.ack()


async def test_publish_many_concurrently(broker: Broker) -> None:
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=100)
    await asyncio.gather(*(broker.publish_work(WORK_KEY, b"%d" % n, f"m-{n}") for n in range(100)))
    deliveries = [await inbox.next() for _ in range(100)]
    assert sorted(int(delivery.body) for delivery in deliveries) == list(range(100))
    for delivery in deliveries:
        await delivery.ack()


async def test_a_delivery_is_settled_only_once(broker: Broker) -> None:
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"once", "m-1")
    delivery = await inbox.next()
    await delivery.ack()
    with pytest.raises(RuntimeError, match="already acked or requeued"):
        await delivery.requeue()


async def test_a_failing_handler_hands_its_delivery_back(broker: Broker) -> None:
    attempts: list[int] = []
    succeeded = asyncio.Event()

    async def flaky(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt == 1:
            raise RuntimeError("boom (expected by the test)")
        await delivery.ack()
        succeeded.set()

    await broker.consume_work(flaky, prefetch=1)
    await broker.publish_work(WORK_KEY, b"flaky", "m-1")
    async with asyncio.timeout(DEADLINE_SECONDS):
        await succeeded.wait()
    assert attempts == [1, 2]


def test_factory_picks_the_implementation_from_the_url() -> None:
    assert isinstance(create_broker("memory://", 3), MemoryBroker)
    assert isinstance(create_broker("amqp://guest:guest@127.0.0.1:5672/", 3), RabbitBroker)
    assert isinstance(create_broker("amqps://user:secret@rabbit.example/vh", 3), RabbitBroker)
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker("redis://localhost", 3)


@pytest.mark.rabbitmq
async def test_unacked_work_comes_back_when_its_connection_closes(rabbit: RabbitBrokers) -> None:
    crashing = await rabbit.new()
    inbox = Inbox()
    await crashing.consume_work(inbox.handler, prefetch=1)
    await crashing.publish_work(WORK_KEY, b"orphan", "m-1")
    first = await inbox.next()
    assert first.attempt == 1
    await crashing.close()  # never acked: RabbitMQ requeues it

    survivor = await rabbit.new()
    rescued = Inbox()
    await survivor.consume_work(rescued.handler, prefetch=1)
    delivery = await rescued.next()
    assert (delivery.body, delivery.attempt) == (b"orphan", 2)
    await delivery.ack()


@pytest.mark.rabbitmq
async def test_publish_succeeds_again_after_connections_are_force_closed(
    rabbit: RabbitBrokers,
) -> None:
    broker = await rabbit.new()
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=10)
    await broker.publish_work(WORK_KEY, b"before", "m-1")
    before = await inbox.next()
    await before.ack()

    await force_close_connections(rabbit.prefix)
    await retry_while_unavailable(lambda: broker.publish_work(WORK_KEY, b"after", "m-2"))
    after = await inbox.next()  # the consumer was restored on the new connection too
    assert after.body == b"after"
    await after.ack()


async def retry_while_unavailable(publish: Callable[[], Awaitable[None]]) -> None:
    """What a caller does: retry on BrokerUnavailable, with backoff and a deadline."""
    delay = 0.05
    async with asyncio.timeout(RECONNECT_DEADLINE_SECONDS):
        for _ in range(60):
            try:
                await publish()
                return
            except BrokerUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
    pytest.fail("publishing still fails after the connection should have been restored")


async def force_close_connections(prefix: str) -> None:
    """Close (server side) the connections of the brokers with this prefix only, so other
    users of this RabbitMQ are not disturbed."""
    if shutil.which("rabbitmqctl") is None:
        unreachable("rabbitmqctl is needed to force-close connections")
    listing = await rabbitmqctl(
        "list_connections", "-q", "--no-table-headers", "pid", "client_properties"
    )
    pids = [line.split("\t")[0] for line in listing.splitlines() if prefix in line]
    assert pids, f"no RabbitMQ connection named after {prefix}"
    for pid in pids:
        await rabbitmqctl("close_connection", pid, "test")


async def rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    if process.returncode != 0:
        unreachable(f"rabbitmqctl {' '.join(args)} failed: {stderr.decode(errors='replace')}")
    return stdout.decode()


@pytest.mark.rabbitmq
async def test_consumers_are_restored_after_connections_are_force_closed(
    rabbit: RabbitBrokers,
) -> None:
    broker = await rabbit.new()
    work, cancels = Inbox(), Inbox()
    await broker.consume_work(work.handler, prefetch=1)
    await broker.consume_cancels(cancels.cancel_handler)

    await force_close_connections(rabbit.prefix)
    await retry_while_unavailable(lambda: broker.publish_work(WORK_KEY, b"work", "m-1"))
    delivery = await work.next()
    assert (delivery.body, delivery.attempt) == (b"work", 1)
    await delivery.ack()
    # The cancel queue (exclusive: it went away with the connection) is declared again, but
    # it only exists once the channel is restored: retry until a cancel gets through.
    got_cancel = asyncio.create_task(cancels.next_cancel())
    while not got_cancel.done():
        await broker.publish_cancel(b"cancel")
        await asyncio.wait([got_cancel], timeout=0.1)
    assert got_cancel.result() == b"cancel"


@pytest.mark.rabbitmq
async def test_a_lost_topology_is_declared_again_on_reconnect(rabbit: RabbitBrokers) -> None:
    broker = await rabbit.new()
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=1)
    await RabbitBroker(RABBITMQ_URL, MAX_ATTEMPTS, rabbit.prefix).delete_topology()  # a reset

    await force_close_connections(rabbit.prefix)
    await retry_while_unavailable(lambda: broker.publish_work(WORK_KEY, b"healed", "m-1"))
    delivery = await inbox.next()
    assert delivery.body == b"healed"
    await delivery.ack()


@pytest.mark.rabbitmq
async def test_a_queue_with_other_arguments_is_reported(rabbit: RabbitBrokers) -> None:
    first = await rabbit.new()
    await first.delete_topology()
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection, connection.channel() as channel:
        await channel.declare_queue(f"{rabbit.prefix}.work", durable=True)  # a classic queue
    broker = RabbitBroker(RABBITMQ_URL, MAX_ATTEMPTS, rabbit.prefix)
    with pytest.raises(BrokerTopologyError, match=rf"queue '{rabbit.prefix}\.work'.*delete it"):
        await broker.start()


async def test_acks_made_together_settle_every_delivery(broker: Broker) -> None:
    first = Inbox()
    consumer = await broker.consume_work(first.handler, prefetch=5)
    for number in range(5):
        await broker.publish_work(WORK_KEY, b"%d" % number, f"m-{number}")
    deliveries = [await first.next() for _ in range(5)]
    await asyncio.gather(*(delivery.ack() for delivery in deliveries))
    await consumer.stop()

    second = Inbox()
    await broker.consume_work(second.handler, prefetch=1)
    await broker.publish_work(WORK_KEY, b"sentinel", "m-sentinel")
    sentinel = await second.next()  # an unsettled one would come back ahead of it
    assert (sentinel.body, sentinel.attempt) == (b"sentinel", 1)
    await sentinel.ack()


async def test_acks_made_together_leave_a_delivery_between_them_unsettled(broker: Broker) -> None:
    inbox = Inbox()
    await broker.consume_work(inbox.handler, prefetch=3)
    for number in range(3):
        await broker.publish_work(WORK_KEY, b"%d" % number, f"m-{number}")
    one, two, three = [await inbox.next() for _ in range(3)]
    await asyncio.gather(one.ack(), three.ack())
    await two.requeue()  # still unsettled: an ack covering it would make this an error
    again = await inbox.next()
    assert (again.body, again.attempt) == (b"1", 2)
    await again.ack()
