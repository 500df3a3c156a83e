"""The API's event consumer against real workers, every database and every broker: strings a
worker sends are stored with their control characters escaped (PostgreSQL text cannot hold
NUL), and an event that cannot be applied is given up after a few tries, failing its
operation, instead of being handed back forever."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import duration_pb2
from google.rpc import code_pb2, status_pb2
from tests.support.operations import metadata_of, output_of, struct
from tests.support.servers import StartApp
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.broker.base import Delivery
from formation_mcp.client.auth import bearer, login
from formation_mcp.dispatch.event_writer import EVENT_MAX_ATTEMPTS
from formation_mcp.operations.lifecycle import OperationRecord

ESCAPED = "nul\\x00 esc\\x1b[31m cr\\x0d del\\x7f c1\\x9b bell\\x07"
"""tests.support.tools.CONTROL_CHARACTERS as stored."""
POISON = "poisoned"
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


async def call(app: Application, tool: str, arguments: dict[str, object]) -> lro_pb2.Operation:
    """Log in as a new account, call `tool` and wait until its operation is done."""
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        metadata = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
        started = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)),
            metadata=metadata,
        )
        return await wait_done(channel, metadata, started.name)


async def wait_done(channel: grpc.aio.Channel, metadata: Metadata, name: str) -> lro_pb2.Operation:
    operations = operations_pb2_grpc.OperationsServiceStub(channel)
    async with asyncio.timeout(DEADLINE):
        while True:
            operation: lro_pb2.Operation = await operations.WaitOperation(
                operations_pb2.WaitOperationRequest(
                    name=name, timeout=duration_pb2.Duration(seconds=1)
                ),
                metadata=metadata,
            )
            if operation.done:
                return operation


async def test_control_characters_in_a_workers_logs_progress_and_result_are_stored_escaped(
    app: Application,
) -> None:
    operation = await call(app, "test.control_chars", {})
    metadata = metadata_of(operation)
    assert metadata.state == operations_pb2.OperationMetadata.SUCCEEDED
    assert output_of(operation) == {f"key {ESCAPED}": {"nested": [f"value {ESCAPED}"]}}
    assert [line.text for line in metadata.logs] == [
        f"line {ESCAPED}",
        "a clean line\twith a tab",
    ]
    assert metadata.stage == f"stage {ESCAPED}"


async def test_control_characters_in_a_workers_error_message_are_stored_escaped(
    app: Application,
) -> None:
    operation = await call(app, "test.control_chars", {"fail": True})
    assert metadata_of(operation).state == operations_pb2.OperationMetadata.FAILED
    assert operation.error.code == code_pb2.FAILED_PRECONDITION
    assert operation.error.message == f"failed on {ESCAPED}"
    assert metadata_of(operation).status_message == f"Failed: failed on {ESCAPED}"


def own_broker(broker_settings: Mapping[str, object]) -> dict[str, object]:
    """The session's broker, under a prefix of this server's own on RabbitMQ (so that no other
    server consumes its events)."""
    settings = dict(broker_settings)
    if "broker_prefix" in settings:
        settings["broker_prefix"] = f"fmcp-test-{uuid.uuid4().hex[:8]}"
    return settings


class FailingApply:
    """Makes every batch of events that holds a progress event at stage POISON fail (as a
    write the database refuses would), and counts those tries."""

    def __init__(self, app: Application) -> None:
        self.tries: Counter[str] = Counter()
        self._apply_batch = app.operations._apply_batch

    async def __call__(self, by_operation: dict[str, list[queue_pb2.OperationEvent]]) -> None:
        if any(_is_poison(events) for events in by_operation.values()):
            self.tries[POISON] += 1
            raise RuntimeError("injected: this event cannot be written")
        await self._apply_batch(by_operation)


def _is_poison(events: Sequence[queue_pb2.OperationEvent]) -> bool:
    return any(event.progress.stage == POISON for event in events)


async def test_an_event_that_keeps_failing_is_given_up_after_a_few_tries_failing_its_operation(
    start_app: StartApp,
    broker_settings: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = await start_app(**own_broker(broker_settings))
    await asyncio.wait_for(app.broker_ready.wait(), DEADLINE)
    failing = FailingApply(app)
    monkeypatch.setattr(app.operations, "_apply_batch", failing)

    operation = await call(app, "test.stage", {"stage": POISON})

    assert metadata_of(operation).state == operations_pb2.OperationMetadata.FAILED
    assert operation.error.code == code_pb2.INTERNAL
    assert "could not apply a progress event from the worker" in operation.error.message
    assert f"after {EVENT_MAX_ATTEMPTS} tries" in operation.error.message
    assert "RuntimeError: injected: this event cannot be written" in operation.error.message
    # Tried alone that many times, after its batch failed once (if it was not alone in it).
    assert EVENT_MAX_ATTEMPTS <= failing.tries[POISON] <= EVENT_MAX_ATTEMPTS + 1
    assert app.api_consumers.event_writer.dead_lettered == 1


async def test_the_consumer_moves_on_after_giving_up_and_never_tries_that_event_again(
    start_app: StartApp,
    broker_settings: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = await start_app(**own_broker(broker_settings))
    await asyncio.wait_for(app.broker_ready.wait(), DEADLINE)
    failing = FailingApply(app)
    monkeypatch.setattr(app.operations, "_apply_batch", failing)
    await call(app, "test.stage", {"stage": POISON})
    tries = failing.tries[POISON]

    later = await call(app, "test.stage", {"stage": "fine"})  # events are consumed in order

    assert metadata_of(later).state == operations_pb2.OperationMetadata.SUCCEEDED
    assert failing.tries[POISON] == tries


class FailingFinish:
    """`finish` fails (not as an outage) for the first operation it is asked to end."""

    def __init__(self, app: Application) -> None:
        self.calls: Counter[str] = Counter()
        self._finish = app.operations.finish

    async def __call__(
        self,
        operation_id: str,
        *,
        result: queue_pb2.OperationEvent.Succeeded | None = None,
        error: status_pb2.Status | None = None,
    ) -> OperationRecord | None:
        self.calls[operation_id] += 1
        if operation_id == next(iter(self.calls)):
            raise RuntimeError("injected: this operation cannot be finished")
        return await self._finish(operation_id, result=result, error=error)


async def test_a_dead_letter_that_cannot_be_applied_is_dropped_not_handed_back(
    start_app: StartApp,
    broker_settings: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = await start_app(run_worker=False, max_attempts=1, **own_broker(broker_settings))
    await asyncio.wait_for(app.broker_ready.wait(), DEADLINE)
    failing = FailingFinish(app)
    monkeypatch.setattr(app.operations, "finish", failing)

    async def give_back(delivery: Delivery) -> None:  # a worker that dies: dead-lettered
        await delivery.requeue()

    consumer = await app.broker.consume_work(give_back, prefetch=1)
    try:
        async with grpc.aio.insecure_channel(app.grpc.address) as channel:
            metadata = bearer((await login(channel, Ed25519PrivateKey.generate())).access_token)
            tools = tools_pb2_grpc.ToolsServiceStub(channel)
            first, second = [
                await tools.CallTool(
                    tools_pb2.CallToolRequest(name="tools/test.sleep"), metadata=metadata
                )
                for _ in range(2)
            ]
            second_done = await wait_done(channel, metadata, second.name)
            first_now = await operations_pb2_grpc.OperationsServiceStub(channel).GetOperation(
                operations_pb2.GetOperationRequest(name=first.name), metadata=metadata
            )
    finally:
        await consumer.stop()
    assert second_done.error.code == code_pb2.ABORTED
    assert not first_now.done  # nobody could end it: its dead letter was dropped, once
    assert sorted(failing.calls.values()) == [1, 1]
