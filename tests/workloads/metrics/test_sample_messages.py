"""Samples through the broker: a tick's samples survive the message unchanged; ticks the broker
does not take wait in the node's spool, also across a restart, and are sent in order once it
does; the API stores a redelivered tick once."""

from __future__ import annotations

import uuid
from pathlib import Path

from formation.mcp.internal.v1 import queue_pb2
from tests.support.published_events import published_events

from formation_mcp.broker.memory import MemoryBroker
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.workloads.metrics.sample_messages import (
    SampleIngest,
    SamplePublisher,
    from_message,
    to_message,
)
from formation_mcp.workloads.metrics.samples import Sample, SampleStore

BASE = 1_800_000_000 * 1_000_000


def sample(instance: str, second: int, **fields: object) -> Sample:
    return Sample(instance, "node-a", BASE + second * 1_000_000, "running", **fields)  # type: ignore[arg-type]


async def published(broker: MemoryBroker, count: int) -> list[queue_pb2.InstanceSamples]:
    return [event.instance_samples for event in await published_events(broker, count)]


def test_every_field_survives_the_message() -> None:
    full = sample(
        "i1",
        1,
        run_start=BASE,
        cpu_seconds=1.5,
        cpu_percent=42.5,
        rss_bytes=2**30,
        disk_bytes=4096,
        processes=3,
        threads=7,
        open_fds=12,
        ports=(8080, 9090),
        restarts=2,
        failures=1,
        exit_code=-9,
        end_time=BASE - 5,
        note="last\nlines",
    )
    bare = sample("i2", 1)  # what is unknown stays unknown (None), not 0
    assert from_message(to_message("node-a", [full, bare])) == [full, bare]


async def test_ticks_spooled_without_a_broker_are_sent_in_order_after_a_restart(
    tmp_path: Path,
) -> None:
    before = SamplePublisher(NodeEvents(tmp_path, "node-a"))  # no broker: spooled only
    await before([sample("i", 1)])
    await before([sample("i", 2)])
    assert [s.time_us for s in before.spooled()] == [BASE + 1_000_000, BASE + 2_000_000]
    events = NodeEvents(tmp_path, "node-a")  # the worker restarted
    after = SamplePublisher(events)
    await after([sample("i", 3)])
    broker = MemoryBroker(3)
    await broker.start()
    await events.start(broker)
    got = await published(broker, 3)
    assert [[s.time_us for s in tick.samples] for tick in got] == [
        [BASE + 1_000_000],
        [BASE + 2_000_000],
        [BASE + 3_000_000],
    ]
    await events.stop(5)
    assert after.spooled() == [] and events.pending() == []
    await broker.close()


async def test_a_redelivered_tick_is_stored_once(store: SampleStore) -> None:
    instance = f"i-{uuid.uuid4().hex[:8]}"
    tick = to_message("node-a", [sample(instance, 1, cpu_percent=10.0)])
    ingest = SampleIngest(store)
    await ingest(tick)
    await ingest(tick)
    stored = await store.window(instance, BASE, BASE + 10_000_000)
    assert [s.cpu_percent for s in stored] == [10.0]
