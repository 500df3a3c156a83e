"""The worker: takes work from the broker, runs the tool, streams its events back.

- Bounded prefetch: at most `prefetch` operations run at once on this worker.
- Work for an operation that already finished, or that already started under the same
  attempt (a duplicate publish), is acked without running again.
- Events carry (attempt, sequence); the work message is acked only after the terminal event
  is confirmed by the broker, so a worker that dies mid-run has its work redelivered. Events
  that several operations emit meanwhile go in one message (`event_publisher`).
- A tool's `started` event is held up to STARTED_HOLD_SECONDS: a tool that ends within that
  time has it sent with its terminal event, as one message (`following`); a longer one has it
  sent when the time is up. Either way events go out in order.
- Cancel requests (fan-out) stop the operation this worker runs.
- Work that arrives while the database is down waits for it (the message is held, not handed
  back: a hand-back counts as an attempt, and an outage must not dead-letter work).
- Graceful stop: no new work; running work gets the grace period, then is handed back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from formation.mcp.internal.v1 import queue_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, status_pb2

from formation_mcp.broker.base import Broker, Consumer, Delivery
from formation_mcp.errors import FmcpError, Unavailable
from formation_mcp.log_throttle import LogThrottle
from formation_mcp.operations.ids import operation_name, parse_operation_name
from formation_mcp.operations.lifecycle import State
from formation_mcp.operations.store import WorkState
from formation_mcp.structs import struct_to_dict
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry
from formation_mcp.tools.runner import run_tool
from formation_mcp.worker.event_publisher import EventPublisher

log = logging.getLogger(__name__)


class OperationReader(Protocol):
    """All a worker reads of operations: whether a piece of work is done already (or to be
    cancelled)."""

    async def work_state(self, operation_id: str) -> WorkState | None: ...


DATABASE_RETRY_FIRST_SECONDS = 0.1
DATABASE_RETRY_MAX_SECONDS = 5.0
FINISHED_MEMORY = 10_000
"""Operations a worker remembers finishing, to skip redeliveries whose ack was lost."""
STARTED_HOLD_SECONDS = 0.05
"""How long a `started` event waits for the next event of its operation to go with it."""


@dataclass
class _Running:
    task: asyncio.Task[None]
    context: ToolContext


@dataclass
class _Held:
    """A `started` event not sent yet, and, once its time is up, its own publish."""

    event: queue_pb2.OperationEvent
    timer: asyncio.TimerHandle
    sending: asyncio.Task[None] | None = None


class Worker:
    def __init__(
        self,
        broker: Broker,
        registry: ToolRegistry,
        operations: OperationReader,
        *,
        node_id: str,
        prefetch: int,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.node_id = node_id
        self._heartbeat_seconds = heartbeat_seconds
        self._broker = broker
        self._registry = registry
        self._operations = operations
        self._prefetch = prefetch
        self._running: dict[str, _Running] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._claimed: set[str] = set()
        self._held: dict[str, _Held] = {}
        self._consumers: list[Consumer] = []
        self._stopping = False
        self._events = EventPublisher(broker.publish_event, lambda: self._stopping)
        self._throttle = LogThrottle(log)

    @property
    def running(self) -> frozenset[str]:
        """Operations this worker is running now."""
        return frozenset(self._running)

    async def start(self) -> None:
        self._consumers = [
            await self._broker.consume_cancels(self._on_cancel),
            await self._broker.consume_work(self._on_work, self._prefetch, node=self.node_id),
        ]
        log.info("worker started", extra={"node": self.node_id, "prefetch": self._prefetch})

    async def stop(self, grace: float) -> None:
        """Finish what runs within `grace` seconds; hand the rest back to the broker."""
        self._stopping = True
        for consumer in reversed(self._consumers):
            await consumer.stop()
        tasks = [running.task for running in self._running.values()]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _on_cancel(self, body: bytes) -> None:
        try:
            name = queue_pb2.CancelWork.FromString(body).operation
        except DecodeError:
            return
        running = self._running.get(name)
        if running is not None:
            running.context.cancel_requested.set()
            running.task.cancel()

    async def _on_work(self, delivery: Delivery) -> None:
        try:
            item = queue_pb2.WorkItem.FromString(delivery.body)
            operation_id = parse_operation_name(item.operation, "operation")
        except (DecodeError, FmcpError):
            log.error("dropping unreadable work")
            await delivery.ack()
            return
        if item.operation in self._claimed or item.operation in self._finished:
            # Redelivered because our ack was lost (a dropped connection) while we still handle
            # it or after we finished it (its terminal event may not be in the database yet).
            await delivery.ack()
            return
        self._claimed.add(item.operation)  # before any await: a redelivery may arrive meanwhile
        try:
            await self._handle(item, operation_id, delivery)
        finally:
            self._claimed.discard(item.operation)

    async def _handle(
        self, item: queue_pb2.WorkItem, operation_id: str, delivery: Delivery
    ) -> None:
        state = await self._work_state_once_available(operation_id)
        if _already_handled(state, delivery.attempt):
            await delivery.ack()
            return
        assert state is not None
        context = ToolContext(
            operation=item.operation,
            tool=item.tool,
            owner=item.owner,
            attempt=delivery.attempt,
            emit=self._emit,
            resource=item.resource,
            heartbeat_seconds=self._heartbeat_seconds,
        )
        if state.cancel_requested:
            context.cancel_requested.set()
        task = asyncio.current_task()
        assert task is not None
        self._running[item.operation] = _Running(task, context)
        try:
            await self._run(item, context)
        except asyncio.CancelledError:
            if not context.cancel_requested.is_set():
                if not self._stopping:
                    raise
                await delivery.requeue()  # graceful stop: another worker takes it over
                return
            await self._cancelled(context)  # cancelled before the tool itself could answer
        finally:
            del self._running[item.operation]
            self._drop_held(item.operation)
        self._remember_finished(item.operation)
        await delivery.ack()

    async def _work_state_once_available(self, operation_id: str) -> WorkState | None:
        """The operation's work state, waiting while the database is down. The delivery is
        held meanwhile, not handed back: every hand-back counts as an attempt, and an outage of
        the database would dead-letter (fail) work that never ran. A stopping worker hands it
        back."""
        delay = DATABASE_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self._operations.work_state(operation_id)
            except Unavailable as exc:
                if self._stopping:
                    raise
                self._throttle.warning(
                    "database unavailable",
                    "cannot read %s before running it (%s); retrying in %.1fs",
                    operation_name(operation_id),
                    exc.message,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, DATABASE_RETRY_MAX_SECONDS)

    def _remember_finished(self, operation: str) -> None:
        self._finished[operation] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)

    async def _run(self, item: queue_pb2.WorkItem, context: ToolContext) -> None:
        try:
            tool = self._registry.resolve(item.tool)
        except FmcpError:
            await self._fail(context, f"this worker has no tool {item.tool!r}")
            return
        if item.node and item.node != self.node_id:
            await self._fail(context, f"work for node {item.node} reached node {self.node_id}")
            return
        if context.cancel_requested.is_set():
            await self._cancelled(context)
            return
        arguments = struct_to_dict(item.arguments)
        await run_tool(tool, context, arguments, node=self.node_id)

    async def _cancelled(self, context: ToolContext) -> None:
        terminal = context.next_event()
        terminal.cancelled.SetInParent()
        await context.emit(terminal)

    async def _fail(self, context: ToolContext, message: str) -> None:
        terminal = context.next_event()
        terminal.failed.error.CopyFrom(
            status_pb2.Status(code=code_pb2.UNIMPLEMENTED, message=message)
        )
        await context.emit(terminal)

    async def _emit(self, event: queue_pb2.OperationEvent) -> None:
        """Send an event of a running tool (one at a time per operation: ToolContext orders
        them): a `started` event is held (see the module docs), and the event after it goes
        with it in one message unless its time was up."""
        held = self._held.pop(event.operation, None)
        if held is not None:
            held.timer.cancel()
            if held.sending is None:
                held.event.following.append(event)
                event = held.event
            else:
                await held.sending  # it went out on its own: this one follows it
        elif event.HasField("started") and not self._stopping:
            timer = asyncio.get_running_loop().call_later(
                STARTED_HOLD_SECONDS, self._send_held, event.operation
            )
            self._held[event.operation] = _Held(event, timer)
            return
        await self._publish(event)

    def _send_held(self, operation: str) -> None:
        """The held `started` event's time is up: it goes out on its own."""
        held = self._held.get(operation)
        if held is not None and held.sending is None:
            held.sending = asyncio.ensure_future(self._publish(held.event))
            held.sending.add_done_callback(_retrieve)

    def _drop_held(self, operation: str) -> None:
        """The run ended without another event (handed back on a graceful stop): a `started`
        still held is not sent (the work runs again, and starts again)."""
        held = self._held.pop(operation, None)
        if held is not None:
            held.timer.cancel()

    async def _publish(self, event: queue_pb2.OperationEvent) -> None:
        """Publish with confirm, together with other operations' events (EventPublisher);
        while the broker is unreachable keep retrying, unless this worker is stopping."""
        await self._events.send(event)


def _retrieve(task: asyncio.Task[None]) -> None:
    """A held event's own publish failed only when the worker stops (its run is handed back
    then): nothing more to do than mark the error as seen."""
    if not task.cancelled():
        task.exception()


def _already_handled(state: WorkState | None, attempt: int) -> bool:
    """Finished, deleted, or already started under this attempt (a duplicate message)."""
    if state is None or state.done:
        return True
    return state.state is State.RUNNING and state.attempt >= attempt
