"""Pick the broker implementation from its URL."""

from __future__ import annotations

from formation_mcp.broker.base import Broker
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.broker.rabbitmq import RabbitBroker

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
