"""Native gRPC through Envoy's port: passed through untouched (stubs, errors, streams,
reflection for grpcurl)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from formation.mcp.v1 import auth_pb2, operations_pb2, operations_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from tests.support.errors import error_info
from tests.support.operations import Worker, metadata_of, new_operation, output_of
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer

GRPCURL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "grpcurl"


@pytest.fixture
async def envoy_channel(envoy: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(envoy.removeprefix("http://")) as channel:
        yield channel


async def test_get_operation_over_grpc_through_envoy(
    envoy_channel: grpc.aio.Channel, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    stub = operations_pb2_grpc.OperationsServiceStub(envoy_channel)
    operation = await stub.GetOperation(
        operations_pb2.GetOperationRequest(name=name),
        metadata=bearer(session.access_token),
        timeout=DEADLINE,
    )
    assert (operation.name, operation.done) == (name, False)
    assert metadata_of(operation).owner == session.account.name


async def test_grpc_error_details_pass_through_envoy(
    envoy_channel: grpc.aio.Channel, session: auth_pb2.Session
) -> None:
    stub = operations_pb2_grpc.OperationsServiceStub(envoy_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetOperation(
            operations_pb2.GetOperationRequest(name="operations/" + "0" * 32),
            metadata=bearer(session.access_token),
            timeout=DEADLINE,
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "OPERATION_NOT_FOUND"


async def test_watch_over_grpc_through_envoy(
    envoy_channel: grpc.aio.Channel, app: Application, session: auth_pb2.Session
) -> None:
    name = await new_operation(app, session.account.name)
    worker = Worker(app, name)
    stub = operations_pb2_grpc.OperationsServiceStub(envoy_channel)
    call = stub.WatchOperation(
        operations_pb2.WatchOperationRequest(name=name),
        metadata=bearer(session.access_token),
        timeout=DEADLINE,
    )
    snapshot = await call.read()
    assert isinstance(snapshot, lro_pb2.Operation) and not snapshot.done
    await worker.start()
    await worker.succeed({"steps": 1})
    received: list[lro_pb2.Operation] = []
    while isinstance(message := await call.read(), lro_pb2.Operation):
        received.append(message)
    assert [metadata_of(m).state for m in received] == [
        operations_pb2.OperationMetadata.RUNNING,
        operations_pb2.OperationMetadata.SUCCEEDED,
    ]
    assert output_of(received[-1]) == {"steps": 1}


async def test_grpcurl_lists_our_services_through_envoy(envoy: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        envoy.removeprefix("http://"),
        "list",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    services = set(out.decode().split())
    assert {
        "formation.mcp.v1.AuthService",
        "formation.mcp.v1.AccountsService",
        "formation.mcp.v1.ToolsService",
        "formation.mcp.v1.OperationsService",
        "grpc.health.v1.Health",
    } <= services
