"""What a running tool sees: its operation, a way to report progress and log lines, and
whether cancellation was requested. Events get increasing sequence numbers within the attempt,
so applying them is idempotent however often they are delivered; they are numbered and sent
one at a time, in order, whichever task of the tool sends them.

With `heartbeat_seconds`, `keep_alive()` repeats the last progress whenever the tool reported
none for that long (same percent and stage, the message with the time since and the latest
output line), so a long silent step never looks dead to a watcher or an MCP host."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2

EmitEvent = Callable[[queue_pb2.OperationEvent], Awaitable[None]]
MAX_HEARTBEAT_LINE_CHARS = 200


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
        heartbeat_seconds: float | None = None,
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
        self._sending = asyncio.Lock()
        self.cancel_requested = asyncio.Event()
        self.heartbeat_seconds = heartbeat_seconds
        self._last_progress = (0, "", "")
        self._last_progress_time = time.monotonic()
        self._latest_line = ""

    def next_event(self) -> queue_pb2.OperationEvent:
        self._sequence += 1
        event = queue_pb2.OperationEvent(
            operation=self.operation, attempt=self.attempt, sequence=self._sequence
        )
        event.time.GetCurrentTime()
        return event

    async def emit(self, event: queue_pb2.OperationEvent) -> None:
        """Send an event numbered by `next_event` (the terminal one, once the tool is done)."""
        async with self._sending:
            await self._emit(event)

    async def _send(self, fill: Callable[[queue_pb2.OperationEvent], None]) -> None:
        """Number, fill and send one event: in order, even from concurrent tasks."""
        async with self._sending:
            event = self.next_event()
            fill(event)
            await self._emit(event)

    async def started(self, node: str = "") -> None:
        def fill(event: queue_pb2.OperationEvent) -> None:
            event.started.node = node

        await self._send(fill)

    async def progress(self, percent: int, stage: str = "", message: str = "") -> None:
        self._last_progress = (percent, stage, message)
        self._last_progress_time = time.monotonic()
        await self._report(percent, stage, message)

    async def _report(self, percent: int, stage: str, message: str) -> None:
        def fill(event: queue_pb2.OperationEvent) -> None:
            event.progress.percent = percent
            event.progress.stage = stage
            event.progress.message = message

        await self._send(fill)

    async def log(
        self,
        *lines: str,
        stream: operations_pb2.LogLine.Stream.ValueType = operations_pb2.LogLine.STDOUT,
    ) -> None:
        if not lines:
            return
        if stream != operations_pb2.LogLine.SYSTEM:
            self._latest_line = lines[-1]

        def fill(event: queue_pb2.OperationEvent) -> None:
            event.logs.lines.extend(
                operations_pb2.LogLine(text=line, stream=stream) for line in lines
            )

        await self._send(fill)

    async def keep_alive(self) -> None:
        """Runs beside the tool until cancelled (see the module docs); nothing without
        `heartbeat_seconds`."""
        if not self.heartbeat_seconds:
            return
        reported = self._last_progress_time
        while True:
            due = max(reported, self._last_progress_time) + self.heartbeat_seconds
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
                continue
            reported = time.monotonic()
            percent, stage, message = self._last_progress
            await self._report(percent, stage, self._heartbeat_message(message, reported))

    def _heartbeat_message(self, message: str, now: float) -> str:
        elapsed = f"{now - self._last_progress_time:.0f} s"
        text = f"{message} ({elapsed} so far" if message else f"still working ({elapsed}"
        if self._latest_line:
            line = self._latest_line[:MAX_HEARTBEAT_LINE_CHARS]
            text += f"; latest output: {line}"
        return text + ")"

    def check_cancelled(self) -> None:
        if self.cancel_requested.is_set():
            raise OperationCancelled(self.operation)
