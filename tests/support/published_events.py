"""What was published on a broker's events flow, read back in tests."""

from __future__ import annotations

import asyncio

from formation.mcp.internal.v1 import queue_pb2

from formation_mcp.broker.base import Broker, Delivery


async def published_events(broker: Broker, count: int) -> list[queue_pb2.OperationEvent]:
    """The first `count` messages on the events flow (acked), in order; within 10 s."""
    got: list[queue_pb2.OperationEvent] = []
    done = asyncio.Event()

    async def on_event(delivery: Delivery) -> None:
        got.append(queue_pb2.OperationEvent.FromString(delivery.body))
        await delivery.ack()
        if len(got) >= count:
            done.set()

    consumer = await broker.consume_events(on_event, 16)
    async with asyncio.timeout(10):
        await done.wait()
    await consumer.stop()
    return got
