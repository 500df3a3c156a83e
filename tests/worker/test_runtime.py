"""The worker against a database that is down when work arrives: it waits for the database
instead of handing the work back (every hand-back counts as an attempt, so an outage would
dead-letter work that never ran)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf import duration_pb2
from tests.support.operations import metadata_of, struct
from tests.support.servers import StartApp
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login
from formation_mcp.errors import Unavailable
from formation_mcp.operations.store import WorkState

MAX_ATTEMPTS = 2


class DatabaseDownFor:
    """The operation's first `failures` reads fail as they do while the database is down."""

    def __init__(self, app: Application, failures: int) -> None:
        self.failures = failures
        self.reads = 0
        self._read = app.reader.work_state

    async def __call__(self, operation_id: str) -> WorkState | None:
        self.reads += 1
        if self.reads <= self.failures:
            raise Unavailable("the database is unavailable; retry later", retry_after_seconds=1)
        return await self._read(operation_id)


async def test_work_that_arrives_while_the_database_is_down_runs_once_it_is_back(
    start_app: StartApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await start_app(broker_url="memory://", max_attempts=MAX_ATTEMPTS)
    await asyncio.wait_for(app.broker_ready.wait(), DEADLINE)
    outage = DatabaseDownFor(app, failures=MAX_ATTEMPTS + 1)
    monkeypatch.setattr(app.reader, "work_state", outage)  # what the worker reads with
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        metadata = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
        started = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(name="tools/test.sleep", arguments=struct({"steps": 1})),
            metadata=metadata,
        )
        operation = await operations_pb2_grpc.OperationsServiceStub(channel).WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=started.name, timeout=duration_pb2.Duration(seconds=int(DEADLINE))
            ),
            metadata=metadata,
        )
    assert operation.done
    assert metadata_of(operation).state == operations_pb2.OperationMetadata.SUCCEEDED
    assert metadata_of(operation).attempt == 1
    assert outage.reads > MAX_ATTEMPTS
