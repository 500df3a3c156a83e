"""The API side of the broker: apply workers' events, fail operations whose work died.

Nothing is handed back to the broker without bound: an event or dead letter goes back only
while the database is down (after a pause; it is applied once the database is back). An event
that cannot be written for another reason is retried and then given up (see `EventWriter`);
anything else that goes wrong drops the message with an error in the log. Repeated failures
are logged at a bounded rate (see `LogThrottle`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from formation.mcp.internal.v1 import queue_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from formation_mcp.broker.base import Broker, Consumer, Delivery
from formation_mcp.db.group_commit import GroupCommit
from formation_mcp.dispatch.event_writer import EventWriter, describe_failure
from formation_mcp.errors import FmcpError, Unavailable
from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import NewEvent, new_event_from_proto
from formation_mcp.log_throttle import LogThrottle
from formation_mcp.operations.ids import parse_operation_name
from formation_mcp.operations.manager import OperationManager

log = logging.getLogger(__name__)

EVENT_PREFETCH = 256
EVENT_BATCH = 256
"""At most this many events are applied in one transaction."""
RETRY_DELAY_SECONDS = 1.0
"""The pause before an event or dead letter goes back to the broker (the database is down)."""


class ApiConsumers:
    """Consumes events and dead letters for as long as the API server runs."""

    def __init__(
        self,
        broker: Broker,
        operations: OperationManager,
        events: EventWriter | None = None,
        resource_events: EventManager | None = None,
        samples: Callable[[queue_pb2.InstanceSamples], Awaitable[None]] | None = None,
    ) -> None:
        """`resource_events` records the events nodes report, `samples` stores their
        instances' samples (without them, those are dropped)."""
        self._broker = broker
        self._operations = operations
        self.event_writer = events or EventWriter(operations)
        self._events: GroupCommit[queue_pb2.OperationEvent] = GroupCommit(
            self.event_writer.write, max_batch=EVENT_BATCH, isolate=EventWriter.isolates
        )
        self._resource_events = resource_events
        self._samples = samples
        self._reported: GroupCommit[NewEvent] = GroupCommit(
            self._record_reported, max_batch=EVENT_BATCH, isolate=EventWriter.isolates
        )
        self._consumers: list[Consumer] = []
        self._throttle = LogThrottle(log)

    async def start(self) -> None:
        self._consumers = [
            await self._broker.consume_events(self._on_event, EVENT_PREFETCH),
            await self._broker.consume_dead_letters(self._on_dead_letter),
        ]

    async def stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        await self._events.drain()
        await self._reported.drain()

    async def _record_reported(self, reported: Sequence[NewEvent]) -> None:
        if self._resource_events is not None:
            await self._resource_events.record(reported)

    async def _on_event(self, delivery: Delivery) -> None:
        """Events join the batch being formed (see GroupCommit): in delivery order, so the
        events of one operation apply in the order its worker published them (those of one
        message together, in the same batch unless it is full)."""
        try:
            event = queue_pb2.OperationEvent.FromString(delivery.body)
            if event.WhichOneof("kind") == "resource_event":
                await self._on_resource_event(delivery, event.resource_event)
                return
            if event.WhichOneof("kind") == "instance_samples":
                await self._on_samples(delivery, event.instance_samples)
                return
            events = [event, *event.following]  # a message may carry several (see the proto)
            del event.following[:]
            for each in events:
                parse_operation_name(each.operation, "operation")
        except (DecodeError, FmcpError) as exc:
            self._throttle.error("malformed", "dropping a malformed operation event: %s", exc)
            await delivery.ack()
            return
        try:
            await self._events.submit_many(events)
        except Unavailable as exc:  # database down: try again later, lose nothing
            await self._hand_back(delivery, "events", exc)
            return
        except Exception as exc:  # EventWriter gives up on what it cannot write: a bug
            self._throttle.error(
                "event dropped",
                "dropping the events of a message (the first of %s): %s",
                event.operation,
                describe_failure(exc),
                exc_info=exc,
            )
        await delivery.ack()

    async def _on_resource_event(
        self, delivery: Delivery, reported: queue_pb2.ResourceEvent
    ) -> None:
        """A node's event: recorded once per key (a redelivery changes nothing)."""
        try:
            new = new_event_from_proto(reported.key, reported.event)
        except ValueError as exc:
            self._throttle.error("malformed", "dropping a malformed resource event: %s", exc)
            await delivery.ack()
            return
        await self._store(
            delivery,
            "events",
            self._reported.submit(new),
            f"the {new.type} event of {new.resource}",
        )

    async def _on_samples(self, delivery: Delivery, samples: queue_pb2.InstanceSamples) -> None:
        """A node's tick of samples: stored once each (a redelivery changes nothing)."""
        if self._samples is None:
            await delivery.ack()
            return
        await self._store(
            delivery,
            "samples",
            self._samples(samples),
            f"{len(samples.samples)} samples of node {samples.node}",
        )

    async def _store(
        self, delivery: Delivery, flow: str, storing: Awaitable[None], what: str
    ) -> None:
        """Ack once stored; hand back while the database is down (nothing lost); drop, with an
        error logged, what cannot be stored at all."""
        try:
            await storing
        except Unavailable as exc:  # database down: try again later, lose nothing
            await self._hand_back(delivery, flow, exc)
            return
        except Exception as exc:
            self._throttle.error(
                f"{flow} dropped", "dropping %s: %s", what, describe_failure(exc), exc_info=exc
            )
        await delivery.ack()

    async def _on_dead_letter(self, delivery: Delivery) -> None:
        """Work that was delivered `max_attempts` times without finishing: fail it clearly."""
        try:
            item = queue_pb2.WorkItem.FromString(delivery.body)
            operation_id = parse_operation_name(item.operation, "operation")
        except (DecodeError, FmcpError):
            self._throttle.error("unreadable dead letter", "dropping an unreadable dead letter")
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
        except Unavailable as exc:
            await self._hand_back(delivery, "dead letters", exc)
            return
        except Exception as exc:  # nothing more to try: drop it rather than loop
            self._throttle.error(
                "dead letter failed",
                "could not fail %s after its work was dead-lettered: %s",
                item.operation,
                describe_failure(exc),
                exc_info=exc,
            )
        await delivery.ack()

    async def _hand_back(self, delivery: Delivery, what: str, exc: Unavailable) -> None:
        """The database is down: back to the broker after a pause, to be applied later."""
        self._throttle.warning(
            f"{what} unavailable",
            "cannot apply %s (%s); handing them back to the broker every %.0fs",
            what,
            exc.message,
            RETRY_DELAY_SECONDS,
        )
        await asyncio.sleep(RETRY_DELAY_SECONDS)
        await delivery.requeue()
