"""PostgreSQL shutting down under load: every call that fails says UNAVAILABLE with a retry
delay (never INTERNAL or UNKNOWN), and the server serves again once PostgreSQL is back.

Runs on a private cluster (tests/support/postgres.py): the shared PostgreSQL serves every
other test."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from tests.support.operations import metadata_of, struct
from tests.support.postgres import PrivatePostgres, StopMode
from tests.support.servers import LOGIN_RATE_FOR_SHARED_SERVERS, make_settings
from tests.support.waiting import eventually

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login

pytestmark = pytest.mark.postgres

CALL_TIMEOUT_SECONDS = 30.0
"""A call that hangs this long is a failure of its own (the server must answer, not wait)."""
OUTAGE_DEADLINE = 60.0
LOOPS_PER_KIND = 3

Call = Callable[[], Awaitable[object]]
Metadata = tuple[tuple[str, str], ...]


@dataclass
class Outcomes:
    """What the callers saw, per kind of call: successes, and every error as a description."""

    ok: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)
    """Long-running operations the server accepted."""
    errors: Counter[str] = field(default_factory=Counter)
    unexpected: Counter[str] = field(default_factory=Counter)
    """Errors other than UNAVAILABLE with a retry delay, and how often each was seen."""

    def saw_errors(self, kinds: list[str]) -> bool:
        return all(self.errors[kind] > 0 for kind in kinds)


def retry_delay_of(error: grpc.aio.AioRpcError) -> float | None:
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            seconds: float = info.retry_delay.ToNanoseconds() / 1e9
            return seconds
    return None


async def keep_calling(kind: str, call: Call, outcomes: Outcomes, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await call()
        except grpc.aio.AioRpcError as error:
            outcomes.errors[kind] += 1
            delay = retry_delay_of(error)
            if error.code() is not grpc.StatusCode.UNAVAILABLE or not delay:
                description = f"{kind}: {error.code().name} {error.details()!r}, retry {delay}"
                outcomes.unexpected[description] += 1
            await asyncio.sleep(0.01)  # a client backing off (briefly: to see a lot)
        else:
            outcomes.ok[kind] += 1


@pytest.fixture
async def server(
    private_postgres: PrivatePostgres,
    tmp_path: Path,
) -> AsyncIterator[Application]:
    await private_postgres.create_database("fmcp")
    application = Application(
        make_settings(
            tmp_path,
            private_postgres.url("fmcp"),
            broker_url="memory://",
            login_rate_per_minute=LOGIN_RATE_FOR_SHARED_SERVERS,
        )
    )
    await application.start()
    try:
        await asyncio.wait_for(application.broker_ready.wait(), 30)
        yield application
    finally:
        await application.stop()


def calls(
    channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], outcomes: Outcomes
) -> dict[str, Call]:
    """One of each kind of call that needs the database."""
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    tools = tools_pb2_grpc.ToolsServiceStub(channel)

    async def get_operation() -> None:
        name = f"operations/{uuid.uuid4().hex}"  # never cached: read from the database
        try:
            await operations.GetOperation(
                operations_pb2.GetOperationRequest(name=name),
                metadata=metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise

    async def wait_operation() -> None:
        name = f"operations/{uuid.uuid4().hex}"
        try:
            await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(name=name),
                metadata=metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise

    async def watch_operation() -> None:
        name = f"operations/{uuid.uuid4().hex}"
        try:
            async for _ in operations.WatchOperation(
                operations_pb2.WatchOperationRequest(name=name),
                metadata=metadata,
                timeout=CALL_TIMEOUT_SECONDS,
            ):
                pass
        except grpc.aio.AioRpcError as error:
            if error.code() is not grpc.StatusCode.NOT_FOUND:
                raise

    async def list_operations() -> None:
        await operations.ListOperations(
            operations_pb2.ListOperationsRequest(page_size=5),
            metadata=metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def call_quick_tool() -> None:
        await tools.CallTool(
            tools_pb2.CallToolRequest(name="tools/test.echo", arguments=struct({"text": "hi"})),
            metadata=metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )

    async def call_long_running_tool() -> None:
        operation = await tools.CallTool(
            tools_pb2.CallToolRequest(name="tools/test.sleep", arguments=struct({"steps": 1})),
            metadata=metadata,
            timeout=CALL_TIMEOUT_SECONDS,
        )
        outcomes.accepted.append(operation.name)

    async def log_in() -> None:
        await login(channel, Ed25519PrivateKey.generate())

    return {
        "GetOperation": get_operation,
        "WaitOperation": wait_operation,
        "WatchOperation": watch_operation,
        "ListOperations": list_operations,
        "CallTool quick": call_quick_tool,
        "CallTool long-running": call_long_running_tool,
        "Login": log_in,
    }


async def through_an_outage(
    server: Application,
    cluster: PrivatePostgres,
    mode: StopMode,
    channel: grpc.aio.Channel,
    metadata: Metadata,
) -> Outcomes:
    """Every kind of call, concurrently, while PostgreSQL is stopped (`mode`) and started again;
    returns once every kind succeeded again."""
    outcomes = Outcomes()
    by_kind = calls(channel, metadata, outcomes)
    kinds = list(by_kind)
    stop = asyncio.Event()
    loops = [
        asyncio.create_task(keep_calling(kind, call, outcomes, stop))
        for kind, call in by_kind.items()
        for _ in range(LOOPS_PER_KIND)
    ]
    try:
        await eventually(lambda: _true(all(outcomes.ok[k] > 0 for k in kinds)))
        await cluster.stop(mode)
        await eventually(lambda: _true(outcomes.saw_errors(kinds)), OUTAGE_DEADLINE)
        await cluster.start()
        recovered = Counter(outcomes.ok)
        await eventually(
            lambda: _true(all(outcomes.ok[k] > recovered[k] for k in kinds)), OUTAGE_DEADLINE
        )
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return outcomes


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_stopping_under_load_gives_only_unavailable_and_the_server_recovers(
    server: Application,
    private_postgres: PrivatePostgres,
    mode: StopMode,
) -> None:
    async with grpc.aio.insecure_channel(server.grpc.address) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
        metadata = bearer(session.access_token)
        outcomes = await through_an_outage(server, private_postgres, mode, channel, metadata)
    assert not outcomes.unexpected, "\n".join(sorted(outcomes.unexpected))


async def test_every_call_accepted_around_a_postgres_crash_runs_to_success(
    server: Application,
    private_postgres: PrivatePostgres,
) -> None:
    async with grpc.aio.insecure_channel(server.grpc.address) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
        metadata = bearer(session.access_token)
        outcomes = await through_an_outage(server, private_postgres, "immediate", channel, metadata)
        states = Counter(
            [
                operations_pb2.OperationMetadata.State.Name(
                    await final_state(channel, metadata, name)
                )
                for name in outcomes.accepted
            ]
        )
    assert states == {"SUCCEEDED": len(outcomes.accepted)}


async def final_state(
    channel: grpc.aio.Channel, metadata: Metadata, name: str
) -> operations_pb2.OperationMetadata.State.ValueType:
    """The operation's state once it is done (waiting up to OUTAGE_DEADLINE)."""
    stub = operations_pb2_grpc.OperationsServiceStub(channel)
    async with asyncio.timeout(OUTAGE_DEADLINE):
        while True:
            operation = await stub.WaitOperation(
                operations_pb2.WaitOperationRequest(
                    name=name, timeout=duration_pb2.Duration(seconds=5)
                ),
                metadata=metadata,
            )
            if operation.done:
                return metadata_of(operation).state


async def _true(value: bool) -> bool:
    return value
