"""WatchOperation: snapshot, every change exactly once, resume, many and slow watchers."""

from __future__ import annotations

import asyncio
from typing import TypeAlias, cast

import grpc
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from tests.support.auth import Md
from tests.support.errors import field_violations
from tests.support.operations import Worker, metadata_of, new_operation
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.app import Application

Stub: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"
WatchCall: TypeAlias = (
    "grpc.aio.UnaryStreamCall[operations_pb2.WatchOperationRequest, lro_pb2.Operation]"
)
State = operations_pb2.OperationMetadata


def watch(stub: Stub, name: str, md: Md, after: int = 0) -> WatchCall:
    return stub.WatchOperation(
        operations_pb2.WatchOperationRequest(name=name, after_sequence=after), metadata=md
    )


async def collect(call: WatchCall) -> list[lro_pb2.Operation]:
    """Every remaining message, until the server ends the stream."""
    messages = []
    async with asyncio.timeout(DEADLINE):
        while isinstance(message := await call.read(), lro_pb2.Operation):
            messages.append(message)
    return messages


async def run_to_success(worker: Worker, progress_steps: int) -> None:
    await worker.start()
    for step in range(1, progress_steps + 1):
        await worker.progress(step * 100 // (progress_steps + 1), "work", f"step {step}")
    await worker.succeed({"steps": progress_steps})


async def first_message(call: WatchCall) -> lro_pb2.Operation:
    """The next message (grpc.aio.EOF if the stream has ended: the stubs type it `object`)."""
    async with asyncio.timeout(DEADLINE):
        return cast(lro_pb2.Operation, await call.read())


async def test_watch_sends_the_snapshot_then_every_change_then_ends_on_done(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    call = watch(operations_stub, name, as_account)
    snapshot = await first_message(call)
    await run_to_success(Worker(app, name), progress_steps=5)
    rest = await collect(call)
    sequences = [metadata_of(op).sequence for op in (snapshot, *rest)]
    assert sequences == list(range(1, 9))  # created, started, 5 x progress, succeeded
    assert [metadata_of(op).progress_percent for op in rest[1:6]] == [16, 33, 50, 66, 83]
    assert rest[-1].done and not any(op.done for op in rest[:-1])
    assert rest[-1].response.ByteSize() > 0


async def test_watch_messages_carry_the_log_lines_of_their_change(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.log("old line")
    call = watch(operations_stub, name, as_account)
    snapshot = await first_message(call)
    await worker.log("new one", "and another")
    await worker.succeed({})
    rest = await collect(call)
    assert [line.text for line in metadata_of(snapshot).logs] == ["old line"]
    assert [line.text for line in metadata_of(rest[0]).logs] == ["new one", "and another"]


async def test_watch_of_a_finished_operation_sends_the_final_snapshot_and_ends(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    await run_to_success(Worker(app, name), progress_steps=1)
    messages = await collect(watch(operations_stub, name, as_account))
    assert len(messages) == 1 and messages[0].done


async def test_watch_resumes_after_a_sequence_without_repeating_it(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.progress(10)
    await worker.progress(20)
    call = watch(operations_stub, name, as_account, after=2)
    replayed = [await first_message(call), await first_message(call)]
    await worker.succeed({})
    rest = await collect(call)
    assert [metadata_of(op).sequence for op in (*replayed, *rest)] == [3, 4, 5]


async def test_watch_resumed_at_the_terminal_change_ends_with_it(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    await run_to_success(Worker(app, name), progress_steps=0)
    messages = await collect(watch(operations_stub, name, as_account, after=3))
    assert [(metadata_of(op).sequence, op.done) for op in messages] == [(3, True)]


async def test_watch_after_a_future_sequence_is_invalid(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(watch(operations_stub, name, as_account, after=99))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["after_sequence"]


async def test_watch_of_another_owners_operation_is_not_found(
    app: Application, operations_stub: Stub, as_account: Md
) -> None:
    name = await new_operation(app, "someone-else")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(watch(operations_stub, name, as_account))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_thousand_watchers_all_get_every_change(
    app: Application, channel: grpc.aio.Channel, account: str, as_account: Md
) -> None:
    stub = operations_pb2_grpc.OperationsServiceStub(channel)
    name = await new_operation(app, account)
    calls = [watch(stub, name, as_account) for _ in range(1000)]
    await asyncio.gather(*(first_message(call) for call in calls))
    await run_to_success(Worker(app, name), progress_steps=8)
    results = await asyncio.gather(*(collect(call) for call in calls))
    expected = list(range(2, 12))
    assert all([metadata_of(op).sequence for op in ops] == expected for ops in results)


async def test_a_slow_watcher_neither_delays_others_nor_misses_the_end(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    slow = watch(operations_stub, name, as_account)
    fast = watch(operations_stub, name, as_account)
    await first_message(slow)
    await first_message(fast)
    changes = app.settings.watch_buffer_events * 2  # more than one feed buffer holds
    await run_to_success(Worker(app, name), progress_steps=changes)
    fast_messages = await collect(fast)  # finishes while `slow` has read nothing yet
    slow_messages = await collect(slow)
    expected = list(range(2, changes + 4))
    assert [metadata_of(op).sequence for op in fast_messages] == expected
    assert [metadata_of(op).sequence for op in slow_messages] == expected


async def test_a_watcher_that_disconnects_leaves_nothing_behind(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    before = app.hub.watcher_count
    call = watch(operations_stub, name, as_account)
    await first_message(call)
    assert app.hub.watcher_count == before + 1
    call.cancel()

    async def released() -> bool:
        return app.hub.watcher_count == before and name.split("/")[1] not in app.hub.feed_ids

    await eventually(released)
