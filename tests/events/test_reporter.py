"""A node's events: spooled before the broker takes them, published in order once it does
(also what an earlier run of the node left behind), each file gone once confirmed."""

from __future__ import annotations

from pathlib import Path

from formation.mcp.internal.v1 import queue_pb2
from tests.support.published_events import published_events

from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.events.model import Severity
from formation_mcp.events.reporter import NodeEvents


async def received(broker: MemoryBroker, count: int) -> list[queue_pb2.ResourceEvent]:
    return [event.resource_event for event in await published_events(broker, count)]


async def test_events_reported_before_the_broker_is_there_are_published_in_order(
    tmp_path: Path,
) -> None:
    reporter = NodeEvents(tmp_path, "node-a")
    for n in range(3):
        reporter.report("instance.running", f"instances/i{n}", "accounts/a", Severity.INFO, "up")
    assert len(reporter.pending()) == 3
    broker = MemoryBroker(3)
    await broker.start()
    await reporter.start(broker)
    got = await received(broker, 3)
    assert [event.event.resource for event in got] == [
        "instances/i0",
        "instances/i1",
        "instances/i2",
    ]
    assert all(event.key.startswith("node-a:") and event.event.node == "node-a" for event in got)
    await reporter.stop(5)
    assert reporter.pending() == []
    await broker.close()


async def test_what_a_stopped_node_left_spooled_is_published_by_its_next_start(
    tmp_path: Path,
) -> None:
    first = NodeEvents(tmp_path, "node-b")
    first.report("instance.lost", "instances/x", "accounts/a", Severity.WARNING, "gone", code=1)
    await first.stop(0)  # never started: nothing was published
    broker = MemoryBroker(3)
    await broker.start()
    second = NodeEvents(tmp_path, "node-b")
    await second.start(broker)
    got = await received(broker, 1)
    assert got[0].event.type == "instance.lost" and dict(got[0].event.data)["code"] == 1
    await second.stop(5)
    await broker.close()
