"""The broker interface between API servers and workers, with two implementations:
`memory.MemoryBroker` (in-process, the embedded default) and `rabbitmq.RabbitBroker`.

Four flows:
- work: API (outbox relay) -> one worker. Routed by key `tool.<tool name>`. At-least-once: a
  delivery not acked (worker crash, requeue) comes back with `attempt` + 1; after
  `max_attempts` deliveries the message goes to the dead-letter flow instead.
- events: workers -> API servers (one consumer at a time applies them, in publish order).
- dead letters: work that ran out of attempts -> API servers (they fail its operation).
- cancels: API -> every worker (fan-out); the one running the operation stops it.

Every publish returns once the broker has confirmed it (persistent messages); it raises
`BrokerUnavailable` when the broker cannot be reached, so callers can retry later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol


class BrokerUnavailable(Exception):
    """The broker cannot be reached or did not confirm; the message was not accepted."""


class Delivery(Protocol):
    """One received message. Ack once it is fully handled; requeue to hand it back."""

    @property
    def body(self) -> bytes: ...

    @property
    def attempt(self) -> int:
        """1 on the first delivery, +1 on every redelivery."""
        ...

    async def ack(self) -> None: ...

    async def requeue(self) -> None:
        """Give the message back for another delivery (counts as an attempt)."""
        ...


Handler = Callable[[Delivery], Awaitable[None]]
CancelHandler = Callable[[bytes], Awaitable[None]]


class Consumer(Protocol):
    async def stop(self) -> None:
        """Stop receiving new deliveries; deliveries already handed out can still be acked."""
        ...


class Broker(Protocol):
    max_attempts: int

    async def start(self) -> None:
        """Connect and declare the topology (idempotent: every process may do it)."""
        ...

    async def close(self) -> None: ...

    async def publish_work(self, routing_key: str, body: bytes, message_id: str) -> None: ...

    async def publish_event(self, body: bytes) -> None: ...

    async def publish_cancel(self, body: bytes) -> None: ...

    async def consume_work(self, handler: Handler, prefetch: int) -> Consumer:
        """At most `prefetch` unacked deliveries at a time to this consumer."""
        ...

    async def consume_events(self, handler: Handler, prefetch: int) -> Consumer: ...

    async def consume_dead_letters(self, handler: Handler) -> Consumer: ...

    async def consume_cancels(self, handler: CancelHandler) -> Consumer:
        """Every cancel published after this returns reaches this consumer."""
        ...


def work_routing_key(tool: str) -> str:
    return f"tool.{tool}"
