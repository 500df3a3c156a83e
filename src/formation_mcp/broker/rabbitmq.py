"""The RabbitMQ broker (aio-pika robust connection: it reconnects and restores consumers).

Topology (durable, declared idempotently by every process in `start()`; `<p>` is the prefix,
`fmcp` by default):
- work: topic exchange `<p>.work` -> quorum queue `<p>.work` (bound with `tool.#`), and one
  quorum queue `<p>.node.<node id>` per node (bound with `node.<node id>.#`, declared by the
  node's workers and by whoever publishes to it first, so nothing routed to a node that is
  down is lost: it waits for the node). RabbitMQ
  counts deliveries (`x-delivery-count`) and, once a message has been delivered `max_attempts`
  times (`x-delivery-limit` = max_attempts - 1), dead-letters it to `<p>.dead` when it comes
  back (requeue, or its consumer's channel closes with it unacked).
- dead letters: fanout exchange `<p>.dead` -> queue `<p>.dead`.
- events: fanout exchange `<p>.events` -> queue `<p>.events` with a single active consumer
  (publish order, one API server at a time, failover when it goes away).
- cancels: fanout exchange `<p>.cancel`; every cancel consumer binds its own exclusive,
  auto-delete queue to it.

Publishes use a channel with publisher confirms (persistent messages); connection or channel
errors, timeouts, nacks and unroutable messages raise `BrokerUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS, ChannelPreconditionFailed, PublishError
from yarl import URL

from formation_mcp.broker.ack_batching import ChannelAcks
from formation_mcp.broker.base import (
    NODE_ROUTING_PREFIX,
    WORK_ROUTING_PREFIX,
    BrokerUnavailable,
    CancelHandler,
    Consumer,
    Handler,
    check_node_id,
    routed_node,
)
from formation_mcp.broker.memory import (
    DEAD_LETTER_PREFETCH,
    Consumers,
    HandlerTasks,
    run_cancel_handler,
    run_handler,
)

log = logging.getLogger(__name__)

UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (*CONNECTION_EXCEPTIONS, TimeoutError)
"""What aio-pika raises when the connection or channel is down (or a call timed out)."""
STOP_TIMEOUT_SECONDS = 5.0
"""Bounds cancelling a consumer and closing its channel (which wait while reconnecting)."""


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a timeout has no message


class BrokerTopologyError(RuntimeError):
    """A queue or exchange already exists with other settings than the ones we declare."""


@dataclass(frozen=True)
class QueueSpec:
    """A durable queue and the exchange it is bound to."""

    name: str
    exchange: str
    routing_key: str
    arguments: dict[str, Any]


class Topology:
    """The exchanges and queues of one deployment (every name starts with `prefix`).

    Every channel declares what it uses (robustly): after a reconnect aio-pika declares it
    again, so even a RabbitMQ that lost its definitions gets them back."""

    def __init__(self, prefix: str, max_attempts: int) -> None:
        self.exchanges: dict[str, ExchangeType] = {
            f"{prefix}.work": ExchangeType.TOPIC,
            f"{prefix}.dead": ExchangeType.FANOUT,
            f"{prefix}.events": ExchangeType.FANOUT,
            f"{prefix}.cancel": ExchangeType.FANOUT,
        }
        self.cancel = f"{prefix}.cancel"
        self._prefix = prefix
        self._work_arguments: dict[str, Any] = {
            "x-queue-type": "quorum",
            "x-delivery-limit": max_attempts - 1,
            "x-dead-letter-exchange": f"{prefix}.dead",
        }
        self.work = QueueSpec(
            f"{prefix}.work", f"{prefix}.work", f"{WORK_ROUTING_PREFIX}#", self._work_arguments
        )
        self.nodes: set[str] = set()
        """Nodes whose queues this process declared (to delete them with the topology)."""
        self.dead = QueueSpec(f"{prefix}.dead", f"{prefix}.dead", "", {})
        self.events = QueueSpec(
            f"{prefix}.events", f"{prefix}.events", "", {"x-single-active-consumer": True}
        )

    def node_work(self, node: str) -> QueueSpec:
        node = check_node_id(node)
        self.nodes.add(node)
        return QueueSpec(
            f"{self._prefix}.node.{node}",
            self.work.exchange,
            f"{NODE_ROUTING_PREFIX}{node}.#",
            self._work_arguments,
        )

    async def declare(self, channel: AbstractChannel) -> None:
        """Declare everything (idempotent); raise `BrokerTopologyError` on a mismatch."""
        for spec in (self.work, self.dead, self.events):
            await self.declare_queue(channel, spec)
        await self.declare_exchange(channel, self.cancel)

    async def declare_exchange(self, channel: AbstractChannel, name: str) -> AbstractExchange:
        kind = self.exchanges[name]
        try:
            return await channel.declare_exchange(name, kind, durable=True)
        except ChannelPreconditionFailed as exc:
            raise BrokerTopologyError(
                f"RabbitMQ exchange {name!r} already exists with other settings than a durable "
                f"{kind.value} exchange ({exc}); delete it (rabbitmqctl delete_exchange {name}) "
                "so that it can be declared again"
            ) from exc

    async def declare_queue(self, channel: AbstractChannel, spec: QueueSpec) -> AbstractQueue:
        """Declare the queue, its exchange and the binding between them."""
        exchange = await self.declare_exchange(channel, spec.exchange)
        try:
            queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments)
        except ChannelPreconditionFailed as exc:
            raise BrokerTopologyError(
                f"RabbitMQ queue {spec.name!r} already exists with other arguments than "
                f"{spec.arguments} ({exc}); delete it (rabbitmqctl delete_queue {spec.name}; "
                "the messages in it are lost) so that it can be declared again"
            ) from exc
        await queue.bind(exchange, spec.routing_key)
        return queue

    async def delete(self, channel: AbstractChannel) -> None:
        nodes = [self.node_work(node) for node in sorted(self.nodes)]
        for spec in (self.work, self.dead, self.events, *nodes):
            await channel.queue_delete(spec.name)
        for name in self.exchanges:
            await channel.exchange_delete(name)


def _work_attempt(message: AbstractIncomingMessage) -> int:
    """Quorum queues count earlier deliveries in `x-delivery-count` (absent at first)."""
    count = message.headers.get("x-delivery-count")
    return 1 + (count if isinstance(count, int) else 0)


def _classic_attempt(base: int) -> Callable[[AbstractIncomingMessage], int]:
    """Classic queues only say whether a message was delivered before, not how often."""

    def attempt(message: AbstractIncomingMessage) -> int:
        return base + (1 if message.redelivered else 0)

    return attempt


class _RabbitDelivery:
    """One received message; acking it on a channel that is gone is logged, not raised (the
    message comes back anyway)."""

    def __init__(
        self,
        message: AbstractIncomingMessage,
        attempt: int,
        consumer: _QueueConsumer,
        acks: ChannelAcks,
    ) -> None:
        self._message = message
        self._attempt = attempt
        self._consumer = consumer
        self._acks = acks
        self.settled = False

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def attempt(self) -> int:
        return self._attempt

    async def ack(self) -> None:
        self._settle()
        try:
            await self._acks.ack(self._message)  # with the channel's other acks of this turn
        except UNAVAILABLE_ERRORS as exc:
            log.warning("could not ack (%s): the message will be delivered again", exc)
        await self._consumer.release()

    async def requeue(self) -> None:
        self._settle()
        self._acks.settled(self._message)
        try:
            await self._message.nack(requeue=True)
        except UNAVAILABLE_ERRORS as exc:
            log.warning("could not requeue (%s): the broker requeues it by itself", exc)
        await self._consumer.release()

    def _settle(self) -> None:
        if self.settled:
            raise RuntimeError("this delivery was already acked or requeued")
        self.settled = True


class _QueueConsumer:
    """Consumes one queue on a channel of its own (prefetch = the channel's QoS). After
    `stop`, the channel stays open until every delivery handed out is settled."""

    def __init__(
        self,
        channel: AbstractChannel,
        handler: Handler,
        attempt_of: Callable[[AbstractIncomingMessage], int],
        tasks: HandlerTasks,
    ) -> None:
        self._channel = channel
        self._handler = handler
        self._attempt_of = attempt_of
        self._tasks = tasks
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._unsettled = 0
        self._stopped = False
        self._acks: ChannelAcks | None = None

    async def start(self, queue: AbstractQueue) -> None:
        self._queue = queue
        self._tag = await queue.consume(self._on_message)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._unsettled += 1
        channel = message.channel  # the underlying channel: a new one after a reconnect
        if self._acks is None or self._acks.channel is not channel:
            self._acks = ChannelAcks(channel)
        self._acks.delivered(message)
        delivery = _RabbitDelivery(message, self._attempt_of(message), self, self._acks)
        # A task of our own: aiormq cancels the task it calls this in when the channel closes,
        # and a handler must outlive a lost connection (its work finishes; the ack fails).
        self._tasks.spawn(run_handler(self._handler, delivery))

    async def release(self) -> None:
        self._unsettled -= 1
        if self._stopped and self._unsettled == 0:
            await _close_channel(self._channel)

    async def stop(self) -> None:
        """No new deliveries; those handed out can still be acked or requeued."""
        if self._stopped:
            return
        self._stopped = True
        if self._queue is not None and self._tag is not None:
            try:
                async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                    await self._queue.cancel(self._tag)
            except UNAVAILABLE_ERRORS as exc:
                log.debug("cancelling a consumer failed: %s", exc)
        if self._unsettled == 0:
            await _close_channel(self._channel)


class _CancelConsumer:
    """Receives cancels on an exclusive, auto-delete queue of its own (gone with its
    channel; declared again with the same name after a reconnect)."""

    def __init__(self, channel: AbstractChannel, handler: CancelHandler, tasks: HandlerTasks):
        self._channel = channel
        self._handler = handler
        self._tasks = tasks

    async def start(self, exchange: AbstractExchange) -> None:
        name = f"{exchange.name}.{uuid.uuid4().hex}"
        queue = await self._channel.declare_queue(name, exclusive=True, auto_delete=True)
        await queue.bind(exchange)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._tasks.spawn(run_cancel_handler(self._handler, message.body))

    async def stop(self) -> None:
        await _close_channel(self._channel)


async def _close_channel(channel: AbstractChannel) -> None:
    if not channel.is_closed:
        try:
            async with asyncio.timeout(STOP_TIMEOUT_SECONDS):
                await channel.close()
        except UNAVAILABLE_ERRORS as exc:
            log.debug("closing a channel failed: %s", exc)


class RabbitBroker:
    """The broker over RabbitMQ (see the module docstring for the topology)."""

    def __init__(
        self,
        url: str,
        max_attempts: int,
        prefix: str = "fmcp",
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 1.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self._url = url
        self._prefix = prefix
        self._topology = Topology(prefix, max_attempts)
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._tasks = HandlerTasks()
        self._connection: AbstractRobustConnection | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._closed = False
        self._declared_nodes: set[str] = set()
        self.reconnects = 0
        """How often the connection was re-established (observability, tests)."""

    async def start(self) -> None:
        """Connect and declare the topology; may be called again after it failed."""
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        if self._connection is not None:
            return
        connection = await self._connect()
        try:
            async with connection.channel() as channel:
                await self._topology.declare(channel)
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._exchanges = {
                name: await self._topology.declare_exchange(publisher, name)
                for name in self._topology.exchanges
            }
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, UNAVAILABLE_ERRORS) and not isinstance(exc, BrokerTopologyError):
                raise BrokerUnavailable(f"RabbitMQ failed during start: {_describe(exc)}") from exc
            raise
        connection.close_callbacks.add(self._on_connection_closed)
        connection.reconnect_callbacks.add(self._on_reconnected)
        self._connection = connection

    async def _connect(self) -> AbstractRobustConnection:
        """`connect_robust`, but the connection is closed when connecting fails or is
        cancelled (else its reconnect loop would live on in the background)."""
        url = URL(self._url)
        if "reconnect_interval" not in url.query:
            url = url.update_query(reconnect_interval=str(self._reconnect_interval))
        connection = aio_pika.RobustConnection(
            url, client_properties={"connection_name": f"formation-mcp {self._prefix}"}
        )
        try:
            async with asyncio.timeout(self._connect_timeout):
                await connection.connect(timeout=self._connect_timeout)
        except BaseException as exc:
            await connection.close()
            if isinstance(exc, UNAVAILABLE_ERRORS):
                raise BrokerUnavailable(f"cannot connect to RabbitMQ: {_describe(exc)}") from exc
            raise
        return connection

    def _on_connection_closed(self, _sender: object, exc: BaseException | None) -> None:
        if not self._closed:
            log.warning("RabbitMQ connection lost (%s); reconnecting", exc)

    def _on_reconnected(self, _sender: object) -> None:
        self.reconnects += 1
        self._declared_nodes.clear()  # declare again: RabbitMQ may have lost its definitions
        log.warning("RabbitMQ connection re-established; consumers restored")

    async def close(self) -> None:
        """Cancel running handlers and close the connection (RabbitMQ requeues whatever was
        delivered and not yet acked)."""
        self._closed = True
        await self._tasks.cancel_all()
        connection, self._connection, self._exchanges = self._connection, None, {}
        if connection is not None:
            await connection.close()

    async def delete_topology(self) -> None:
        """Delete this prefix's queues and exchanges (for tests), on a connection of its own."""
        connection = await aio_pika.connect(self._url, timeout=self._connect_timeout)
        async with connection, connection.channel() as channel:
            await self._topology.delete(channel)

    async def delete_node_queues(self, nodes: Iterable[str]) -> None:
        """Delete the work queues of these nodes (for tests whose workers ran elsewhere: a
        process only knows the node queues it declared itself)."""
        connection = await aio_pika.connect(self._url, timeout=self._connect_timeout)
        async with connection, connection.channel() as channel:
            for node in nodes:
                await channel.queue_delete(self._topology.node_work(node).name)

    async def publish_work(self, routing_key: str, body: bytes, message_id: str) -> None:
        node = routed_node(routing_key)
        if node and node not in self._declared_nodes:
            await self._declare_node_queue(node)
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=message_id
        )
        await self._publish(self._topology.work.exchange, routing_key, message, mandatory=True)

    async def _declare_node_queue(self, node: str) -> None:
        """The node's queue, so work for a node that is not consuming right now waits there
        (a publish to a queue nobody declared would be unroutable)."""
        connection = self._require_connection()
        try:
            async with asyncio.timeout(self._publish_timeout):
                async with connection.channel() as channel:
                    await self._topology.declare_queue(channel, self._topology.node_work(node))
        except UNAVAILABLE_ERRORS as exc:
            raise BrokerUnavailable(
                f"cannot declare the work queue of node {node}: {_describe(exc)}"
            ) from exc
        self._declared_nodes.add(node)

    async def publish_event(self, body: bytes) -> None:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await self._publish(self._topology.events.exchange, "", message, mandatory=True)

    async def publish_cancel(self, body: bytes) -> None:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        # Nobody to receive it (no worker running) is fine: there is nothing to cancel.
        await self._publish(self._topology.cancel, "", message, mandatory=False)

    async def _publish(
        self, exchange_name: str, routing_key: str, message: aio_pika.Message, *, mandatory: bool
    ) -> None:
        self._require_connection()
        exchange = self._exchanges[exchange_name]
        try:
            async with asyncio.timeout(self._publish_timeout):
                await exchange.publish(message, routing_key, mandatory=mandatory)
        except PublishError as exc:
            raise BrokerUnavailable(
                f"RabbitMQ has no queue for this message ({exchange_name}): {exc}"
            ) from exc
        except UNAVAILABLE_ERRORS as exc:
            raise BrokerUnavailable(
                f"RabbitMQ did not confirm the message: {_describe(exc)}"
            ) from exc

    async def consume_work(self, handler: Handler, prefetch: int, node: str = "") -> Consumer:
        if not node:
            return await self._consume(self._topology.work, handler, prefetch, _work_attempt)
        spec = self._topology.node_work(node)
        mine = await self._consume(spec, handler, prefetch, _work_attempt)
        self._declared_nodes.add(node)
        try:  # the general queue last: once it consumes, work may arrive at once
            general = await self._consume(self._topology.work, handler, prefetch, _work_attempt)
        except BaseException:
            await mine.stop()
            raise
        return Consumers([mine, general])

    async def consume_events(self, handler: Handler, prefetch: int) -> Consumer:
        return await self._consume(self._topology.events, handler, prefetch, _classic_attempt(1))

    async def consume_dead_letters(self, handler: Handler) -> Consumer:
        # Dead-lettering drops `x-delivery-count`; the work was delivered max_attempts times.
        attempt_of = _classic_attempt(self.max_attempts)
        return await self._consume(self._topology.dead, handler, DEAD_LETTER_PREFETCH, attempt_of)

    async def consume_cancels(self, handler: CancelHandler) -> Consumer:
        channel = await self._open_channel()
        consumer = _CancelConsumer(channel, handler, self._tasks)

        async def start() -> None:
            exchange = await self._topology.declare_exchange(channel, self._topology.cancel)
            await consumer.start(exchange)

        await _start_on(channel, start(), self._connect_timeout)
        return consumer

    async def _consume(
        self,
        spec: QueueSpec,
        handler: Handler,
        prefetch: int,
        attempt_of: Callable[[AbstractIncomingMessage], int],
    ) -> Consumer:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        channel = await self._open_channel()
        consumer = _QueueConsumer(channel, handler, attempt_of, self._tasks)

        async def start() -> None:
            await channel.set_qos(prefetch_count=prefetch)
            await consumer.start(await self._topology.declare_queue(channel, spec))

        await _start_on(channel, start(), self._connect_timeout)
        return consumer

    async def _open_channel(self) -> AbstractChannel:
        connection = self._require_connection()
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await connection.channel()
        except UNAVAILABLE_ERRORS as exc:
            raise BrokerUnavailable(f"cannot open a RabbitMQ channel: {_describe(exc)}") from exc

    def _require_connection(self) -> AbstractRobustConnection:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        if self._connection is None:
            raise BrokerUnavailable("the broker is not started (not connected yet)")
        return self._connection


async def _start_on(channel: AbstractChannel, starting: Awaitable[None], timeout: float) -> None:
    """Await `starting` (a consumer's setup); on failure close its channel and map
    connection errors (and the timeout) to `BrokerUnavailable`."""
    try:
        async with asyncio.timeout(timeout):
            await starting
    except BaseException as exc:
        await _close_channel(channel)
        if isinstance(exc, UNAVAILABLE_ERRORS) and not isinstance(exc, BrokerTopologyError):
            raise BrokerUnavailable(f"cannot start a RabbitMQ consumer: {_describe(exc)}") from exc
        raise
