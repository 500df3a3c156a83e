"""Pick the broker implementation from its URL."""

from __future__ import annotations

import asyncio
import logging

from formation_mcp.broker.base import Broker
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.broker.rabbitmq import RabbitBroker

log = logging.getLogger(__name__)

MEMORY_SCHEME = "memory://"
AMQP_SCHEMES = ("amqp://", "amqps://")


def create_broker(url: str, max_attempts: int, *, prefix: str = "fmcp") -> Broker:
    """`memory://` -> in-process broker; `amqp://` or `amqps://` -> RabbitMQ, whose exchanges
    and queues are named `<prefix>.work` and so on."""
    if url.startswith(MEMORY_SCHEME):
        return MemoryBroker(max_attempts)
    if url.startswith(AMQP_SCHEMES):
        return RabbitBroker(url, max_attempts, prefix)
    raise ValueError(f"unsupported broker URL {url!r}: use memory:// or amqp(s)://")


async def start_when_reachable(broker: Broker) -> None:
    """Connect, retrying with backoff while the broker is down (the API keeps accepting calls
    into the outbox meanwhile)."""
    delay = 0.1
    while True:
        try:
            await broker.start()
            return
        except Exception as exc:
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
