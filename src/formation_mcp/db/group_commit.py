"""Group commit: many callers' writes in one transaction.

Callers submit items and wait. One writer task writes them in batches: the first item is
written at once (no timer, so an idle system adds no latency) and every item submitted while a
batch is being written joins the next one. Under load one transaction (and one round trip per
statement, with executemany) carries many items, which is what lets a single process keep up.

Batches are written one at a time, in submission order, so items that must apply in order
(the events of one operation) do. A batch that fails with an error `isolate` names (a unique key
one item violates; for worker events, anything but the database being down) is written again
item by item, so that only the item at fault fails; any other failure (the database is down)
fails every item of the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")


class GroupCommit(Generic[Item]):
    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[None]],
        *,
        max_batch: int,
        isolate: tuple[type[Exception], ...] | Callable[[Exception], bool] = (),
    ) -> None:
        """`isolate`: the exception classes (or a test of the exception) that one item can
        cause, so that the batch is written again item by item."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._max_batch = max_batch
        self._isolates: Callable[[Exception], bool] = (
            isolate if callable(isolate) else _one_of(isolate)
        )
        self._pending: list[tuple[Item, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0
        """Transactions written so far (for metrics and tests)."""

    async def submit(self, item: Item) -> None:
        """Returns once `item` is committed; raises what writing it raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        await future

    async def submit_many(self, items: Sequence[Item]) -> None:
        """Submit items that follow each other (they join the same batch unless it is full);
        returns once all are committed, or raises what writing the first failed one raised."""
        if len(items) == 1:
            await self.submit(items[0])
            return
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for item in items:
            future: asyncio.Future[None] = loop.create_future()
            self._pending.append((item, future))
            futures.append(future)
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending())
        await asyncio.wait(futures)
        for future in futures:
            if future.cancelled():
                raise asyncio.CancelledError
            if (error := future.exception()) is not None:
                for rest in futures:  # the others' errors are this one's consequence
                    if not rest.cancelled():
                        rest.exception()
                raise error

    async def drain(self) -> None:
        """Wait until everything submitted so far is written (on shutdown)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def _write_pending(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self._write_batch(batch)
            except asyncio.CancelledError:
                for _, future in batch + self._pending:
                    future.cancel()
                self._pending.clear()
                raise

    async def _write_batch(self, batch: list[tuple[Item, asyncio.Future[None]]]) -> None:
        self.batches += 1
        try:
            await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self._isolates(exc):
                _settle(batch, exc)
                return
            for entry in batch:
                await self._write_batch([entry])
        else:
            _settle(batch, None)


def _one_of(classes: tuple[type[Exception], ...]) -> Callable[[Exception], bool]:
    return lambda exc: isinstance(exc, classes)


def _settle(batch: Sequence[tuple[object, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, future in batch:
        if future.done():  # its caller was cancelled and no longer waits
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
