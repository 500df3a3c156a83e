"""What a running tool sees: its operation, a way to report progress and log lines, and
whether cancellation was requested. Events get increasing sequence numbers within the attempt,
so applying them is idempotent however often they are delivered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from formation.mcp.v1 import operations_pb2, queue_pb2

EmitEvent = Callable[[queue_pb2.OperationEvent], Awaitable[None]]


class OperationCancelled(Exception):
    """Raised inside a tool by `check_cancelled()` once cancellation was requested."""


class ToolContext:
    def __init__(
        self,
        *,
        operation: str,
        tool: str,
        owner: str,
        attempt: int,
        emit: EmitEvent,
        caller_is_admin: bool = False,
        resource: str = "",
    ) -> None:
        self.operation = operation
        self.tool = tool
        self.owner = owner
        self.attempt = attempt
        self.caller_is_admin = caller_is_admin
        """Known for calls run inline by the API (a worker acts on `resource`, which the API
        authorized)."""
        self.resource = resource
        self._emit = emit
        self._sequence = 0
        self.cancel_requested = asyncio.Event()

    def next_event(self) -> queue_pb2.OperationEvent:
        self._sequence += 1
        event = queue_pb2.OperationEvent(
            operation=self.operation, attempt=self.attempt, sequence=self._sequence
        )
        event.time.GetCurrentTime()
        return event

    async def emit(self, event: queue_pb2.OperationEvent) -> None:
        await self._emit(event)

    async def started(self, node: str = "") -> None:
        event = self.next_event()
        event.started.node = node
        await self.emit(event)

    async def progress(self, percent: int, stage: str = "", message: str = "") -> None:
        event = self.next_event()
        event.progress.percent = percent
        event.progress.stage = stage
        event.progress.message = message
        await self.emit(event)

    async def log(
        self,
        *lines: str,
        stream: operations_pb2.LogLine.Stream.ValueType = operations_pb2.LogLine.STDOUT,
    ) -> None:
        if not lines:
            return
        event = self.next_event()
        event.logs.lines.extend(operations_pb2.LogLine(text=line, stream=stream) for line in lines)
        await self.emit(event)

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise OperationCancelled(self.operation)
