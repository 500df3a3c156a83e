"""From stored samples to what `vm.metrics` answers: series of at most MAX_POINTS points, a
summary per series (avg, p95, max, last) over every sample of the window, and how the runs
in the window ended. Pure functions of the samples (tested on synthetic ones)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from formation_mcp.workloads.instances import Resources
from formation_mcp.workloads.metrics.samples import Sample

MAX_POINTS: Final = 60
MAX_EXITS: Final = 10
MIB: Final = 1024**2
NICE_STEPS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600)
RUNNING: Final = "running"

SeriesValue = Callable[[Sample, Resources], float | None]
SERIES: Final[dict[str, SeriesValue]] = {
    "cpu_percent": lambda s, _r: s.cpu_percent,
    "memory_mb": lambda s, _r: s.rss_bytes / MIB,
    "memory_percent": lambda s, r: 100 * s.rss_bytes / MIB / r.memory_mb,
    "disk_mb": lambda s, _r: None if s.disk_bytes is None else s.disk_bytes / MIB,
    "processes": lambda s, _r: float(s.processes),
    "threads": lambda s, _r: float(s.threads),
    "open_fds": lambda s, _r: None if s.open_fds is None else float(s.open_fds),
}
"""Each series and how a (running) sample gives its value."""


@dataclass(frozen=True, slots=True)
class Summary:
    avg: float
    p95: float
    max: float
    last: float

    def to_json(self) -> dict[str, float]:
        return {
            k: round(v, 2)
            for k, v in (
                ("avg", self.avg),
                ("p95", self.p95),
                ("max", self.max),
                ("last", self.last),
            )
        }


def default_step(window_seconds: float) -> int:
    """The smallest round step that gives at most MAX_POINTS points."""
    wanted = window_seconds / MAX_POINTS
    for step in NICE_STEPS:
        if step >= wanted:
            return step
    return math.ceil(wanted)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95: the value 95 % of the values are at or below)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float]) -> Summary | None:
    if not values:
        return None
    return Summary(
        avg=sum(values) / len(values),
        p95=percentile(values, 0.95),
        max=max(values),
        last=values[-1],
    )


def values_of(name: str, samples: Sequence[Sample], limits: Resources) -> list[float]:
    """The series' values over the running samples (each minute point counts as one value)."""
    value = SERIES[name]
    found = []
    for sample in samples:
        if sample.state == RUNNING:
            v = value(sample, limits)
            if v is not None:
                found.append(v)
    return found


def exits(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """How runs in the window ended, newest last (at most MAX_EXITS)."""
    ended = [s for s in samples if s.state != RUNNING and s.end_time is not None]
    return [
        {
            "time": rfc3339(s.end_time or s.time_us),
            "state": s.state,
            "exit_code": s.exit_code,
            **({"last_lines": s.note.splitlines()} if s.note else {}),
        }
        for s in ended[-MAX_EXITS:]
    ]


def build_metrics(
    samples: Sequence[Sample],
    limits: Resources,
    *,
    since_us: int,
    until_us: int,
    step_seconds: int,
) -> dict[str, Any]:
    """The `series`, `times`, `summary`, `samples` and `exits` parts of vm.metrics' answer."""
    step_us = step_seconds * 1_000_000
    points = max(1, math.ceil((until_us - since_us) / step_us))
    start = until_us - points * step_us
    buckets: list[list[Sample]] = [[] for _ in range(points)]
    for sample in samples:
        if sample.state == RUNNING and start <= sample.time_us <= until_us:
            index = min(points - 1, (sample.time_us - start) // step_us)
            buckets[index].append(sample)
    series: dict[str, list[float | None]] = {}
    summary: dict[str, dict[str, float]] = {}
    for name in SERIES:
        summary_of = summarize(values_of(name, samples, limits))
        if summary_of is None:
            continue
        summary[name] = summary_of.to_json()
        series[name] = [_bucket_value(name, bucket, limits) for bucket in buckets]
    return {
        "samples": sum(s.count for s in samples if s.state == RUNNING),
        "times": [rfc3339(start + i * step_us) for i in range(points)],
        "series": series,
        "summary": summary,
        "exits": exits(samples),
    }


def _bucket_value(name: str, bucket: Sequence[Sample], limits: Resources) -> float | None:
    value = SERIES[name]
    weighted = [(v, s.count) for s in bucket if (v := value(s, limits)) is not None]
    total = sum(count for _v, count in weighted)
    if not total:
        return None
    return round(sum(v * count for v, count in weighted) / total, 2)


def rfc3339(us: int) -> str:
    return (
        datetime.fromtimestamp(us / 1e6, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )
