"""OperationManager.apply_events: a batch of workers' events applied in one transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import code_pb2, status_pb2
from tests.support.operations import metadata_of, new_operation, output_of
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.app import Application
from formation_mcp.identity import Caller
from formation_mcp.operations import store
from formation_mcp.operations.feeds import parse_snapshot
from formation_mcp.operations.ids import new_operation_id, operation_name, parse_operation_name
from formation_mcp.operations.lifecycle import OperationRecord, State

Event = queue_pb2.OperationEvent
Metadata = operations_pb2.OperationMetadata


def new_owner() -> str:
    """An account of the test's own: the session's server is shared by every test."""
    return f"accounts/apply-events-{uuid.uuid4().hex}"


def tool_of(test: str) -> str:
    return f"test.apply-events.{test}"


def event(name: str, sequence: int, attempt: int = 1) -> Event:
    return Event(operation=name, attempt=attempt, sequence=sequence)


def started(name: str, sequence: int, attempt: int = 1) -> Event:
    message = event(name, sequence, attempt)
    message.started.node = "test-node"
    return message


def progress(name: str, sequence: int, percent: int, stage: str = "", attempt: int = 1) -> Event:
    message = event(name, sequence, attempt)
    message.progress.percent = percent
    message.progress.stage = stage
    return message


def logs(name: str, sequence: int, *lines: str) -> Event:
    message = event(name, sequence)
    message.logs.lines.extend(
        operations_pb2.LogLine(text=line, stream=operations_pb2.LogLine.STDOUT) for line in lines
    )
    return message


def succeeded(
    name: str, sequence: int, output: dict[str, Any] | None = None, attempt: int = 1
) -> Event:
    message = event(name, sequence, attempt)
    message.succeeded.SetInParent()  # set even when the output is empty
    message.succeeded.result.output.update(output or {})
    return message


def failed(name: str, sequence: int, text: str) -> Event:
    message = event(name, sequence)
    message.failed.error.CopyFrom(status_pb2.Status(code=code_pb2.INTERNAL, message=text))
    return message


def cancelled(name: str, sequence: int) -> Event:
    message = event(name, sequence)
    message.cancelled.SetInParent()
    return message


async def record_of(app: Application, name: str) -> OperationRecord:
    record = await app.operations.record(parse_operation_name(name))
    assert record is not None, f"{name} does not exist"
    return record


async def stored(app: Application, name: str) -> list[tuple[int, lro_pb2.Operation]]:
    """Every stored event of the operation (its changes), oldest first."""
    async with app.database.read() as conn:
        events = await store.events_after(conn, parse_operation_name(name), 0, 1000)
    return [(e.sequence, parse_snapshot(e)) for e in events]


def states(events: list[tuple[int, lro_pb2.Operation]]) -> list[tuple[int, int]]:
    return [(sequence, metadata_of(op).state) for sequence, op in events]


async def test_a_batch_of_start_progress_and_success_ends_the_operation_succeeded(
    app: Application,
) -> None:
    name = await new_operation(app, new_owner(), tool_of("one"))
    before = await record_of(app, name)
    await app.operations.apply_events(
        [started(name, 1), progress(name, 2, 50, "half"), succeeded(name, 3, {"ok": True})]
    )
    after = await record_of(app, name)
    assert after.state is State.SUCCEEDED
    assert after.sequence == before.sequence + 3
    assert (after.event_attempt, after.event_sequence) == (1, 3)
    assert after.progress_percent == 100
    assert after.stage == "half"
    assert after.end_time is not None
    events = await stored(app, name)
    assert states(events) == [
        (1, Metadata.PENDING),
        (2, Metadata.RUNNING),
        (3, Metadata.RUNNING),
        (4, Metadata.SUCCEEDED),
    ]
    assert metadata_of(events[2][1]).progress_percent == 50
    assert all(metadata_of(op).sequence == sequence for sequence, op in events)
    assert events[-1][1].done
    assert output_of(events[-1][1]) == {"ok": True}


async def test_a_batch_interleaving_several_operations_applies_each_in_order(
    app: Application,
) -> None:
    owner = new_owner()
    a, b, c = [await new_operation(app, owner, tool_of("interleaved")) for _ in range(3)]
    await app.operations.apply_events(
        [
            started(a, 1),
            started(b, 1),
            progress(a, 2, 10, "fetch"),
            started(c, 1),
            logs(a, 3, "line one", "line two"),
            failed(b, 2, "broke"),
            progress(c, 2, 30),
            progress(a, 4, 60, "build"),
            succeeded(a, 5, {"name": "a"}),
            progress(c, 3, 70),
            cancelled(c, 4),
        ]
    )
    record_a, record_b, record_c = [await record_of(app, n) for n in (a, b, c)]
    assert (record_a.state, record_a.sequence, record_a.event_sequence) == (State.SUCCEEDED, 6, 5)
    assert (record_b.state, record_b.sequence, record_b.event_sequence) == (State.FAILED, 3, 2)
    assert (record_c.state, record_c.sequence, record_c.event_sequence) == (State.CANCELLED, 5, 4)
    assert record_a.stage == "build"
    assert [line.text for line in record_a.recent_logs] == ["line one", "line two"]
    assert record_b.status_message == "Failed: broke"
    assert record_c.progress_percent == 70

    events_a = await stored(app, a)
    assert states(events_a) == [
        (1, Metadata.PENDING),
        (2, Metadata.RUNNING),
        (3, Metadata.RUNNING),
        (4, Metadata.RUNNING),
        (5, Metadata.RUNNING),
        (6, Metadata.SUCCEEDED),
    ]
    assert [metadata_of(op).stage for _, op in events_a] == [
        "",
        "",
        "fetch",
        "fetch",  # logs keep the stage
        "build",
        "build",
    ]
    assert [line.text for line in metadata_of(events_a[3][1]).logs] == ["line one", "line two"]
    assert states(await stored(app, b)) == [
        (1, Metadata.PENDING),
        (2, Metadata.RUNNING),
        (3, Metadata.FAILED),
    ]
    events_c = await stored(app, c)
    assert states(events_c) == [
        (1, Metadata.PENDING),
        (2, Metadata.RUNNING),
        (3, Metadata.RUNNING),
        (4, Metadata.RUNNING),
        (5, Metadata.CANCELLED),
    ]
    assert [metadata_of(op).progress_percent for _, op in events_c] == [0, 0, 30, 70, 70]


async def test_duplicate_and_stale_events_in_a_batch_change_nothing(app: Application) -> None:
    name = await new_operation(app, new_owner(), tool_of("duplicates"))
    await app.operations.apply_events(
        [
            started(name, 1),
            started(name, 1),  # the same event delivered twice
            progress(name, 2, 40),
            progress(name, 2, 40),
            progress(name, 1, 90),  # stale: older than the last one applied
            started(name, 1, attempt=2),  # a retry of the work: a newer attempt
            progress(name, 2, 20, attempt=2),
            progress(name, 3, 80, attempt=1),  # stale: the attempt before
            progress(name, 2, 20, attempt=2),
        ]
    )
    record = await record_of(app, name)
    assert record.state is State.RUNNING
    assert record.sequence == 1 + 4  # started, progress 40, started (attempt 2), progress 20
    assert (record.event_attempt, record.event_sequence) == (2, 2)
    assert record.attempt == 2
    assert record.progress_percent == 40  # progress never decreases
    events = await stored(app, name)
    assert [sequence for sequence, _ in events] == [1, 2, 3, 4, 5]
    assert [metadata_of(op).attempt for _, op in events] == [0, 1, 1, 2, 2]

    await app.operations.apply_events(
        [succeeded(name, 3, attempt=2), progress(name, 4, 99, attempt=2)]
    )
    done = await record_of(app, name)
    assert done.state is State.SUCCEEDED
    assert done.sequence == 6  # nothing applies to a finished operation
    assert len(await stored(app, name)) == 6


async def test_events_of_an_operation_that_does_not_exist_are_skipped(app: Application) -> None:
    real = await new_operation(app, new_owner(), tool_of("missing"))
    ghost = operation_name(new_operation_id())
    await app.operations.apply_events(
        [started(ghost, 1), started(real, 1), progress(ghost, 2, 50), succeeded(real, 2)]
    )
    record = await record_of(app, real)
    assert (record.state, record.sequence) == (State.SUCCEEDED, 3)
    assert states(await stored(app, real)) == [
        (1, Metadata.PENDING),
        (2, Metadata.RUNNING),
        (3, Metadata.SUCCEEDED),
    ]
    assert await app.operations.record(parse_operation_name(ghost)) is None
    assert await stored(app, ghost) == []


async def test_a_batch_only_for_operations_that_do_not_exist_writes_nothing(
    app: Application,
) -> None:
    ghost = operation_name(new_operation_id())
    await app.operations.apply_events([started(ghost, 1), succeeded(ghost, 2)])
    assert await app.operations.record(parse_operation_name(ghost)) is None
    assert await stored(app, ghost) == []


async def test_a_watcher_sees_every_change_of_a_batch_and_the_terminal_state(
    app: Application,
) -> None:
    owner = new_owner()
    caller = Caller(owner, frozenset({"user"}))
    name = await new_operation(app, owner, tool_of("watch"))
    seen: list[lro_pb2.Operation] = []
    watch = cast(AsyncGenerator[lro_pb2.Operation, None], app.operations.watch(caller, name, 0))
    async with asyncio.timeout(DEADLINE), aclosing(watch) as stream:
        snapshot = await anext(stream)  # the watch is subscribed once it sent its snapshot
        assert metadata_of(snapshot).state == Metadata.PENDING
        await app.operations.apply_events(
            [started(name, 1), progress(name, 2, 50), succeeded(name, 3, {"seen": "yes"})]
        )
        async for operation in stream:
            seen.append(operation)
    assert [metadata_of(op).sequence for op in seen] == [2, 3, 4]
    assert [metadata_of(op).state for op in seen] == [
        Metadata.RUNNING,
        Metadata.RUNNING,
        Metadata.SUCCEEDED,
    ]
    assert seen[-1].done
    assert output_of(seen[-1]) == {"seen": "yes"}


async def test_a_wait_returns_the_terminal_state_a_batch_wrote(app: Application) -> None:
    owner = new_owner()
    caller = Caller(owner, frozenset({"user"}))
    name = await new_operation(app, owner, tool_of("wait"))
    waiting = asyncio.create_task(app.operations.wait(caller, name, DEADLINE))
    try:

        async def subscribed() -> bool:
            assert not waiting.done(), "the wait returned before the operation finished"
            return parse_operation_name(name) in app.hub.feed_ids

        await eventually(subscribed)
        await app.operations.apply_events(
            [started(name, 1), failed(name, 2, "the batch failed it")]
        )
        operation = await asyncio.wait_for(waiting, DEADLINE)
    finally:
        waiting.cancel()
    assert operation.done
    assert metadata_of(operation).state == Metadata.FAILED
    assert metadata_of(operation).sequence == 3
    assert operation.error.code == code_pb2.INTERNAL
    assert operation.error.message == "the batch failed it"


async def test_a_batch_of_only_duplicates_writes_nothing(app: Application) -> None:
    name = await new_operation(app, new_owner(), tool_of("no-effect"))
    await app.operations.apply_events([started(name, 1), progress(name, 2, 30)])
    before = await record_of(app, name)
    events_before = await stored(app, name)
    await app.operations.apply_events(
        [started(name, 1), progress(name, 2, 30), progress(name, 1, 90), started(name, 2)]
    )
    after = await record_of(app, name)
    assert after == before  # same sequence, same update time: not rewritten
    assert after.sequence == 3
    assert await stored(app, name) == events_before


async def test_an_empty_batch_is_accepted(app: Application) -> None:
    await app.operations.apply_events([])
