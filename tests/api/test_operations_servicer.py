"""OperationsService over real gRPC, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

import grpc
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.errors import error_info, field_violations
from tests.support.operations import Worker, metadata_of, new_operation, output_of

from formation_mcp.app import Application
from formation_mcp.identity import Caller

Stub: TypeAlias = "operations_pb2_grpc.OperationsServiceAsyncStub"
State = operations_pb2.OperationMetadata


async def get(stub: Stub, name: str, md: Md) -> operations_pb2.OperationMetadata:
    return metadata_of(
        await stub.GetOperation(operations_pb2.GetOperationRequest(name=name), metadata=md)
    )


async def test_new_operation_is_pending(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account, "test.sleep")
    operation = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=as_account
    )
    metadata = metadata_of(operation)
    assert (operation.name, operation.done) == (name, False)
    assert (metadata.tool, metadata.owner, metadata.state) == ("test.sleep", account, State.PENDING)
    assert metadata.sequence == 1
    assert metadata.create_time.ToMicroseconds() > 0


async def test_unknown_operation_is_not_found(operations_stub: Stub, as_account: Md) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name="operations/" + "0" * 32), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "OPERATION_NOT_FOUND"


@pytest.mark.parametrize(
    "name", ["", "operations/", "operations/xyz", "ops/" + "0" * 32, "operations/" + "A" * 32]
)
async def test_malformed_name_is_invalid_argument(
    operations_stub: Stub, as_account: Md, name: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["name"]


async def test_another_owners_operation_is_not_found(
    app: Application, operations_stub: Stub, as_account: Md
) -> None:
    name = await new_operation(app, "someone-else")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_worker_events_drive_the_state_machine_to_success(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    assert (await get(operations_stub, name, as_account)).state == State.RUNNING
    await worker.progress(40, "build", "compiling")
    metadata = await get(operations_stub, name, as_account)
    assert (metadata.progress_percent, metadata.stage, metadata.status_message) == (
        40,
        "build",
        "compiling",
    )
    await worker.log("line one", "line two")
    assert [line.text for line in (await get(operations_stub, name, as_account)).logs] == [
        "line one",
        "line two",
    ]
    await worker.succeed({"answer": 42})
    operation = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=as_account
    )
    metadata = metadata_of(operation)
    assert operation.done and metadata.state == State.SUCCEEDED
    assert metadata.progress_percent == 100 and metadata.end_time.ToMicroseconds() > 0
    assert output_of(operation) == {"answer": 42}
    assert metadata.sequence == 5  # created, started, progress, logs, succeeded


async def test_failed_event_ends_with_the_error(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.fail("step 2 exited with 3", code_pb2.ABORTED)
    operation = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=as_account
    )
    assert operation.done and metadata_of(operation).state == State.FAILED
    assert (operation.error.code, operation.error.message) == (
        code_pb2.ABORTED,
        "step 2 exited with 3",
    )


async def test_duplicate_and_stale_events_change_nothing(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.progress(50)
    before = await get(operations_stub, name, as_account)
    worker.sequence -= 1  # redelivery of the same event
    await worker.progress(50)
    worker.sequence -= 2  # an older one
    await worker.progress(10)
    after = await get(operations_stub, name, as_account)
    assert (after.sequence, after.progress_percent) == (before.sequence, 50)


async def test_a_newer_attempt_supersedes_the_old_one(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    first = Worker(app, name, attempt=1)
    await first.start()
    await first.progress(30)
    second = Worker(app, name, attempt=2)
    await second.start()
    await first.progress(90)  # the crashed first attempt speaks late: ignored
    metadata = await get(operations_stub, name, as_account)
    assert (metadata.attempt, metadata.progress_percent) == (2, 30)


async def test_finished_operation_ignores_later_events(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.succeed({"ok": True})
    await worker.fail("too late")
    assert (await get(operations_stub, name, as_account)).state == State.SUCCEEDED


async def test_cancel_pending_operation_ends_it_at_once(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    operation = await operations_stub.CancelOperation(
        operations_pb2.CancelOperationRequest(name=name), metadata=as_account
    )
    assert operation.done and operation.error.code == code_pb2.CANCELLED
    assert metadata_of(operation).state == State.CANCELLED


async def test_cancel_running_operation_flags_it_until_the_worker_stops(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    operation = await operations_stub.CancelOperation(
        operations_pb2.CancelOperationRequest(name=name), metadata=as_account
    )
    metadata = metadata_of(operation)
    assert not operation.done
    assert (metadata.state, metadata.cancel_requested) == (State.RUNNING, True)
    await worker.cancelled()
    final = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=name), metadata=as_account
    )
    assert final.done and final.error.code == code_pb2.CANCELLED


async def test_cancel_finished_operation_changes_nothing(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    await worker.start()
    await worker.succeed({})
    operation = await operations_stub.CancelOperation(
        operations_pb2.CancelOperationRequest(name=name), metadata=as_account
    )
    assert metadata_of(operation).state == State.SUCCEEDED
    assert not metadata_of(operation).cancel_requested


async def test_cancel_another_owners_operation_is_not_found(
    app: Application, operations_stub: Stub, as_account: Md
) -> None:
    name = await new_operation(app, "someone-else")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.CancelOperation(
            operations_pb2.CancelOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    record = await app.operations.record(name.split("/")[1])
    assert record is not None and record.state.name == "PENDING"


async def test_delete_running_operation_is_failed_precondition(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "OPERATION_NOT_DONE"


async def test_delete_finished_operation_forgets_it(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    await operations_stub.CancelOperation(
        operations_pb2.CancelOperationRequest(name=name), metadata=as_account
    )
    await operations_stub.DeleteOperation(
        operations_pb2.DeleteOperationRequest(name=name), metadata=as_account
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.GetOperation(
            operations_pb2.GetOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_delete_another_owners_operation_is_not_found(
    app: Application, operations_stub: Stub, as_account: Md
) -> None:
    name = await new_operation(app, "someone-else")
    await app.operations.cancel(Caller("someone-else", frozenset({"user"})), name)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await operations_stub.DeleteOperation(
            operations_pb2.DeleteOperationRequest(name=name), metadata=as_account
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_wait_returns_when_the_operation_is_done(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    worker = Worker(app, name)
    waiting = asyncio.ensure_future(
        operations_stub.WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=name, timeout=duration_pb2.Duration(seconds=30)
            ),
            metadata=as_account,
        )
    )
    await worker.start()
    await worker.succeed({"done": "yes"})
    operation = await asyncio.wait_for(waiting, 10)
    assert operation.done and output_of(operation) == {"done": "yes"}


async def test_wait_returns_the_unfinished_operation_at_the_timeout(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    operation = await operations_stub.WaitOperation(
        operations_pb2.WaitOperationRequest(
            name=name, timeout=duration_pb2.Duration(nanos=200_000_000)
        ),
        metadata=as_account,
    )
    assert not operation.done and metadata_of(operation).state == State.PENDING


async def test_wait_answers_before_the_callers_deadline(
    app: Application, operations_stub: Stub, account: str, as_account: Md
) -> None:
    name = await new_operation(app, account)
    operation = await operations_stub.WaitOperation(
        operations_pb2.WaitOperationRequest(name=name), metadata=as_account, timeout=0.5
    )
    assert not operation.done
