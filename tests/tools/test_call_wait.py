"""CallTool with `wait`: call and wait in one RPC. The answer is the done operation when the
work finishes within the wait, the pending one when the wait ends first; with a request_id
the repeated call waits on the first call's operation."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeAlias

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.errors import field_violations
from tests.support.operations import metadata_of, output_of, struct
from tests.support.servers import StartApp
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.client.auth import bearer, login

Tools: TypeAlias = "tools_pb2_grpc.ToolsServiceAsyncStub"


def request(
    tool: str, wait: float, request_id: str = "", **arguments: object
) -> tools_pb2.CallToolRequest:
    return tools_pb2.CallToolRequest(
        name=f"tools/{tool}",
        arguments=struct(arguments),
        request_id=request_id,
        wait=duration_pb2.Duration(nanos=int(wait % 1 * 1e9), seconds=int(wait)),
    )


async def test_a_call_that_finishes_within_the_wait_comes_back_done(
    tools_stub: Tools, as_account: Md
) -> None:
    operation = await tools_stub.CallTool(
        request("test.sleep", 30, steps=2, delay_ms=10), metadata=as_account
    )
    assert operation.done
    assert output_of(operation) == {"steps": 2}


async def test_a_call_longer_than_the_wait_comes_back_pending(
    tools_stub: Tools, as_account: Md
) -> None:
    operation = await tools_stub.CallTool(
        request("test.sleep", 0.2, steps=1000, delay_ms=50), metadata=as_account
    )
    assert not operation.done
    assert metadata_of(operation).state in (
        operations_pb2.OperationMetadata.PENDING,
        operations_pb2.OperationMetadata.RUNNING,
    )


async def test_without_a_wait_a_long_call_answers_at_once(
    tools_stub: Tools, as_account: Md
) -> None:
    operation = await tools_stub.CallTool(
        request("test.sleep", 0, steps=2, delay_ms=10), metadata=as_account
    )
    assert not operation.done


async def test_a_repeated_request_id_waits_on_the_first_calls_operation(
    tools_stub: Tools, as_account: Md
) -> None:
    request_id = str(uuid.uuid4())
    first = await tools_stub.CallTool(
        request("test.sleep", 0, request_id, steps=2, delay_ms=10), metadata=as_account
    )
    again = await tools_stub.CallTool(
        request("test.sleep", 30, request_id, steps=2, delay_ms=10), metadata=as_account
    )
    assert again.name == first.name
    assert again.done and output_of(again) == {"steps": 2}


async def test_a_negative_wait_is_invalid(tools_stub: Tools, as_account: Md) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await tools_stub.CallTool(
            tools_pb2.CallToolRequest(
                name="tools/test.sleep", wait=duration_pb2.Duration(seconds=-1)
            ),
            metadata=as_account,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == ["wait"]


async def test_a_cancel_ends_the_wait_with_the_cancelled_operation(
    tools_stub: Tools, channel: grpc.aio.Channel, as_account: Md
) -> None:
    calling = asyncio.ensure_future(
        tools_stub.CallTool(request("test.sleep", 30, steps=1000, delay_ms=50), metadata=as_account)
    )
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    names: list[str] = []

    async def started() -> bool:
        listed = await operations.ListOperations(
            operations_pb2.ListOperationsRequest(filter='tool = "test.sleep"'), metadata=as_account
        )
        names[:] = [op.name for op in listed.operations]
        return bool(names)

    await eventually(started)
    await operations.CancelOperation(
        operations_pb2.CancelOperationRequest(name=names[0]), metadata=as_account
    )
    operation = await asyncio.wait_for(calling, DEADLINE)
    assert operation.done
    assert operation.error.code == code_pb2.CANCELLED


@pytest.mark.postgres
@pytest.mark.rabbitmq
async def test_the_wait_sees_work_done_through_another_replica(
    start_app: StartApp, database_url: str, rabbitmq_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share PostgreSQL")
    shared = {"broker_url": rabbitmq_url, "broker_prefix": f"fmcp-test-{uuid.uuid4().hex[:8]}"}
    caller_side = await start_app(run_worker=False, **shared)
    await start_app(run_worker=True, **shared)  # runs the work and may apply its events
    async with grpc.aio.insecure_channel(caller_side.grpc.address) as channel:
        md = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
        operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            request("test.sleep", 30, steps=2, delay_ms=10), metadata=md
        )
    assert operation.done and output_of(operation) == {"steps": 2}
