"""GroupCommit: callers' items written in batches, one batch at a time, in submission order."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from tests.support.waiting import DEADLINE

from formation_mcp.db.group_commit import GroupCommit


class BadItem(Exception):
    """An error one item causes (a unique key it violates): isolated by GroupCommit."""


class DatabaseDown(Exception):
    """An error of the whole batch (the database is unreachable)."""


class Writer:
    """A write function that records every batch it is given.

    With `hold_first`, the first batch blocks until `release` is set, so that the test can queue
    items while a batch is being written. `reject` makes every batch holding that item fail with
    `BadItem`; `fail_batches` makes the batches with those (1-based) numbers fail with
    `DatabaseDown`."""

    def __init__(
        self,
        *,
        hold_first: bool = False,
        reject: object = None,
        fail_batches: Sequence[int] = (),
    ) -> None:
        self.batches: list[list[Any]] = []
        self.written: list[Any] = []
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self._hold_first = hold_first
        self._reject = reject
        self._fail_batches = set(fail_batches)

    async def __call__(self, items: Sequence[Any]) -> None:
        self.batches.append(list(items))
        number = len(self.batches)
        if number == 1 and self._hold_first:
            self.writing.set()
            await self.release.wait()
        if number in self._fail_batches:
            raise DatabaseDown(f"batch {number} failed")
        if self._reject is not None and self._reject in items:
            raise BadItem(f"{self._reject!r} violates a unique key")
        self.written.extend(items)


async def submit_all(group: GroupCommit[Any], items: Sequence[Any]) -> list[asyncio.Task[None]]:
    """Submit every item from a task of its own; returns once every item is queued (each task's
    first step, which queues its item, runs before this coroutine resumes: the loop runs ready
    callbacks in the order they were scheduled)."""
    tasks = [asyncio.create_task(group.submit(item)) for item in items]
    await asyncio.sleep(0)
    return tasks


async def start_held_batch(
    group: GroupCommit[Any], writer: Writer, item: Any
) -> asyncio.Task[None]:
    """Submit `item` and return once the writer is blocked writing it (the first batch)."""
    task = asyncio.create_task(group.submit(item))
    await asyncio.wait_for(writer.writing.wait(), DEADLINE)
    return task


async def settle(tasks: Sequence[asyncio.Task[None]]) -> list[BaseException | None]:
    """Wait for every task (within the deadline); what each raised, or None."""
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DEADLINE)
    return [None if task.cancelled() else task.exception() for task in tasks]


@contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """What the running loop reports to its exception handler meanwhile (such as a future's
    "exception was never retrieved", reported when the future is collected)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        yield reported
        gc.collect()
    finally:
        loop.set_exception_handler(previous)


async def test_an_item_submitted_alone_is_written_at_once_in_a_batch_of_its_own() -> None:
    writer = Writer()
    group: GroupCommit[str] = GroupCommit(writer, max_batch=10)
    await asyncio.wait_for(group.submit("a"), DEADLINE)
    assert writer.batches == [["a"]]
    assert writer.written == ["a"]


async def test_items_submitted_during_a_write_join_the_next_batch_in_submission_order() -> None:
    writer = Writer(hold_first=True)
    group: GroupCommit[str] = GroupCommit(writer, max_batch=100)
    first = await start_held_batch(group, writer, "first")
    queued = await submit_all(group, ["b", "c", "d", "e"])
    assert writer.batches == [["first"]]  # nothing else is written while the batch is
    writer.release.set()
    assert await settle([first, *queued]) == [None] * 5
    assert writer.batches == [["first"], ["b", "c", "d", "e"]]


async def test_max_batch_caps_the_size_of_a_batch() -> None:
    writer = Writer(hold_first=True)
    group: GroupCommit[int] = GroupCommit(writer, max_batch=3)
    first = await start_held_batch(group, writer, 0)
    queued = await submit_all(group, [1, 2, 3, 4, 5, 6, 7])
    writer.release.set()
    assert await settle([first, *queued]) == [None] * 8
    assert writer.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]
    assert writer.written == [0, 1, 2, 3, 4, 5, 6, 7]


async def test_an_isolated_failure_is_rewritten_item_by_item_and_fails_only_its_item() -> None:
    writer = Writer(hold_first=True, reject="bad")
    group: GroupCommit[str] = GroupCommit(writer, max_batch=100, isolate=(BadItem,))
    first = await start_held_batch(group, writer, "first")
    queued = await submit_all(group, ["a", "bad", "c"])
    writer.release.set()
    first_result, *results = await settle([first, *queued])
    assert first_result is None
    assert results[0] is None
    assert isinstance(results[1], BadItem)
    assert results[2] is None
    assert writer.batches == [["first"], ["a", "bad", "c"], ["a"], ["bad"], ["c"]]
    assert writer.written == ["first", "a", "c"]


def unless_database_down(exc: Exception) -> bool:
    return not isinstance(exc, DatabaseDown)


async def test_isolate_may_be_a_test_of_the_exception_isolating_what_it_accepts() -> None:
    writer = Writer(hold_first=True, reject="bad")
    group: GroupCommit[str] = GroupCommit(writer, max_batch=100, isolate=unless_database_down)
    first = await start_held_batch(group, writer, "first")
    queued = await submit_all(group, ["a", "bad", "c"])
    writer.release.set()
    results = await settle([first, *queued])
    assert [type(error) for error in results] == [type(None), type(None), BadItem, type(None)]
    assert writer.batches == [["first"], ["a", "bad", "c"], ["a"], ["bad"], ["c"]]


async def test_isolate_as_a_test_fails_the_whole_batch_on_what_it_rejects() -> None:
    writer = Writer(hold_first=True, fail_batches=[2])
    group: GroupCommit[str] = GroupCommit(writer, max_batch=100, isolate=unless_database_down)
    first = await start_held_batch(group, writer, "first")
    doomed = await submit_all(group, ["a", "b"])
    writer.release.set()
    results = await settle([first, *doomed])
    assert all(isinstance(error, DatabaseDown) for error in results[1:])
    assert writer.batches == [["first"], ["a", "b"]]


async def test_another_failure_fails_every_item_of_the_batch_and_later_batches_still_work() -> None:
    writer = Writer(hold_first=True, fail_batches=[2])
    group: GroupCommit[str] = GroupCommit(writer, max_batch=100, isolate=(BadItem,))
    first = await start_held_batch(group, writer, "first")
    doomed = await submit_all(group, ["a", "b", "c"])
    writer.release.set()
    results = await settle([first, *doomed])
    assert results[0] is None
    assert all(isinstance(error, DatabaseDown) for error in results[1:])
    assert {str(error) for error in results[1:]} == {"batch 2 failed"}
    assert writer.batches == [["first"], ["a", "b", "c"]]  # not retried item by item
    await asyncio.wait_for(group.submit("later"), DEADLINE)
    assert writer.batches[-1] == ["later"]
    assert writer.written == ["first", "later"]


async def test_a_cancelled_submitter_does_not_break_the_others() -> None:
    with loop_errors() as reported:
        writer = Writer(hold_first=True)
        group: GroupCommit[str] = GroupCommit(writer, max_batch=100)
        first = await start_held_batch(group, writer, "first")
        queued = await submit_all(group, ["a", "gone", "c"])
        queued[1].cancel()
        first.cancel()  # its item is being written: the write goes on
        writer.release.set()
        results = await settle([first, *queued])
        assert first.cancelled()
        assert queued[1].cancelled()
        assert [results[1], results[3]] == [None, None]
        await asyncio.wait_for(group.drain(), DEADLINE)
        # The cancelled item may still be written (it was queued); the others are, in order.
        assert [item for item in writer.written if item != "gone"] == ["first", "a", "c"]
        await asyncio.wait_for(group.submit("later"), DEADLINE)
        assert writer.written[-1] == "later"
        del results, first, queued
    assert reported == []


async def test_a_cancelled_submitter_in_a_failing_batch_leaves_no_unretrieved_exception() -> None:
    with loop_errors() as reported:
        writer = Writer(hold_first=True, fail_batches=[2])
        group: GroupCommit[str] = GroupCommit(writer, max_batch=100)
        first = await start_held_batch(group, writer, "first")
        queued = await submit_all(group, ["a", "gone", "c"])
        queued[1].cancel()
        writer.release.set()
        results = await settle([first, *queued])
        assert results[0] is None
        assert queued[1].cancelled()
        assert isinstance(results[1], DatabaseDown)
        assert isinstance(results[3], DatabaseDown)
        del results, first, queued
    assert reported == []


async def test_drain_returns_once_everything_submitted_is_written() -> None:
    writer = Writer(hold_first=True)
    group: GroupCommit[int] = GroupCommit(writer, max_batch=2)
    first = await start_held_batch(group, writer, 0)
    queued = await submit_all(group, [1, 2, 3, 4, 5])
    draining = asyncio.create_task(group.drain())
    await asyncio.sleep(0)
    assert not draining.done()  # the first batch is still being written
    writer.release.set()
    await asyncio.wait_for(draining, DEADLINE)
    assert writer.written == [0, 1, 2, 3, 4, 5]
    assert await settle([first, *queued]) == [None] * 6


async def test_drain_with_nothing_submitted_returns_at_once() -> None:
    group: GroupCommit[int] = GroupCommit(Writer(), max_batch=2)
    await asyncio.wait_for(group.drain(), DEADLINE)
    assert group.batches == 0


async def test_batches_counts_transactions() -> None:
    writer = Writer(hold_first=True, reject="bad")
    group: GroupCommit[str] = GroupCommit(writer, max_batch=2, isolate=(BadItem,))
    assert group.batches == 0
    first = await start_held_batch(group, writer, "first")
    assert group.batches == 1
    queued = await submit_all(group, ["a", "b", "c", "bad"])
    writer.release.set()
    await settle([first, *queued])
    # [first], [a, b], [c, bad] failed, then [c] and [bad] alone: five transactions.
    assert writer.batches == [["first"], ["a", "b"], ["c", "bad"], ["c"], ["bad"]]
    assert group.batches == len(writer.batches) == 5


@pytest.mark.parametrize("max_batch", [0, -1])
def test_max_batch_below_one_is_rejected(max_batch: int) -> None:
    async def write(_items: Sequence[object]) -> None:
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(write, max_batch=max_batch)


async def test_items_submitted_together_are_written_in_one_batch_in_their_order() -> None:
    writer = Writer()
    group: GroupCommit[str] = GroupCommit(writer, max_batch=10)
    await asyncio.wait_for(group.submit_many(["started", "succeeded"]), DEADLINE)
    assert writer.batches == [["started", "succeeded"]]


async def test_items_submitted_together_fail_together_with_the_batch_error() -> None:
    writer = Writer(fail_batches=[1])
    group: GroupCommit[str] = GroupCommit(writer, max_batch=10)
    with loop_errors() as reported, pytest.raises(DatabaseDown):
        await asyncio.wait_for(group.submit_many(["started", "succeeded"]), DEADLINE)
    assert reported == []  # the second item's error was retrieved too
