"""The samples table: what each node's sampler measured of its instances, raw for the last
hour and as 1-minute points after that, kept for FMCP_METRICS_RETENTION.

Writes are idempotent (a sample's key is instance, resolution and time: writing it again
changes nothing) and batched (one multi-row insert per sampling tick of a node, made by the API
that received the tick through the broker: sample_messages.py). Each node folds and expires the
samples of its own instances; raw samples that arrive after their minute was folded (a tick
the broker took late) join its point.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from formation_mcp.db.database import Database
from formation_mcp.db.schema import instance_samples

RAW: Final = 0
MINUTE: Final = 60
MINUTE_US: Final = 60_000_000
FOLD_BATCH_ROWS: Final = 20_000
"""Raw samples folded per transaction (the rest in the next round)."""
MAX_WINDOW_ROWS: Final = 100_000
"""A window read never holds more rows than this (24 h of 1-second samples is 86 400)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of one instance (or, at MINUTE resolution, the average of a minute's
    measurements; counters and states are the minute's last)."""

    instance_id: str
    node: str
    time_us: int
    state: str
    run_start: int | None = None
    cpu_seconds: float = 0.0
    """CPU time of the current run's process group (counter; starts again with each run)."""
    cpu_percent: float | None = None
    """Of the instance's vcpus (100 = all of them busy); None for a run's first sample."""
    rss_bytes: int = 0
    disk_bytes: int | None = None
    processes: int = 0
    threads: int = 0
    open_fds: int | None = None
    ports: tuple[int, ...] = ()
    restarts: int = 0
    """Starts after the first one this node saw (counter)."""
    failures: int = 0
    """Runs this node saw end with a non-zero exit code or a signal (counter)."""
    exit_code: int | None = None
    end_time: int | None = None
    """When the last run ended (None while the first run runs)."""
    note: str = ""
    """On the sample that records a failed run: its last output lines."""
    resolution: int = RAW
    count: int = 1


def _values(sample: Sample) -> dict[str, Any]:
    return {
        "instance_id": sample.instance_id,
        "resolution": sample.resolution,
        "time_us": sample.time_us,
        "node": sample.node,
        "state": sample.state,
        "run_start": sample.run_start,
        "cpu_seconds": sample.cpu_seconds,
        "cpu_percent": sample.cpu_percent,
        "rss_bytes": sample.rss_bytes,
        "disk_bytes": sample.disk_bytes,
        "processes": sample.processes,
        "threads": sample.threads,
        "open_fds": sample.open_fds,
        "ports": json.dumps(list(sample.ports)),
        "restarts": sample.restarts,
        "failures": sample.failures,
        "exit_code": sample.exit_code,
        "end_time": sample.end_time,
        "note": sample.note,
        "count": sample.count,
    }


def _from_row(row: sa.Row[Any]) -> Sample:
    return Sample(
        instance_id=row.instance_id,
        node=row.node,
        time_us=int(row.time_us),
        state=row.state,
        run_start=row.run_start,
        cpu_seconds=float(row.cpu_seconds),
        cpu_percent=None if row.cpu_percent is None else float(row.cpu_percent),
        rss_bytes=int(row.rss_bytes),
        disk_bytes=row.disk_bytes,
        processes=int(row.processes),
        threads=int(row.threads),
        open_fds=row.open_fds,
        ports=tuple(json.loads(row.ports)),
        restarts=int(row.restarts),
        failures=int(row.failures),
        exit_code=row.exit_code,
        end_time=row.end_time,
        note=row.note,
        resolution=int(row.resolution),
        count=int(row._mapping["count"]),
    )


class SampleStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def _insert(self) -> Any:
        dialect = postgresql if self._db.is_postgres else sqlite
        return dialect.insert(instance_samples).on_conflict_do_nothing()

    async def add(self, samples: Sequence[Sample]) -> None:
        """One insert for the batch; samples already stored are left as they are."""
        if not samples:
            return
        async with self._db.write() as conn:
            await conn.execute(self._insert(), [_values(s) for s in samples])

    async def window(self, instance_id: str, since_us: int, until_us: int) -> list[Sample]:
        """The instance's samples in [since, until], oldest first (both resolutions: they
        never overlap, a minute is folded and its raw samples deleted at once)."""
        query = (
            sa.select(instance_samples)
            .where(
                instance_samples.c.instance_id == instance_id,
                instance_samples.c.time_us >= since_us,
                instance_samples.c.time_us <= until_us,
            )
            .order_by(instance_samples.c.time_us.desc())
            .limit(MAX_WINDOW_ROWS)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_from_row(row) for row in reversed(rows)]

    async def latest_on_node(self, node: str) -> dict[str, Sample]:
        """Each instance's newest sample taken by `node` (its counters carry on from there)."""
        newest = (
            sa.select(
                instance_samples.c.instance_id,
                sa.func.max(instance_samples.c.time_us).label("time_us"),
            )
            .where(instance_samples.c.node == node)
            .group_by(instance_samples.c.instance_id)
            .subquery()
        )
        query = sa.select(instance_samples).join(
            newest,
            sa.and_(
                instance_samples.c.instance_id == newest.c.instance_id,
                instance_samples.c.time_us == newest.c.time_us,
            ),
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[str, Sample] = {}
        for row in rows:
            sample = _from_row(row)
            if sample.instance_id not in found or sample.resolution == RAW:
                found[sample.instance_id] = sample
        return found

    async def fold(self, node: str, before_us: int) -> int:
        """Raw samples of `node` older than `before_us` (whole minutes only) become 1-minute
        points, in one transaction; returns how many raw samples were folded."""
        before_us -= before_us % MINUTE_US
        raw = sa.and_(
            instance_samples.c.node == node,
            instance_samples.c.resolution == RAW,
            instance_samples.c.time_us < before_us,
        )
        async with self._db.write() as conn:
            rows = (
                await conn.execute(
                    sa.select(instance_samples)
                    .where(raw)
                    .order_by(instance_samples.c.time_us)
                    .limit(FOLD_BATCH_ROWS)
                )
            ).all()
            if not rows:
                return 0
            samples = [_from_row(row) for row in rows]
            last_time = samples[-1].time_us
            # A batch may end inside a minute: fold only the minutes it holds in full.
            if len(rows) == FOLD_BATCH_ROWS:
                cut = last_time - last_time % MINUTE_US
                samples = [s for s in samples if s.time_us < cut] or samples
            earlier = await self._folded_already(conn, node, samples)
            for point in earlier:  # replaced by the point that holds it and the late samples
                await conn.execute(
                    instance_samples.delete().where(
                        instance_samples.c.instance_id == point.instance_id,
                        instance_samples.c.resolution == MINUTE,
                        instance_samples.c.time_us == point.time_us,
                    )
                )
            minutes = fold_minutes([*earlier, *samples])
            await conn.execute(self._insert(), [_values(m) for m in minutes])
            upto = max(s.time_us for s in samples)
            await conn.execute(
                instance_samples.delete().where(raw, instance_samples.c.time_us <= upto)
            )
        return len(samples)

    async def _folded_already(
        self, conn: Any, node: str, samples: Sequence[Sample]
    ) -> list[Sample]:
        """The minute points already stored for the minutes `samples` fall in: raw samples
        that arrive late (their batch waited in a node's spool) are folded into them."""
        keys = {(s.instance_id, s.time_us - s.time_us % MINUTE_US) for s in samples}
        minutes = [minute for _instance, minute in keys]
        rows = (
            await conn.execute(
                sa.select(instance_samples).where(
                    instance_samples.c.node == node,
                    instance_samples.c.resolution == MINUTE,
                    instance_samples.c.time_us >= min(minutes),
                    instance_samples.c.time_us <= max(minutes),
                )
            )
        ).all()
        return [
            sample
            for sample in map(_from_row, rows)
            if (sample.instance_id, sample.time_us) in keys
        ]

    async def expire(self, node: str, before_us: int) -> int:
        """Delete `node`'s samples older than `before_us`; returns how many."""
        async with self._db.write() as conn:
            result = await conn.execute(
                instance_samples.delete().where(
                    instance_samples.c.node == node, instance_samples.c.time_us < before_us
                )
            )
        return int(result.rowcount or 0)


def fold_minutes(samples: Sequence[Sample]) -> list[Sample]:
    """1-minute points: gauges averaged (weighted by how many samples each point holds),
    counters, states and exit information the minute's last, ports the union."""
    buckets: defaultdict[tuple[str, int], list[Sample]] = defaultdict(list)
    for sample in samples:
        buckets[(sample.instance_id, sample.time_us - sample.time_us % MINUTE_US)].append(sample)
    folded = []
    for (_instance, minute), group in sorted(buckets.items(), key=lambda item: item[0][1]):
        last = group[-1]
        notes = [s.note for s in group if s.note]
        ports = sorted({port for s in group for port in s.ports})
        folded.append(
            replace(
                last,
                time_us=minute,
                resolution=MINUTE,
                count=sum(s.count for s in group),
                cpu_percent=_average(group, lambda s: s.cpu_percent),
                rss_bytes=round(_average(group, lambda s: s.rss_bytes) or 0),
                disk_bytes=_rounded(_average(group, lambda s: s.disk_bytes)),
                processes=round(_average(group, lambda s: s.processes) or 0),
                threads=round(_average(group, lambda s: s.threads) or 0),
                open_fds=_rounded(_average(group, lambda s: s.open_fds)),
                ports=tuple(ports[:16]),
                note=notes[-1] if notes else "",
            )
        )
    return folded


def _average(group: Sequence[Sample], value: Any) -> float | None:
    weighted = [(value(s), s.count) for s in group if value(s) is not None]
    total = sum(count for _v, count in weighted)
    if not total:
        return None
    return float(sum(v * count for v, count in weighted) / total)


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)
