"""The API side of the broker: apply workers' events, fail operations whose work died."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from formation.mcp.v1 import queue_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from formation_mcp.broker.base import Broker, Consumer, Delivery
from formation_mcp.errors import FmcpError, Unavailable
from formation_mcp.operations.ids import parse_operation_name
from formation_mcp.operations.service import OperationService

log = logging.getLogger(__name__)

EVENT_PREFETCH = 256
RETRY_DELAY_SECONDS = 1.0


class OperationLocks:
    """Serializes work per operation (FIFO), so events of one operation apply in the order
    they arrived while different operations proceed concurrently."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextmanager
    def _hold(self, key: str) -> Iterator[asyncio.Lock]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            yield lock
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def run(self, key: str, delivery: Delivery, handle: EventApplier) -> None:
        with self._hold(key) as lock:
            async with lock:
                await handle(delivery)


class EventApplier:
    def __init__(self, operations: OperationService) -> None:
        self._operations = operations

    async def __call__(self, delivery: Delivery) -> None:
        try:
            event = queue_pb2.OperationEvent.FromString(delivery.body)
            await self._operations.apply_event(event)
        except (DecodeError, FmcpError) as exc:
            if isinstance(exc, Unavailable):  # database down: try again later, lose nothing
                await asyncio.sleep(RETRY_DELAY_SECONDS)
                await delivery.requeue()
                return
            log.error("dropping a malformed operation event: %s", exc)
        await delivery.ack()


class ApiConsumers:
    """Consumes events and dead letters for as long as the API server runs."""

    def __init__(self, broker: Broker, operations: OperationService) -> None:
        self._broker = broker
        self._operations = operations
        self._apply = EventApplier(operations)
        self._locks = OperationLocks()
        self._consumers: list[Consumer] = []

    async def start(self) -> None:
        self._consumers = [
            await self._broker.consume_events(self._on_event, EVENT_PREFETCH),
            await self._broker.consume_dead_letters(self._on_dead_letter),
        ]

    async def stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()

    async def _on_event(self, delivery: Delivery) -> None:
        try:
            operation = queue_pb2.OperationEvent.FromString(delivery.body).operation
        except DecodeError:
            operation = ""
        await self._locks.run(operation, delivery, self._apply)

    async def _on_dead_letter(self, delivery: Delivery) -> None:
        """Work that was delivered `max_attempts` times without finishing: fail it clearly."""
        try:
            item = queue_pb2.WorkItem.FromString(delivery.body)
            operation_id = parse_operation_name(item.operation, "operation")
        except (DecodeError, FmcpError):
            log.error("dropping an unreadable dead letter")
            await delivery.ack()
            return
        attempts = self._broker.max_attempts
        error = status_pb2.Status(
            code=code_pb2.ABORTED,
            message=(
                f"gave up after {attempts} attempts: the worker running {item.tool} stopped "
                "before finishing each time (crashed, killed or lost its connection)"
            ),
        )
        try:
            await self._operations.finish(operation_id, error=error)
        except Unavailable:
            await asyncio.sleep(RETRY_DELAY_SECONDS)
            await delivery.requeue()
            return
        await delivery.ack()
