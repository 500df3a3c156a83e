"""The API side of the broker: apply workers' events, fail operations whose work died."""

from __future__ import annotations

import asyncio
import logging

from formation.mcp.v1 import queue_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from formation_mcp.broker.base import Broker, Consumer, Delivery
from formation_mcp.db.group_commit import GroupCommit
from formation_mcp.errors import FmcpError, Unavailable
from formation_mcp.operations.ids import parse_operation_name
from formation_mcp.operations.service import OperationService

log = logging.getLogger(__name__)

EVENT_PREFETCH = 256
EVENT_BATCH = 256
"""At most this many events are applied in one transaction."""
RETRY_DELAY_SECONDS = 1.0


class ApiConsumers:
    """Consumes events and dead letters for as long as the API server runs."""

    def __init__(self, broker: Broker, operations: OperationService) -> None:
        self._broker = broker
        self._operations = operations
        self._events: GroupCommit[queue_pb2.OperationEvent] = GroupCommit(
            operations.apply_events, max_batch=EVENT_BATCH
        )
        self._consumers: list[Consumer] = []

    async def start(self) -> None:
        self._consumers = [
            await self._broker.consume_events(self._on_event, EVENT_PREFETCH),
            await self._broker.consume_dead_letters(self._on_dead_letter),
        ]

    async def stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        await self._events.drain()

    async def _on_event(self, delivery: Delivery) -> None:
        """Events join the batch being formed (see GroupCommit): in delivery order, so the
        events of one operation apply in the order its worker published them."""
        try:
            event = queue_pb2.OperationEvent.FromString(delivery.body)
            parse_operation_name(event.operation, "operation")
        except (DecodeError, FmcpError) as exc:
            log.error("dropping a malformed operation event: %s", exc)
            await delivery.ack()
            return
        try:
            await self._events.submit(event)
        except Unavailable:  # database down: try again later, lose nothing
            await asyncio.sleep(RETRY_DELAY_SECONDS)
            await delivery.requeue()
            return
        await delivery.ack()

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
