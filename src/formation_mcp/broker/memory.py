"""An in-process broker with RabbitMQ's semantics, for `fmcp serve` on its own (and tests).

Work goes to one consumer at a time with per-consumer prefetch; a requeued delivery comes
back with `attempt` + 1 and, once it has been delivered `max_attempts` times, a requeue sends
it to the dead-letter flow instead. Events go to a single active consumer in publish order.
Cancels fan out to every cancel consumer. Nothing is persisted: `close()` drops everything.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from formation_mcp.broker.base import (
    BrokerUnavailable,
    CancelHandler,
    Consumer,
    Delivery,
    Handler,
    routed_node,
)
from formation_mcp.log_throttle import LogThrottle

log = logging.getLogger(__name__)
_throttle = LogThrottle(log)

DEAD_LETTER_PREFETCH = 16


class HandlerTasks:
    """Runs handlers as tasks so a slow one never blocks other deliveries; `cancel_all`
    cancels those still running and waits for them."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class SettleableDelivery(Delivery, Protocol):
    """A delivery that knows whether it was acked or requeued already."""

    settled: bool


async def run_handler(handler: Handler, delivery: SettleableDelivery) -> None:
    """A handler that fails without settling its delivery hands it back (an attempt)."""
    try:
        await handler(delivery)
    except Exception as exc:
        _throttle.error("handler failed", "broker handler failed: %s", exc, exc_info=exc)
        if not delivery.settled:
            await delivery.requeue()


async def run_cancel_handler(handler: CancelHandler, body: bytes) -> None:
    try:
        await handler(body)
    except Exception as exc:
        _throttle.error("cancel handler failed", "cancel handler failed: %s", exc, exc_info=exc)


@dataclass
class _Message:
    body: bytes
    attempt_base: int = 0
    """Attempts made before this queue got the message (a dead letter's deliveries)."""
    deliveries: int = 0


class _MemoryDelivery:
    """One delivery of a message to a consumer; settled at most once."""

    def __init__(self, message: _Message, consumer: _QueueConsumer) -> None:
        self._message = message
        self._consumer = consumer
        self.settled = False

    @property
    def body(self) -> bytes:
        return self._message.body

    @property
    def attempt(self) -> int:
        return self._message.attempt_base + self._message.deliveries

    async def ack(self) -> None:
        if self._settle():
            self._consumer.release(None)

    async def requeue(self) -> None:
        if self._settle():
            self._consumer.release(self._message)

    def _settle(self) -> bool:
        if self.settled:
            raise RuntimeError("this delivery was already acked or requeued")
        self.settled = True
        return not self._consumer.queue.closed


class _QueueConsumer:
    """A consumer of one queue: at most `prefetch` unsettled deliveries at a time."""

    def __init__(
        self, queue: _MemoryQueue, handler: Handler, prefetch: int, tasks: HandlerTasks
    ) -> None:
        self.queue = queue
        self._handler = handler
        self._prefetch = prefetch
        self._tasks = tasks
        self.unsettled = 0
        self.stopped = False

    @property
    def has_room(self) -> bool:
        return not self.stopped and self.unsettled < self._prefetch

    def deliver(self, message: _Message) -> None:
        message.deliveries += 1
        self.unsettled += 1
        self._tasks.spawn(run_handler(self._handler, _MemoryDelivery(message, self)))

    def release(self, requeued: _Message | None) -> None:
        """A delivery was settled: free its slot (giving the message back if requeued)."""
        self.unsettled -= 1
        if requeued is not None:
            self.queue.give_back(requeued)
        else:
            self.queue.dispatch()

    async def stop(self) -> None:
        """No new deliveries; those handed out can still be acked or requeued."""
        if not self.stopped:
            self.stopped = True
            self.queue.remove(self)


class _MemoryQueue:
    """Messages waiting for consumers. Requeued messages go back to the head (as in
    RabbitMQ); with `single_active` only the oldest consumer receives (the next one takes
    over when it stops)."""

    def __init__(
        self,
        *,
        single_active: bool = False,
        max_attempts: int | None = None,
        dead_letter: Callable[[_Message], None] | None = None,
    ) -> None:
        self._messages: deque[_Message] = deque()
        self._consumers: list[_QueueConsumer] = []
        self._single_active = single_active
        self._max_attempts = max_attempts
        self._dead_letter = dead_letter
        self._next = 0
        self.closed = False

    def put(self, message: _Message) -> None:
        self._messages.append(message)
        self.dispatch()

    def give_back(self, message: _Message) -> None:
        exhausted = self._max_attempts is not None and message.deliveries >= self._max_attempts
        if exhausted and self._dead_letter is not None:
            self._dead_letter(message)
        else:
            self._messages.appendleft(message)
        self.dispatch()

    def add(self, consumer: _QueueConsumer) -> None:
        self._consumers.append(consumer)
        self.dispatch()

    def remove(self, consumer: _QueueConsumer) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)
            self.dispatch()

    def dispatch(self) -> None:
        while self._messages and not self.closed:
            consumer = self._pick()
            if consumer is None:
                return
            consumer.deliver(self._messages.popleft())

    def close(self) -> None:
        self.closed = True
        self._messages.clear()
        self._consumers.clear()

    def _pick(self) -> _QueueConsumer | None:
        """The next consumer with room, round-robin (only the active one if single)."""
        candidates = self._consumers[:1] if self._single_active else self._consumers
        for offset in range(len(candidates)):
            index = (self._next + offset) % len(candidates)
            if candidates[index].has_room:
                self._next = index + 1
                return candidates[index]
        return None


class Consumers:
    """Several consumers stopped as one (a worker's general and node queues)."""

    def __init__(self, consumers: list[Consumer]) -> None:
        self._consumers = consumers

    async def stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()


class _CancelConsumer:
    """Receives every cancel published while it is registered."""

    def __init__(
        self, subscribers: list[_CancelConsumer], handler: CancelHandler, tasks: HandlerTasks
    ) -> None:
        self._subscribers = subscribers
        self._handler = handler
        self._tasks = tasks
        subscribers.append(self)

    def deliver(self, body: bytes) -> None:
        self._tasks.spawn(run_cancel_handler(self._handler, body))

    async def stop(self) -> None:
        if self in self._subscribers:
            self._subscribers.remove(self)


class MemoryBroker:
    """The broker inside one process (see the module docstring for its semantics)."""

    def __init__(self, max_attempts: int) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self._tasks = HandlerTasks()
        self._dead = _MemoryQueue()
        self._work = _MemoryQueue(max_attempts=max_attempts, dead_letter=self._to_dead_letters)
        self._node_work: dict[str, _MemoryQueue] = {}
        self._events = _MemoryQueue(single_active=True)
        self._cancel_subscribers: list[_CancelConsumer] = []
        self._started = False
        self._closed = False

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        """Stop everything at once: nothing is requeued, running handlers are cancelled."""
        self._closed = True
        for queue in (self._work, self._events, self._dead, *self._node_work.values()):
            queue.close()
        self._cancel_subscribers.clear()
        await self._tasks.cancel_all()

    async def publish_work(self, routing_key: str, body: bytes, message_id: str) -> None:
        self._check_open()
        node = routed_node(routing_key)
        queue = self._node_queue(node) if node else self._work
        queue.put(_Message(body))

    async def publish_event(self, body: bytes) -> None:
        self._check_open()
        self._events.put(_Message(body))

    async def publish_cancel(self, body: bytes) -> None:
        self._check_open()
        for subscriber in list(self._cancel_subscribers):
            subscriber.deliver(body)

    async def consume_work(self, handler: Handler, prefetch: int, node: str = "") -> Consumer:
        if not node:
            return self._consume(self._work, handler, prefetch)
        mine = self._consume(self._node_queue(node), handler, prefetch)
        return Consumers([mine, self._consume(self._work, handler, prefetch)])

    def _node_queue(self, node: str) -> _MemoryQueue:
        """Work for one node waits in a queue of its own until a worker of that node comes."""
        queue = self._node_work.get(node)
        if queue is None:
            queue = _MemoryQueue(max_attempts=self.max_attempts, dead_letter=self._to_dead_letters)
            self._node_work[node] = queue
        return queue

    async def consume_events(self, handler: Handler, prefetch: int) -> Consumer:
        return self._consume(self._events, handler, prefetch)

    async def consume_dead_letters(self, handler: Handler) -> Consumer:
        return self._consume(self._dead, handler, DEAD_LETTER_PREFETCH)

    async def consume_cancels(self, handler: CancelHandler) -> Consumer:
        self._check_open()
        return _CancelConsumer(self._cancel_subscribers, handler, self._tasks)

    def _consume(self, queue: _MemoryQueue, handler: Handler, prefetch: int) -> Consumer:
        self._check_open()
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        consumer = _QueueConsumer(queue, handler, prefetch, self._tasks)
        queue.add(consumer)
        return consumer

    def _to_dead_letters(self, message: _Message) -> None:
        self._dead.put(_Message(message.body, attempt_base=message.deliveries - 1))

    def _check_open(self) -> None:
        if not self._started:
            raise BrokerUnavailable("the broker is not started")
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
