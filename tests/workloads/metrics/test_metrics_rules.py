"""The recommendation rules on synthetic series: each finds what it is for, and a right-sized
instance gets no finding at all."""

from __future__ import annotations

import signal
from collections.abc import Sequence

import pytest

from formation_mcp.workloads.instances import Resources
from formation_mcp.workloads.metrics.rules import (
    MEMORY_SIZES,
    Failure,
    Observation,
    crash_loop,
    idle,
    insufficient_data,
    oversized,
    recommend,
    size_at_least,
    undersized,
)
from formation_mcp.workloads.metrics.samples import Sample

MIB = 1024 * 1024
START = 1_800_000_000 * 1_000_000


def observe(
    samples: Sequence[Sample],
    vcpus: int = 1,
    memory_mb: int = 1024,
    disk_gb: int = 10,
    failures: Sequence[Failure] = (),
) -> Observation:
    return Observation(
        instance_id="i",
        name="app",
        state="running",
        limits=Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb),
        samples=samples,
        window_seconds=3600,
        failures=failures,
    )


def steady(
    cpu: float, memory_mb: float, count: int = 60, every_s: int = 10, disk_mb: float = 1
) -> list[Sample]:
    return [
        Sample(
            "i",
            "n",
            START + i * every_s * 1_000_000,
            "running",
            cpu_percent=cpu,
            rss_bytes=int(memory_mb * MIB),
            disk_bytes=int(disk_mb * MIB),
        )
        for i in range(count)
    ]


def kinds(found: Sequence[dict[str, object]]) -> list[tuple[object, object]]:
    return [(f["kind"], f["recommended"]) for f in found]


@pytest.mark.parametrize(
    ("value", "size"), [(1, 64), (64, 64), (65, 128), (300, 512), (10**9, 256_000)]
)
def test_sizes_are_powers_of_two_within_what_vm_create_accepts(value: float, size: int) -> None:
    assert size_at_least(value, MEMORY_SIZES) == size


def test_too_few_samples_is_insufficient_data_and_nothing_else() -> None:
    observation = observe(steady(cpu=0, memory_mb=10, count=5))
    assert kinds(recommend(observation)) == [("insufficient_data", {"samples": 10})]
    assert insufficient_data(observe(steady(cpu=0, memory_mb=10))) is None


def test_memory_far_below_the_limit_is_oversized_with_headroom() -> None:
    found = oversized(observe(steady(cpu=50, memory_mb=100), memory_mb=4096))
    assert kinds(found) == [("oversized", {"memory_mb": 256})]  # 100 * 1.5 -> 256


def test_cpu_far_below_many_vcpus_is_oversized() -> None:
    found = oversized(observe(steady(cpu=5, memory_mb=400), vcpus=8, memory_mb=512))
    assert kinds(found) == [("oversized", {"vcpus": 1})]  # 0.4 CPUs * 1.5 -> 1


def test_memory_near_the_limit_is_undersized() -> None:
    found = undersized(observe(steady(cpu=50, memory_mb=230), memory_mb=256))
    assert kinds(found) == [("undersized", {"memory_mb": 512})]


def test_cpu_at_the_vcpu_cap_is_undersized() -> None:
    found = undersized(observe(steady(cpu=97, memory_mb=100), vcpus=2, memory_mb=256))
    assert kinds(found) == [("undersized", {"vcpus": 4})]


def test_a_kill_by_the_file_size_limit_is_undersized_disk() -> None:
    samples = [
        *steady(cpu=50, memory_mb=100, disk_mb=900),
    ]
    samples.append(
        Sample("i", "n", START + 10**9, "failed", exit_code=-signal.SIGXFSZ, end_time=START + 10**9)
    )
    found = undersized(observe(samples, memory_mb=200, disk_gb=1))
    assert kinds(found) == [("undersized", {"disk_gb": 2})]
    assert found[0]["severity"] == "critical"


def test_no_cpu_over_the_window_is_idle() -> None:
    found = idle(observe(steady(cpu=0.1, memory_mb=50)))
    assert found is not None and found["recommended"] == {"action": "stop"}
    assert idle(observe(steady(cpu=5, memory_mb=50))) is None


def failures_at(seconds: Sequence[float], signal_name: str | None = None) -> list[Failure]:
    return [
        Failure(
            time_us=START + int(second * 1_000_000),
            exit_code=None if signal_name else 3,
            signal=signal_name,
            last_lines=("starting", "error: cannot read /etc/app.conf"),
        )
        for second in seconds
    ]


def crashing(seconds: Sequence[float], signal_name: str | None = None) -> Observation:
    return observe(
        steady(cpu=20, memory_mb=50, count=1), failures=failures_at(seconds, signal_name)
    )


def test_three_failures_within_ten_minutes_is_a_crash_loop() -> None:
    found = crash_loop(crashing([10, 200, 500]))
    assert found is not None and found["severity"] == "critical"
    assert found["current"] == {"failures_in_10m": 3, "last_exit_code": 3}
    assert found["evidence"]["last_lines"][-1] == "error: cannot read /etc/app.conf"
    assert found["evidence"]["exit_codes"] == [3, 3, 3]


def test_failures_within_one_sampling_interval_each_count() -> None:
    found = crash_loop(crashing([10.0, 10.2, 10.4]))
    assert found is not None and found["current"]["failures_in_10m"] == 3


def test_failures_spread_over_more_than_ten_minutes_are_no_crash_loop() -> None:
    assert crash_loop(crashing([10, 400, 800, 1300])) is None


def test_a_crash_loop_of_runs_killed_by_a_signal_names_it() -> None:
    found = crash_loop(crashing([1, 2, 3], signal_name="SIGSEGV"))
    assert found is not None and found["evidence"]["last_signal"] == "SIGSEGV"
    assert "signal SIGSEGV" in found["reason"]


def test_a_crash_loop_is_reported_even_with_too_few_running_samples() -> None:
    assert [f["kind"] for f in recommend(crashing([1, 2, 3]))] == ["crash_loop"]


def test_a_right_sized_instance_gets_no_finding() -> None:
    assert recommend(observe(steady(cpu=40, memory_mb=400), vcpus=2, memory_mb=1024)) == []


def test_a_run_that_failed_out_of_memory_is_undersized_memory() -> None:
    samples = steady(cpu=30, memory_mb=100)
    samples.append(
        Sample(
            "i",
            "n",
            START + 10**9,
            "failed",
            exit_code=1,
            end_time=START + 10**9,
            failures=1,
            note="Traceback (most recent call last):\nMemoryError",
        )
    )
    found = undersized(observe(samples, memory_mb=256))
    assert kinds(found) == [("undersized", {"memory_mb": 512})]
    assert found[0]["severity"] == "critical"
    assert found[0]["evidence"]["last_lines"][-1] == "MemoryError"
