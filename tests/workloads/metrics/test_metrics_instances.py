"""vm.metrics and vm.recommend over real instances sampled every METRICS_INTERVAL: what they
show matches what the workloads report doing on their own output."""

from __future__ import annotations

import json
import re
from typing import Any

import grpc
from google.rpc import code_pb2
from tests.support.auth import Md
from tests.support.metrics import build_workload, create, metrics, wait_for_samples
from tests.support.waiting import eventually
from tests.support.workloads import call, status, succeed

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


async def findings(channel: grpc.aio.Channel, md: Md, reference: str) -> list[tuple[str, str]]:
    answer = await succeed(channel, md, "vm.recommend", id=reference)
    return [(f["kind"], json.dumps(f["recommended"], sort_keys=True)) for f in answer["findings"]]


async def test_recommend_finds_nothing_for_a_right_sized_instance(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "steady-1", vcpus=1, memory_mb=128)
    await wait_for_samples(metrics_channel, user, "steady-1", 12)
    assert await findings(metrics_channel, user, "steady-1") == []


async def test_recommend_finds_an_idle_oversized_instance(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "idle-2", vcpus=4, memory_mb=4096)
    await wait_for_samples(metrics_channel, user, "idle-2", 12)
    found = await findings(metrics_channel, user, "idle-2")
    assert ("idle", '{"action": "stop"}') in found
    assert ("oversized", '{"vcpus": 1}') in found
    assert ("oversized", '{"memory_mb": 64}') in found


async def test_recommend_finds_an_instance_at_its_memory_limit_undersized(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "hog-1", vcpus=1, memory_mb=256)

    async def allocated() -> bool:
        logs = (await status(metrics_channel, user, "hog-1"))["logs"]
        return any(line.startswith("allocated") for line in logs)

    await eventually(allocated, deadline=30)
    started = (await metrics(metrics_channel, user, "hog-1"))["samples"]
    await wait_for_samples(metrics_channel, user, "hog-1", started + 12)
    assert ("undersized", '{"memory_mb": 512}') in await findings(metrics_channel, user, "hog-1")


async def test_recommend_finds_a_crash_loop_with_its_last_error_lines(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "crash-1", memory_mb=128)
    for failures in (1, 2, 3):

        async def recorded(count: int = failures) -> bool:
            answer = await metrics(metrics_channel, user, "crash-1")
            return int(answer.get("latest", {}).get("failures", 0)) >= count

        await eventually(recorded, deadline=30)
        if failures < 3:
            await succeed(metrics_channel, user, "vm.control", id="crash-1", operation="start")
    found: list[dict[str, Any]] = []

    async def looping() -> bool:  # the failures' events arrive through the broker
        answer = await succeed(metrics_channel, user, "vm.recommend", id="crash-1")
        found[:] = [f for f in answer["findings"] if f["kind"] == "crash_loop"]
        return bool(found) and found[0]["current"]["failures_in_10m"] == 3

    await eventually(looping, deadline=30)
    (loop,) = found
    assert loop["current"] == {"failures_in_10m": 3, "last_exit_code": 3}
    assert "error: cannot read /etc/app.conf: no such file" in loop["evidence"]["last_lines"]
    exits = (await metrics(metrics_channel, user, "crash-1"))["exits"]
    assert [e["exit_code"] for e in exits] == [3, 3, 3]


async def test_another_users_instance_is_not_found(
    metrics_channel: grpc.aio.Channel, user: Md, other_user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "idle-3", memory_mb=128)
    for tool in ("vm.metrics", "vm.recommend"):
        operation = await call(metrics_channel, other_user, tool, id="idle-3")
        assert operation.error.code == code_pb2.NOT_FOUND


async def test_a_stop_on_request_is_recorded_but_is_no_failure(
    metrics_channel: grpc.aio.Channel, user: Md
) -> None:
    build_id = await build_workload(metrics_channel, user)
    await create(metrics_channel, user, build_id, "idle-4", memory_mb=128)
    await wait_for_samples(metrics_channel, user, "idle-4", 2)
    await succeed(metrics_channel, user, "vm.control", id="idle-4", operation="stop")
    answer: dict[str, Any] = {}

    async def recorded() -> bool:
        answer.update(await metrics(metrics_channel, user, "idle-4"))
        return bool(answer["exits"])

    await eventually(recorded)
    assert [(e["state"], e["exit_code"]) for e in answer["exits"]] == [("stopped", -15)]
    assert answer["latest"]["failures"] == 0
