"""A RUN step's output: read line by line, sent as log lines in batches.

Output lines (stdout and stderr, read concurrently) are sent as log lines in batches (at most
every `log_flush_seconds` or `log_flush_lines` lines, and at the end of each step); an endless
line is cut at `max_log_line_chars`. The last `tail_lines` lines are kept for error messages.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from typing import Final

from formation_mcp.workloads.build.request import BuildLimits, LogStream, ProgressSink

_READ_SIZE: Final = 64 * 1024


def _decode(raw: bytes, max_chars: int) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\r")
    return text if len(text) <= max_chars else text[:max_chars] + " [line truncated]"


class LogBatcher:
    """Sends output lines in order, in batches: when `max_lines` are waiting, `interval`
    after the first waiting line, and on `close`. Keeps the last lines for error messages."""

    def __init__(self, sink: ProgressSink, limits: BuildLimits) -> None:
        self._sink = sink
        self._interval = limits.log_flush_seconds
        self._max_lines = limits.log_flush_lines
        self._pending: list[tuple[LogStream, str]] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.tail: deque[str] = deque(maxlen=limits.tail_lines)
        self._task = asyncio.create_task(self._timer())

    async def add(self, stream: LogStream, line: str) -> None:
        self._pending.append((stream, line))
        self.tail.append(line)
        if len(self._pending) >= self._max_lines:
            await self.flush()
        else:
            self._wake.set()

    async def flush(self) -> None:
        async with self._lock:
            batch, self._pending = self._pending, []
            for stream, lines in _runs(batch):
                await self._sink.log(*lines, stream=stream)

    async def _timer(self) -> None:
        while not self._closing.is_set():
            await self._wake.wait()
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)
            await self.flush()

    async def close(self) -> None:
        """Stop the timer and send what is waiting."""
        self._closing.set()
        self._wake.set()
        await self._task
        await self.flush()

    def abandon(self) -> None:
        self._task.cancel()


def _runs(batch: list[tuple[LogStream, str]]) -> Iterator[tuple[LogStream, list[str]]]:
    """Consecutive lines of one stream together, in order."""
    current: list[str] = []
    stream: LogStream | None = None
    for line_stream, line in batch:
        if line_stream != stream and current and stream is not None:
            yield stream, current
            current = []
        stream = line_stream
        current.append(line)
    if current and stream is not None:
        yield stream, current


async def pump_lines(
    reader: asyncio.StreamReader, stream: LogStream, batcher: LogBatcher, max_chars: int
) -> None:
    """Read `reader` to its end, line by line; an endless line is cut at `max_chars`."""
    buffer = bytearray()
    skipping = False
    max_bytes = 4 * max_chars + 4
    while chunk := await reader.read(_READ_SIZE):
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if not skipping:
                await batcher.add(stream, _decode(line, max_chars))
            skipping = False
        if len(buffer) > max_bytes:
            if not skipping:
                await batcher.add(stream, _decode(bytes(buffer), max_chars))
            skipping = True
            buffer.clear()
    if buffer and not skipping:
        await batcher.add(stream, _decode(bytes(buffer), max_chars))
