"""vm.metrics and vm.recommend over real instances sampled every METRICS_INTERVAL: what they
show matches what the workloads report doing on their own output."""

from __future__ import annotations

import re

import grpc
from tests.support.auth import Md
from tests.support.metrics import build_workload, create, wait_for_samples
from tests.support.workloads import status

TOLERANCE = 0.15


def reported(logs: list[str]) -> tuple[float, float]:
    """(resident MB, CPUs busy on average) from the workload's last report line."""
    lines = [line for line in logs if line.startswith("rss_kb ")]
    match = re.match(r"rss_kb (\d+) cpu ([\d.]+) wall ([\d.]+)", lines[-1])
    assert match is not None
    rss_kb, cpu, wall = (float(g) for g in match.groups())
    return rss_kb / 1024, cpu / wall


def within(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= TOLERANCE * expected


async def test_a_busy_instance_shows_the_memory_and_cpu_it_reports(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "busy-1", vcpus=2, memory_mb=512)
    answer = await wait_for_samples(metrics_channel, user, "busy-1", 24)
    logs = (await status(metrics_channel, user, "busy-1"))["logs"]
    memory_mb, cpus = reported(logs)

    assert answer["limits"] == {"vcpus": 2, "memory_mb": 512, "disk_gb": 10}
    assert within(answer["summary"]["memory_mb"]["last"], memory_mb)
    assert within(answer["summary"]["cpu_percent"]["avg"] * 2 / 100, cpus)
    assert answer["summary"]["processes"]["last"] >= 1
    assert len(answer["times"]) <= 60
    assert all(len(values) == len(answer["times"]) for values in answer["series"].values())


async def test_an_idle_instance_shows_cpu_near_zero(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "idle-1", vcpus=2, memory_mb=2048)
    answer = await wait_for_samples(metrics_channel, user, "idle-1", 12)
    assert answer["summary"]["cpu_percent"]["avg"] < 2.0
    assert answer["summary"]["memory_mb"]["last"] < 100
