"""The broker interface between API servers and workers, with two implementations:
`memory.MemoryBroker` (in-process, the embedded default) and `rabbitmq.RabbitBroker`.

Four flows:
- work: API (outbox relay) -> one worker. Routed by key `tool.<tool name>` (any worker), or
  `node.<node id>.tool.<tool name>` for work that must run on one node (its instances live
  there): only the workers consuming with that node id receive it. At-least-once: a
  delivery not acked (worker crash, requeue) comes back with `attempt` + 1; after
  `max_attempts` deliveries the message goes to the dead-letter flow instead.
- events: workers -> API servers (one consumer at a time applies them, in publish order).
- dead letters: work that ran out of attempts -> API servers (they fail its operation).
- cancels: API -> every worker (fan-out); the one running the operation stops it.

Every publish returns once the broker has confirmed it (persistent messages); it raises
`BrokerUnavailable` when the broker cannot be reached, so callers can retry later.
"""

from __future__ import annotations

import re
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

    async def consume_work(self, handler: Handler, prefetch: int, node: str = "") -> Consumer:
        """At most `prefetch` unacked deliveries at a time to this consumer (per queue); with
        `node`, also the work routed to that node."""
        ...

    async def consume_events(self, handler: Handler, prefetch: int) -> Consumer: ...

    async def consume_dead_letters(self, handler: Handler) -> Consumer: ...

    async def consume_cancels(self, handler: CancelHandler) -> Consumer:
        """Every cancel published after this returns reaches this consumer."""
        ...


WORK_ROUTING_PREFIX = "tool."
NODE_ROUTING_PREFIX = "node."
_NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_node_id(node: str) -> str:
    """Node ids are routing-key words: letters, digits, `_` and `-`."""
    if not _NODE_ID.fullmatch(node):
        raise ValueError(f"node id {node!r}: 1 to 128 letters, digits, _ or - (no dots)")
    return node


def work_routing_key(tool: str, node: str = "") -> str:
    if node:
        return f"{NODE_ROUTING_PREFIX}{check_node_id(node)}.{WORK_ROUTING_PREFIX}{tool}"
    return f"{WORK_ROUTING_PREFIX}{tool}"


def routed_node(routing_key: str) -> str:
    """The node a work routing key is for ("" for any worker); ValueError if not a work key."""
    if routing_key.startswith(WORK_ROUTING_PREFIX):
        return ""
    if routing_key.startswith(NODE_ROUTING_PREFIX):
        node, _, rest = routing_key.removeprefix(NODE_ROUTING_PREFIX).partition(".")
        if rest.startswith(WORK_ROUTING_PREFIX):
            return check_node_id(node)
    raise ValueError(
        f"work routing keys are {WORK_ROUTING_PREFIX}<tool> or "
        f"{NODE_ROUTING_PREFIX}<node>.{WORK_ROUTING_PREFIX}<tool>, not {routing_key!r}"
    )
