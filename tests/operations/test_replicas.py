"""Two API servers on one PostgreSQL: changes made through one reach watchers on the other."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from tests.support.operations import Worker, metadata_of, new_operation
from tests.support.servers import StartApp
from tests.support.waiting import DEADLINE, eventually

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_only(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("cross-replica notification needs PostgreSQL (SQLite is one process)")


@pytest.mark.usefixtures("postgres_only")
async def test_a_watch_on_one_replica_sees_events_applied_through_another(
    start_app: StartApp,
    account: str,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    replica_a = await start_app()
    replica_b = await start_app()
    name = await new_operation(replica_a, account)
    md = as_account
    async with grpc.aio.insecure_channel(replica_b.grpc.address) as channel:
        call = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
            operations_pb2.WatchOperationRequest(name=name), metadata=md
        )
        async with asyncio.timeout(DEADLINE):
            await call.read()
            worker = Worker(replica_a, name)  # events applied through replica A only
            await worker.start()
            await worker.progress(50, "half")
            await worker.succeed({"via": "a"})
            seen = []
            while isinstance(message := await call.read(), lro_pb2.Operation):
                seen.append(message)
    assert [metadata_of(op).sequence for op in seen] == [2, 3, 4]
    assert seen[-1].done


@pytest.mark.usefixtures("postgres_only")
async def test_a_wait_on_one_replica_returns_when_another_finishes_the_operation(
    start_app: StartApp,
    account: str,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    replica_a = await start_app()
    replica_b = await start_app()
    name = await new_operation(replica_a, account)
    md = as_account
    async with grpc.aio.insecure_channel(replica_b.grpc.address) as channel:
        waiting = asyncio.ensure_future(
            operations_pb2_grpc.OperationsServiceStub(channel).WaitOperation(
                operations_pb2.WaitOperationRequest(name=name), metadata=md
            )
        )
        worker = Worker(replica_a, name)
        await worker.start()
        await worker.succeed({})
        operation = await asyncio.wait_for(waiting, DEADLINE)
    assert operation.done


@pytest.mark.usefixtures("postgres_only")
async def test_changes_racing_through_two_replicas_keep_one_gapless_sequence(
    start_app: StartApp,
    account: str,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    replica_a = await start_app()
    replica_b = await start_app()
    name = await new_operation(replica_a, account)
    md = as_account
    worker = Worker(replica_a, name)
    await worker.start()
    async with grpc.aio.insecure_channel(replica_b.grpc.address) as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        call = stub.WatchOperation(operations_pb2.WatchOperationRequest(name=name), metadata=md)
        async with asyncio.timeout(DEADLINE):
            await call.read()

            async def progress() -> None:
                for percent in range(1, 31):
                    await worker.progress(percent)

            cancel = stub.CancelOperation(
                operations_pb2.CancelOperationRequest(name=name), metadata=md
            )
            await asyncio.gather(progress(), cancel)
            await worker.cancelled()
            seen = []
            while isinstance(message := await call.read(), lro_pb2.Operation):
                seen.append(message)
    sequences = [metadata_of(op).sequence for op in seen]
    assert sequences == list(range(3, 3 + 32))  # 30 progress + cancel request + cancelled
    assert any(metadata_of(op).cancel_requested for op in seen)
    assert seen[-1].done and metadata_of(seen[-1]).progress_percent == 30


@pytest.mark.usefixtures("postgres_only")
async def test_a_read_on_one_replica_reflects_a_change_made_through_another(
    start_app: StartApp,
    account: str,
    as_account: tuple[tuple[str, str], ...],
) -> None:
    replica_a = await start_app()
    replica_b = await start_app()
    name = await new_operation(replica_a, account)
    async with grpc.aio.insecure_channel(replica_b.grpc.address) as channel:
        stub = operations_pb2_grpc.OperationsServiceStub(channel)
        request = operations_pb2.GetOperationRequest(name=name)
        before = await stub.GetOperation(request, metadata=as_account)  # now cached on B
        await Worker(replica_a, name).start()

        async def running_on_b() -> bool:
            operation = await stub.GetOperation(request, metadata=as_account)
            return metadata_of(operation).state == operations_pb2.OperationMetadata.RUNNING

        await eventually(running_on_b)
    assert metadata_of(before).state == operations_pb2.OperationMetadata.PENDING
