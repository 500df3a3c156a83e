"""A worker sends a quick tool's `started` event with its terminal event, as one broker
message; a tool that runs longer than the hold has `started` sent on its own first."""

from __future__ import annotations

import asyncio
from typing import Any

from formation.mcp.internal.v1 import queue_pb2
from tests.support.waiting import wait_until

from formation_mcp.broker.base import Delivery, work_routing_key
from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.operations.ids import new_operation_id, operation_name
from formation_mcp.operations.lifecycle import State
from formation_mcp.operations.store import WorkState
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec
from formation_mcp.worker import runtime
from formation_mcp.worker.runtime import Worker

OWNER = "accounts/someone"


class PendingOperations:
    """Every operation a worker asks about is PENDING (what the database would say)."""

    async def work_state(self, operation_id: str) -> WorkState | None:
        return WorkState(State.PENDING, attempt=0, cancel_requested=False)


async def quick(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return {}


async def slow(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(runtime.STARTED_HOLD_SECONDS * 4)
    return {}


def _registry() -> ToolRegistry:
    registry = ToolRegistry()
    for name, executor in (("test.quick", quick), ("test.slow", slow)):
        spec = ToolSpec(
            name=name,
            title=name,
            description="A tool of this test.",
            version="1.0.0",
            category="test",
            input_schema={"type": "object"},
            output_schema={"type": "object"},
            long_running=True,
        )
        registry.register(spec, executor)
    return registry


async def _messages_of_a_run(tool: str) -> list[list[queue_pb2.OperationEvent]]:
    """The event messages the worker sent for one run of `tool`, each as its events."""
    broker = MemoryBroker(max_attempts=3)
    await broker.start()
    messages: list[list[queue_pb2.OperationEvent]] = []

    async def received(delivery: Delivery) -> None:
        event = queue_pb2.OperationEvent.FromString(delivery.body)
        messages.append([event, *event.following])
        await delivery.ack()

    await broker.consume_events(received, prefetch=10)
    worker = Worker(broker, _registry(), PendingOperations(), node_id="n1", prefetch=4)
    await worker.start()
    try:
        name = operation_name(new_operation_id())
        item = queue_pb2.WorkItem(operation=name, tool=tool, owner=OWNER)
        await broker.publish_work(work_routing_key(tool), item.SerializeToString(), name)
        await wait_until(lambda: any(m[-1].WhichOneof("kind") == "succeeded" for m in messages))
    finally:
        await worker.stop(grace=1)
        await broker.close()
    return messages


async def test_a_quick_tool_sends_started_and_its_result_in_one_message() -> None:
    messages = await _messages_of_a_run("test.quick")

    assert [[event.WhichOneof("kind") for event in m] for m in messages] == [
        ["started", "succeeded"]
    ]
    assert [event.sequence for event in messages[0]] == [1, 2]


async def test_a_tool_that_runs_longer_than_the_hold_has_started_sent_first() -> None:
    messages = await _messages_of_a_run("test.slow")

    assert [[event.WhichOneof("kind") for event in m] for m in messages] == [
        ["started"],
        ["succeeded"],
    ]
