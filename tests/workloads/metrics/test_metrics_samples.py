"""The samples table: idempotent batched writes, windows, 1-minute folding after an hour,
retention, and the newest sample a restarted node carries its counters on from."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from formation_mcp.workloads.metrics.samples import (
    MINUTE,
    MINUTE_US,
    RAW,
    Sample,
    SampleStore,
    fold_minutes,
)

HOUR_US = 3600 * 1_000_000
BASE = 1_800_000_000 * 1_000_000  # a whole minute


def series(instance: str, node: str, start: int, count: int, every_s: float) -> list[Sample]:
    """Running samples: CPU i %, memory i MiB, cumulative CPU i seconds."""
    return [
        Sample(
            instance_id=instance,
            node=node,
            time_us=start + int(i * every_s * 1e6),
            state="running",
            cpu_seconds=float(i),
            cpu_percent=float(i),
            rss_bytes=i * 1024 * 1024,
            processes=1,
            threads=1,
            restarts=i,
        )
        for i in range(count)
    ]


def ids() -> tuple[str, str]:
    return uuid.uuid4().hex, f"node-{uuid.uuid4().hex[:8]}"


async def test_writing_a_batch_twice_stores_it_once(store: SampleStore) -> None:
    instance, node = ids()
    batch = series(instance, node, BASE, 5, 10)
    await store.add(batch)
    await store.add([replace(s, cpu_percent=99.0) for s in batch])
    assert await store.window(instance, BASE, BASE + HOUR_US) == batch


async def test_a_window_holds_only_its_times_oldest_first(store: SampleStore) -> None:
    instance, node = ids()
    await store.add(series(instance, node, BASE, 10, 10))
    found = await store.window(instance, BASE + 20_000_000, BASE + 50_000_000)
    assert [s.time_us for s in found] == [BASE + k * 10_000_000 for k in (2, 3, 4, 5)]


async def test_folding_makes_minute_points_of_raw_samples_before_the_cut(
    store: SampleStore,
) -> None:
    instance, node = ids()
    await store.add(series(instance, node, BASE, 18, 10))  # three minutes, six per minute
    folded = await store.fold(node, BASE + 2 * MINUTE_US + 5_000_000)
    assert folded == 12
    found = await store.window(instance, BASE, BASE + HOUR_US)
    minutes = [s for s in found if s.resolution == MINUTE]
    assert [s.time_us for s in minutes] == [BASE, BASE + MINUTE_US]
    assert [s.count for s in minutes] == [6, 6]
    assert minutes[0].cpu_percent == pytest.approx(2.5)  # average of 0..5
    assert minutes[0].cpu_seconds == 5.0 and minutes[0].restarts == 5  # counters: the last
    assert len([s for s in found if s.resolution == RAW]) == 6
    assert await store.fold(node, BASE + 2 * MINUTE_US) == 0  # done already


async def test_raw_samples_arriving_after_their_minute_was_folded_join_its_point(
    store: SampleStore,
) -> None:
    instance, node = ids()
    batch = series(instance, node, BASE, 6, 10)  # one minute, cpu_percent 0..5
    await store.add(batch[:3])
    assert await store.fold(node, BASE + MINUTE_US) == 3
    await store.add(batch[3:])  # a batch that waited in a node's spool
    assert await store.fold(node, BASE + MINUTE_US) == 3
    (point,) = await store.window(instance, BASE, BASE + HOUR_US)
    assert (point.resolution, point.count) == (MINUTE, 6)
    assert point.cpu_percent == pytest.approx(2.5)


async def test_expiry_deletes_what_is_older_than_the_retention(store: SampleStore) -> None:
    instance, node = ids()
    await store.add(series(instance, node, BASE, 6, 600))  # one every 10 minutes
    assert await store.expire(node, BASE + 30 * 60 * 1_000_000) == 3
    found = await store.window(instance, 0, BASE + HOUR_US)
    assert found[0].time_us == BASE + 30 * 60 * 1_000_000 and len(found) == 3


async def test_another_nodes_samples_are_not_folded_or_expired(store: SampleStore) -> None:
    instance, node = ids()
    await store.add(series(instance, node, BASE, 6, 10))
    assert await store.fold("another-node", BASE + HOUR_US) == 0
    assert await store.expire("another-node", BASE + HOUR_US) == 0
    assert len(await store.window(instance, BASE, BASE + HOUR_US)) == 6


async def test_the_newest_sample_of_each_instance_of_a_node(store: SampleStore) -> None:
    first, node = ids()
    second = uuid.uuid4().hex
    await store.add(series(first, node, BASE, 3, 10) + series(second, node, BASE, 5, 10))
    latest = await store.latest_on_node(node)
    assert latest[first].restarts == 2 and latest[second].restarts == 4


def test_folding_averages_gauges_and_keeps_the_last_counter_and_note() -> None:
    instance, node = ids()
    samples = series(instance, node, BASE, 3, 10)
    samples[1] = replace(samples[1], state="failed", note="boom", failures=1, ports=(8080,))
    (point,) = fold_minutes(samples)
    assert point.count == 3 and point.rss_bytes == 1024 * 1024
    assert point.note == "boom" and point.ports == (8080,) and point.failures == 0
