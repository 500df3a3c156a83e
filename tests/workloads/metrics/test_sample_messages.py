"""Samples through the broker: a tick's samples survive the message unchanged; ticks the broker
does not take are kept and sent in order once it does (the oldest dropped past the cap); the
API stores a redelivered tick once."""

from __future__ import annotations

import uuid

from formation.mcp.internal.v1 import queue_pb2
from tests.support.published_events import published_events

from formation_mcp.broker.memory import MemoryBroker
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


async def test_ticks_the_broker_did_not_take_are_sent_in_order_once_it_does() -> None:
    broker = MemoryBroker(3)  # not started: it takes nothing
    publisher = SamplePublisher(broker, "node-a")
    await publisher([sample("i", 1)])
    await publisher([sample("i", 2)])
    assert publisher.published == 0
    await broker.start()
    await publisher([sample("i", 3)])
    got = await published(broker, 3)
    assert [[s.time_us for s in tick.samples] for tick in got] == [
        [BASE + 1_000_000],
        [BASE + 2_000_000],
        [BASE + 3_000_000],
    ]
    assert publisher.published == 3 and publisher.dropped == 0
    await broker.close()


async def test_past_the_cap_the_oldest_ticks_are_dropped_and_counted() -> None:
    broker = MemoryBroker(3)
    publisher = SamplePublisher(broker, "node-a", max_pending=2)
    for second in range(4):
        await publisher([sample("i", second)])
    await broker.start()
    await publisher([])
    got = await published(broker, 2)
    assert [tick.samples[0].time_us for tick in got] == [BASE + 2_000_000, BASE + 3_000_000]
    assert publisher.dropped == 2
    await broker.close()


async def test_a_redelivered_tick_is_stored_once(store: SampleStore) -> None:
    instance = f"i-{uuid.uuid4().hex[:8]}"
    tick = to_message("node-a", [sample(instance, 1, cpu_percent=10.0)])
    ingest = SampleIngest(store)
    await ingest(tick)
    await ingest(tick)
    stored = await store.window(instance, BASE, BASE + 10_000_000)
    assert [s.cpu_percent for s in stored] == [10.0]
