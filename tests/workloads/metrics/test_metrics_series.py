"""What vm.metrics builds from samples: at most 60 points, summaries over every sample."""

from __future__ import annotations

import pytest

from formation_mcp.workloads.instances import Resources
from formation_mcp.workloads.metrics.samples import MINUTE, Sample
from formation_mcp.workloads.metrics.series import (
    MAX_POINTS,
    build_metrics,
    default_step,
    percentile,
    rfc3339,
    summarize,
)

LIMITS = Resources(vcpus=2, memory_mb=1024, disk_gb=10)
MIB = 1024 * 1024
END = 1_800_000_000 * 1_000_000


def running(time_us: int, cpu: float, memory_mb: float, **extra: object) -> Sample:
    return Sample(
        "i",
        "n",
        time_us,
        "running",
        cpu_percent=cpu,
        rss_bytes=int(memory_mb * MIB),
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("window", "step"), [(900, 15), (3600, 60), (86400, 1800), (60, 1), (10**6, 21600)]
)
def test_the_default_step_gives_at_most_60_points(window: int, step: int) -> None:
    assert default_step(window) == step
    assert window / step <= MAX_POINTS


def test_p95_is_the_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([7.0], 0.95) == 7.0


def test_a_summary_has_avg_p95_max_and_last() -> None:
    summary = summarize([1.0, 3.0, 2.0])
    assert summary is not None
    assert (summary.avg, summary.max, summary.last) == (2.0, 3.0, 2.0)
    assert summarize([]) is None


def test_a_day_of_samples_becomes_60_points_and_a_summary_of_all() -> None:
    samples = [
        running(
            END - 86_400_000_000 + i * 60_000_000,
            cpu=i % 10,
            memory_mb=100,
            count=6,
            resolution=MINUTE,
        )
        for i in range(1440)
    ]
    built = build_metrics(
        samples, LIMITS, since_us=END - 86_400_000_000, until_us=END, step_seconds=1440
    )
    assert len(built["times"]) == 60
    assert all(len(values) == 60 for values in built["series"].values())
    assert built["samples"] == 1440 * 6
    assert built["summary"]["cpu_percent"]["max"] == 9
    assert built["summary"]["memory_percent"]["last"] == pytest.approx(9.77, abs=0.01)


def test_ended_runs_are_listed_and_left_out_of_the_series() -> None:
    ended = Sample(
        "i",
        "n",
        END - 1_000_000,
        "failed",
        exit_code=3,
        end_time=END - 2_000_000,
        note="error: boom",
        failures=1,
    )
    built = build_metrics(
        [running(END - 5_000_000, 50, 10), ended],
        LIMITS,
        since_us=END - 60_000_000,
        until_us=END,
        step_seconds=1,
    )
    assert built["samples"] == 1
    assert built["summary"]["cpu_percent"]["last"] == 50
    assert built["exits"] == [
        {
            "time": rfc3339(END - 2_000_000),
            "state": "failed",
            "exit_code": 3,
            "last_lines": ["error: boom"],
        }
    ]
