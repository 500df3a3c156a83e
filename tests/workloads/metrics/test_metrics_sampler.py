"""The sampler on its own: one tick measures each running instance's process group, counts
restarts and failures (with the failed run's last lines), and carries its counters on after a
restart of the sampler (from the stored samples and those still spooled); maintenance folds
samples older than an hour and expires old ones."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from formation_mcp.clock import now_us
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.workloads.instances import (
    InstanceRecord,
    InstanceState,
    InstanceStore,
    Resources,
)
from formation_mcp.workloads.metrics.sample_messages import SamplePublisher
from formation_mcp.workloads.metrics.sampler import Sampler
from formation_mcp.workloads.metrics.samples import MINUTE, RAW, Sample, SampleStore

HOUR_US = 3_600_000_000


class Groups:
    def __init__(self, node_id: str, root: Path) -> None:
        self.node_id = node_id
        self.root = root
        self.groups: dict[str, int] = {}

    def running_groups(self) -> Mapping[str, int]:
        return self.groups

    def directory(self, instance_id: str) -> Path:
        return self.root / instance_id


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrate.upgrade(database)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def sampler_for(database: Database, groups: Groups, clock: int | None = None) -> Sampler:
    return Sampler(
        groups,
        InstanceStore(database),
        SampleStore(database),
        interval_seconds=1.0,
        retention_seconds=24 * 3600.0,
        clock=now_us if clock is None else (lambda: clock),
    )


def record(node: str) -> InstanceRecord:
    now = now_us()
    return InstanceRecord(
        instance_id=uuid.uuid4().hex,
        owner="accounts/sampler-test",
        name=f"s-{uuid.uuid4().hex[:8]}",
        build_id="0" * 64,
        node=node,
        state=InstanceState.RUNNING,
        resources=Resources(vcpus=1, memory_mb=128, disk_gb=1),
        create_time=now,
        update_time=now,
        start_time=now,
    )


async def test_ticks_count_restarts_and_failures_and_carry_them_on(
    database: Database, sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    groups = Groups(f"node-{uuid.uuid4().hex[:8]}", tmp_path)
    store = InstanceStore(database)
    instance = record(groups.node_id)
    await store.insert(instance)
    (tmp_path / instance.instance_id).mkdir()
    (tmp_path / instance.instance_id / "output.log").write_text("starting\nerror: no config\n")
    groups.groups[instance.instance_id] = sleeper.pid
    sampler = sampler_for(database, groups)

    (first,) = await sampler.tick()
    assert (first.processes, first.restarts, first.failures) == (1, 0, 0)
    assert first.cpu_percent is None and first.disk_bytes is not None
    (second,) = await sampler.tick()
    assert second.cpu_percent is not None

    instance = await store.save(instance, start_time=now_us())  # started again
    (third,) = await sampler.tick()
    assert third.restarts == 1

    del groups.groups[instance.instance_id]
    await store.save(instance, state=InstanceState.FAILED, exit_code=3, end_time=now_us())
    (ended,) = await sampler.tick()
    assert (ended.state, ended.exit_code, ended.failures) == ("failed", 3, 1)
    assert ended.note == "starting\nerror: no config"
    assert await sampler.tick() == []  # recorded once

    again = sampler_for(database, groups)  # a restarted worker
    assert await again.tick() == []
    assert sampler.observed[instance.instance_id].sample.failures == 1


async def test_maintenance_folds_the_hour_before_and_expires_past_the_retention(
    database: Database, tmp_path: Path
) -> None:
    groups = Groups(f"node-{uuid.uuid4().hex[:8]}", tmp_path)
    now = 1_800_000_000 * 1_000_000
    instance_id = uuid.uuid4().hex
    old = Sample(instance_id, groups.node_id, now - 25 * HOUR_US, "running")
    raw = [replace(old, time_us=now - 2 * HOUR_US + i * 10_000_000) for i in range(12)]
    recent = replace(old, time_us=now - 60_000_000)
    samples = SampleStore(database)
    await samples.add([old, *raw, recent])

    await sampler_for(database, groups, clock=now).maintain()

    kept = await samples.window(instance_id, 0, now)
    assert [(s.resolution, s.count) for s in kept] == [(MINUTE, 6), (MINUTE, 6), (RAW, 1)]


async def test_a_restarted_sampler_carries_on_from_what_it_spooled_before(
    database: Database, tmp_path: Path
) -> None:
    groups = Groups(f"node-{uuid.uuid4().hex[:8]}", tmp_path / "instances")
    instance = record(groups.node_id)
    await InstanceStore(database).insert(
        replace(instance, state=InstanceState.FAILED, end_time=now_us(), exit_code=3)
    )
    (groups.root / instance.instance_id).mkdir(parents=True)

    def spooling() -> Sampler:  # a node whose broker is down: its ticks wait in the spool
        publisher = SamplePublisher(NodeEvents(tmp_path / "spool", groups.node_id))
        return Sampler(
            groups,
            InstanceStore(database),
            SampleStore(database),
            sink=publisher,
            pending=publisher.spooled,
            interval_seconds=1.0,
            retention_seconds=3600.0,
        )

    (ended,) = await spooling().tick()
    assert (ended.failures, ended.exit_code) == (1, 3)
    again = spooling()  # the worker restarted, the broker still down
    assert await again.tick() == []  # that failure was recorded already: not counted again
    assert again.observed[instance.instance_id].sample == ended
