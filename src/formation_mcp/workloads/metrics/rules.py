"""The rules `vm.recommend` applies: plain functions of an instance's samples over a window,
each returning findings `{instance, kind, severity, current, recommended, reason, evidence}`.
The README's "Resource recommendations" section states every threshold below.

- insufficient_data: fewer than MIN_SAMPLES running samples; the size rules are then skipped.
- oversized: p95 memory below OVERSIZED_FRACTION of memory_mb, or (vcpus > 1) p95 CPU below
  OVERSIZED_FRACTION of the vcpus: a smaller size (with HEADROOM, rounded up to a power of
  two, never below what vm.create accepts), only when it is smaller than the current one.
- undersized: p95 memory at UNDERSIZED_FRACTION of memory_mb or more, p95 CPU at
  THROTTLED_PERCENT of the vcpus or more (the vcpus cap it), p95 disk at UNDERSIZED_FRACTION
  of disk_gb or more, a failed run whose last lines say it ran out of memory (OUT_OF_MEMORY:
  memory_mb), or a run killed by the file size limit (SIGXFSZ: disk_gb): a larger size.
- idle: average CPU below IDLE_CPU_PERCENT of one CPU over the window (serving requests costs
  CPU, so no CPU is also no traffic): stop it.
- crash_loop: CRASH_FAILURES or more failed runs (ended by themselves with a non-zero code or
  a signal; a stop on request is none) within CRASH_SPAN_SECONDS, counted from the
  instance's `instance.failed` events (each failure once, however close together): the exit
  codes and last output lines of the newest failure.
"""

from __future__ import annotations

import math
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from formation_mcp.workloads.instances import Resources
from formation_mcp.workloads.metrics.samples import Sample
from formation_mcp.workloads.metrics.series import percentile, rfc3339, values_of

MIN_SAMPLES: Final = 10
OVERSIZED_FRACTION: Final = 0.25
UNDERSIZED_FRACTION: Final = 0.85
THROTTLED_PERCENT: Final = 90.0
HEADROOM: Final = 1.5
IDLE_CPU_PERCENT: Final = 0.5
CRASH_FAILURES: Final = 3
CRASH_SPAN_SECONDS: Final = 600
MEMORY_SIZES: Final = (64, 256_000)
VCPU_SIZES: Final = (1, 128)
DISK_SIZES: Final = (1, 65_535)
MAX_EVIDENCE_LINES: Final = 5
OUT_OF_MEMORY: Final = re.compile(
    r"MemoryError|Cannot allocate memory|[Oo]ut of memory|std::bad_alloc|"
    r"JavaScript heap out of memory|OutOfMemoryError"
)
"""In a failed run's last output lines: it ran out of memory (at memory_mb, its address space)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed run, from its `instance.failed` event."""

    time_us: int
    exit_code: int | None
    signal: str | None = None
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Observation:
    """What the rules look at: one instance, its limits, its samples and its failed runs in
    the window."""

    instance_id: str
    name: str
    state: str
    limits: Resources
    samples: Sequence[Sample]
    window_seconds: float
    failures: Sequence[Failure] = ()


Finding = dict[str, Any]


def finding(
    observation: Observation,
    kind: str,
    severity: str,
    current: dict[str, Any],
    recommended: dict[str, Any],
    reason: str,
    evidence: dict[str, Any],
) -> Finding:
    return {
        "instance": observation.instance_id,
        "name": observation.name,
        "kind": kind,
        "severity": severity,
        "current": current,
        "recommended": recommended,
        "reason": reason,
        "evidence": evidence,
    }


def size_at_least(value: float, bounds: tuple[int, int]) -> int:
    """The smallest power of two at or above `value`, within what vm.create accepts."""
    low, high = bounds
    size = low
    while size < value and size < high:
        size = min(size * 2, high)
    return size


def running_samples(observation: Observation) -> int:
    return sum(s.count for s in observation.samples if s.state == "running")


def insufficient_data(observation: Observation) -> Finding | None:
    count = running_samples(observation)
    if count >= MIN_SAMPLES:
        return None
    return finding(
        observation,
        "insufficient_data",
        "info",
        {"samples": count},
        {"samples": MIN_SAMPLES},
        f"only {count} samples of it running in the window; at least {MIN_SAMPLES} are "
        "needed to judge its size (let it run, or ask with a longer window)",
        {"window_seconds": observation.window_seconds},
    )


def _cpu_cores(observation: Observation) -> list[float]:
    vcpus = observation.limits.vcpus
    return [
        p / 100 * vcpus for p in values_of("cpu_percent", observation.samples, observation.limits)
    ]


def oversized(observation: Observation) -> list[Finding]:
    found = []
    limits = observation.limits
    memory = values_of("memory_mb", observation.samples, limits)
    if memory:
        p95, peak = percentile(memory, 0.95), max(memory)
        if p95 < OVERSIZED_FRACTION * limits.memory_mb:
            size = size_at_least(max(p95 * HEADROOM, peak * 1.2), MEMORY_SIZES)
            if size < limits.memory_mb:
                found.append(
                    finding(
                        observation,
                        "oversized",
                        "info",
                        {"memory_mb": limits.memory_mb},
                        {"memory_mb": size},
                        f"uses {p95:.0f} MB (p95) of its {limits.memory_mb} MB: ship it with "
                        f"{size} MB",
                        {"memory_mb_p95": round(p95, 1), "memory_mb_max": round(peak, 1)},
                    )
                )
    cores = _cpu_cores(observation)
    if cores and limits.vcpus > 1:
        p95 = percentile(cores, 0.95)
        if p95 < OVERSIZED_FRACTION * limits.vcpus:
            size = size_at_least(max(1.0, math.ceil(p95 * HEADROOM)), VCPU_SIZES)
            if size < limits.vcpus:
                found.append(
                    finding(
                        observation,
                        "oversized",
                        "info",
                        {"vcpus": limits.vcpus},
                        {"vcpus": size},
                        f"uses {p95:.2f} CPUs (p95) of its {limits.vcpus} vcpus: ship it with "
                        f"{size}",
                        {"cpus_p95": round(p95, 3), "cpus_max": round(max(cores), 3)},
                    )
                )
    return found


def undersized(observation: Observation) -> list[Finding]:
    found = []
    limits = observation.limits
    memory = values_of("memory_mb", observation.samples, limits)
    if memory and percentile(memory, 0.95) >= UNDERSIZED_FRACTION * limits.memory_mb:
        p95, peak = percentile(memory, 0.95), max(memory)
        size = size_at_least(max(peak * HEADROOM, limits.memory_mb + 1), MEMORY_SIZES)
        found.append(
            finding(
                observation,
                "undersized",
                "warning",
                {"memory_mb": limits.memory_mb},
                {"memory_mb": size},
                f"uses {p95:.0f} MB (p95) of its {limits.memory_mb} MB: allocations will fail "
                f"at the limit; ship it with {size} MB",
                {"memory_mb_p95": round(p95, 1), "memory_mb_max": round(peak, 1)},
            )
        )
    starved = [
        s
        for s in observation.samples
        if s.state == "failed" and s.end_time is not None and OUT_OF_MEMORY.search(s.note)
    ]
    if starved and not any(f["current"].get("memory_mb") for f in found):
        peak = max(memory, default=0.0)
        size = size_at_least(max(peak * HEADROOM, limits.memory_mb * 2), MEMORY_SIZES)
        found.append(
            finding(
                observation,
                "undersized",
                "critical",
                {"memory_mb": limits.memory_mb},
                {"memory_mb": size},
                f"{len(starved)} run(s) failed for want of memory (memory_mb limits its "
                f"address space); ship it with {size} MB",
                {
                    "out_of_memory_runs": len(starved),
                    "last_lines": starved[-1].note.splitlines()[-MAX_EVIDENCE_LINES:],
                },
            )
        )
    percent = values_of("cpu_percent", observation.samples, limits)
    if percent and percentile(percent, 0.95) >= THROTTLED_PERCENT:
        p95 = percentile(percent, 0.95)
        size = size_at_least(limits.vcpus * 2, VCPU_SIZES)
        if size > limits.vcpus:
            found.append(
                finding(
                    observation,
                    "undersized",
                    "warning",
                    {"vcpus": limits.vcpus},
                    {"vcpus": size},
                    f"busy at {p95:.0f}% (p95) of its {limits.vcpus} vcpus: capped by them; "
                    f"ship it with {size}",
                    {"cpu_percent_p95": round(p95, 1)},
                )
            )
    disk = values_of("disk_mb", observation.samples, limits)
    disk_limit_mb = limits.disk_gb * 1024
    killed = [
        s
        for s in observation.samples
        if s.state != "running" and s.end_time is not None and s.exit_code == -signal.SIGXFSZ
    ]
    if killed or (disk and percentile(disk, 0.95) >= UNDERSIZED_FRACTION * disk_limit_mb):
        peak_gb = (max(disk) if disk else 0.0) / 1024
        size = size_at_least(max(peak_gb * HEADROOM, limits.disk_gb + 1), DISK_SIZES)
        reason = (
            "a run was killed by the file size limit (SIGXFSZ)"
            if killed
            else f"its directory holds {peak_gb:.1f} GB of its {limits.disk_gb} GB"
        )
        found.append(
            finding(
                observation,
                "undersized",
                "critical" if killed else "warning",
                {"disk_gb": limits.disk_gb},
                {"disk_gb": size},
                f"{reason}; ship it with {size} GB",
                {
                    "disk_mb_max": round(max(disk), 1) if disk else None,
                    "killed_by_limit": len(killed),
                },
            )
        )
    return found


def idle(observation: Observation) -> Finding | None:
    cores = _cpu_cores(observation)
    if not cores or observation.state != "running":
        return None
    average = 100 * sum(cores) / len(cores)
    if average >= IDLE_CPU_PERCENT:
        return None
    return finding(
        observation,
        "idle",
        "info",
        {"state": observation.state},
        {"action": "stop"},
        f"used {average:.2f}% of one CPU on average over the window (no work, so no "
        "traffic either): stop it (vm.control stop) or delete it if it is not needed",
        {"cpu_percent_of_one_cpu_avg": round(average, 3), "samples": len(cores)},
    )


def crash_loop(observation: Observation) -> Finding | None:
    failures = sorted(observation.failures, key=lambda failure: failure.time_us)
    span = CRASH_SPAN_SECONDS * 1_000_000
    worst = 0
    start = 0
    for end in range(len(failures)):
        while failures[end].time_us - failures[start].time_us > span:
            start += 1
        worst = max(worst, end - start + 1)
    if worst < CRASH_FAILURES:
        return None
    newest = failures[-1]
    how = f"exit code {newest.exit_code}" if newest.signal is None else f"signal {newest.signal}"
    evidence: dict[str, Any] = {
        "last_failure": rfc3339(newest.time_us),
        "exit_codes": [f.exit_code for f in failures[-MAX_EVIDENCE_LINES:]],
        "last_lines": list(newest.last_lines[-MAX_EVIDENCE_LINES:]),
    }
    if newest.signal is not None:
        evidence["last_signal"] = newest.signal
    return finding(
        observation,
        "crash_loop",
        "critical",
        {"failures_in_10m": worst, "last_exit_code": newest.exit_code},
        {"action": "fix the error its output shows, then start it again"},
        f"failed {worst} times within {CRASH_SPAN_SECONDS // 60} minutes, last with {how}",
        evidence,
    )


def recommend(observation: Observation) -> list[Finding]:
    """Every rule, in order: crash_loop; then insufficient_data, or idle and the size rules."""
    found: list[Finding] = []
    looping = crash_loop(observation)
    if looping is not None:
        found.append(looping)
    lacking = insufficient_data(observation)
    if lacking is not None:
        return [*found, lacking] if looping is None else found
    idling = idle(observation)
    if idling is not None:
        found.append(idling)
    found.extend(undersized(observation))
    found.extend(oversized(observation))
    return found
