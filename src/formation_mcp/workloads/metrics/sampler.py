"""The node's sampler: every FMCP_METRICS_INTERVAL it measures each instance this node runs
(procfs.ProcessTable, one pass over /proc for all of them) and sends the samples in one batch
(through the broker to the API, which stores them: sample_messages.py).

It asks the driver which instances run and which process group each has (`running_groups`);
the instance records (owner, limits, start and end of the last run, exit code) come from the
instances table the driver keeps. Restarts and failures are counters the sampler keeps: a new
run start is a restart, a run that ended with a non-zero code or a signal is a failure (its
last output lines go with the sample that records it). Both carry on from the newest sample,
stored or still spooled, so a worker restart keeps counting. A run that starts and ends between
two ticks of a stopped-and-restarted instance is seen as one: the interval bounds what is
noticed (crash_loop counts the instance.failed events instead).

Every minute it also folds its samples older than an hour into 1-minute points and deletes
those older than FMCP_METRICS_RETENTION.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

from formation_mcp.clock import now_us
from formation_mcp.log_throttle import LogThrottle
from formation_mcp.workloads.instance_logs import log_tail
from formation_mcp.workloads.instances import InstanceRecord, InstanceState, InstanceStore
from formation_mcp.workloads.metrics.procfs import ProcessTable, disk_bytes
from formation_mcp.workloads.metrics.samples import Sample, SampleStore

log = logging.getLogger(__name__)

RAW_KEEP_SECONDS: Final = 3600.0
"""Raw samples are folded into 1-minute points once they are older than this."""
MAINTENANCE_SECONDS: Final = 60.0
DISK_REFRESH_SECONDS: Final = 60.0
"""An instance's directory is walked at most this often (its size in between is the last)."""
DISK_MAX_ENTRIES: Final = 50_000
FAILURE_LINES: Final = 5
NOTE_CHARS: Final = 1000


class ProcessGroups(Protocol):
    """What the sampler needs of a driver."""

    node_id: str

    def running_groups(self) -> Mapping[str, int]:
        """Running instance id -> its entrypoint's pid (the leader of its process group)."""
        ...

    def directory(self, instance_id: str) -> Path: ...


@dataclass
class _Seen:
    """What the sampler remembers of one instance between ticks."""

    last: Sample | None = None
    disk: int | None = None
    disk_time: float = 0.0


@dataclass(frozen=True, slots=True)
class Observed:
    """An instance as the last tick saw it (the Prometheus side reads these)."""

    instance: InstanceRecord
    sample: Sample


class Sampler:
    def __init__(
        self,
        driver: ProcessGroups,
        instances: InstanceStore,
        samples: SampleStore,
        *,
        sink: Callable[[Sequence[Sample]], Awaitable[None]] | None = None,
        interval_seconds: float,
        retention_seconds: float,
        pending: Callable[[], Sequence[Sample]] | None = None,
        clock: Callable[[], int] = now_us,
    ) -> None:
        """`pending` gives the samples the sink holds that the store may not have yet (the
        spool's): the sampler's counters carry on from the newest of those and the stored."""
        self.node_id = driver.node_id
        self._driver = driver
        self._instances = instances
        self._samples = samples
        self._sink = sink or samples.add
        """Where each tick's samples go: the broker on a node (SamplePublisher), or straight
        into the store (tests of the sampler alone)."""
        self._pending = pending
        self.interval = interval_seconds
        self.retention = retention_seconds
        self._clock = clock
        self._seen: dict[str, _Seen] = {}
        self._loaded = False
        self.observed: dict[str, Observed] = {}
        """The node's live instances at the last tick: deleted ones drop out."""
        self.ticks = 0
        self.cpu_seconds = 0.0
        """CPU time this process spent sampling (thread time of the /proc work)."""
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_maintenance = 0.0
        self._throttle = LogThrottle(log)

    async def start(self) -> None:
        self._closing.clear()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._closing.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing.is_set():
            started = loop.time()
            try:
                await self.tick()
                if started - self._last_maintenance >= MAINTENANCE_SECONDS:
                    self._last_maintenance = started
                    await self.maintain()
            except Exception as exc:
                self._throttle.warning("sampling failed", "sampling failed: %s", exc)
            wait = max(0.0, self.interval - (loop.time() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), wait)

    async def tick(self) -> list[Sample]:
        """Measure every instance of this node once and store the samples (one batch)."""
        if not self._loaded:
            for instance_id, sample in (await self._samples.latest_on_node(self.node_id)).items():
                self._seen.setdefault(instance_id, _Seen()).last = sample
            if self._pending is not None:  # taken before a restart, not yet published
                for sample in await asyncio.to_thread(self._pending):
                    seen = self._seen.setdefault(sample.instance_id, _Seen())
                    if seen.last is None or sample.time_us > seen.last.time_us:
                        seen.last = sample
            self._loaded = True
        records = await self._instances.on_node(self.node_id)
        groups = dict(self._driver.running_groups())
        now = self._clock()
        samples, observed = await asyncio.to_thread(self._measure, records, groups, now)
        await self._sink(samples)
        for sample in samples:
            self._seen.setdefault(sample.instance_id, _Seen()).last = sample
        live = {record.instance_id for record in records}
        for gone in set(self._seen) - live:
            del self._seen[gone]
        self.observed = observed
        self.ticks += 1
        return samples

    async def maintain(self) -> None:
        """Fold raw samples older than an hour; expire those older than the retention."""
        now = self._clock()
        while await self._samples.fold(self.node_id, now - int(RAW_KEEP_SECONDS * 1e6)):
            pass
        await self._samples.expire(self.node_id, now - int(self.retention * 1e6))

    # -- the measuring (in a thread) -----------------------------------------------------------

    def _measure(
        self, records: list[InstanceRecord], groups: dict[str, int], now: int
    ) -> tuple[list[Sample], dict[str, Observed]]:
        started = time.thread_time()
        table = ProcessTable.read()
        samples: list[Sample] = []
        observed: dict[str, Observed] = {}
        for record in records:
            seen = self._seen.setdefault(record.instance_id, _Seen())
            leader = groups.get(record.instance_id)
            sample: Sample | None
            if record.state is InstanceState.RUNNING and leader is not None:
                sample = self._running(record, seen, table, leader, now)
            else:
                sample = self._ended(record, seen, now)
            if sample is not None:
                samples.append(sample)
            current = sample or seen.last
            if current is not None:
                observed[record.instance_id] = Observed(record, current)
        self.cpu_seconds += time.thread_time() - started
        return samples, observed

    def _running(
        self, record: InstanceRecord, seen: _Seen, table: ProcessTable, leader: int, now: int
    ) -> Sample:
        usage = table.usage(leader)
        last = seen.last
        restarts = last.restarts if last else 0
        failures = last.failures if last else 0
        percent = None
        if last is not None and last.run_start is not None and last.run_start != record.start_time:
            restarts += 1
        elif last is not None and last.run_start == record.start_time and now > last.time_us:
            used = max(0.0, usage.cpu_seconds - last.cpu_seconds)
            percent = round(100 * used / ((now - last.time_us) / 1e6) / record.resources.vcpus, 2)
        if time.monotonic() - seen.disk_time >= DISK_REFRESH_SECONDS or seen.disk is None:
            directory = self._driver.directory(record.instance_id)
            seen.disk, _complete = disk_bytes(directory, DISK_MAX_ENTRIES)
            seen.disk_time = time.monotonic()
        return Sample(
            instance_id=record.instance_id,
            node=self.node_id,
            time_us=now,
            state=record.state.value,
            run_start=record.start_time,
            cpu_seconds=round(usage.cpu_seconds, 3),
            cpu_percent=percent,
            rss_bytes=usage.rss_bytes,
            disk_bytes=seen.disk,
            processes=usage.processes,
            threads=usage.threads,
            open_fds=usage.open_fds,
            ports=usage.ports,
            restarts=restarts,
            failures=failures,
            exit_code=record.exit_code if last is None else last.exit_code,
            end_time=record.end_time if last is None else last.end_time,
        )

    def _ended(self, record: InstanceRecord, seen: _Seen, now: int) -> Sample | None:
        """A sample that records how a run ended, once per end; nothing while it stays so."""
        last = seen.last
        if record.end_time is None or (last is not None and last.end_time == record.end_time):
            return None
        failed = record.state is InstanceState.FAILED  # a stop on request is no failure
        note = ""
        if failed:
            lines = log_tail(self._driver.directory(record.instance_id), FAILURE_LINES)
            note = "\n".join(lines)[-NOTE_CHARS:]
        base = last or Sample(record.instance_id, self.node_id, now, record.state.value)
        return replace(
            base,
            time_us=max(now, base.time_us + 1),
            state=record.state.value,
            run_start=record.start_time,
            cpu_percent=0.0,
            rss_bytes=0,
            processes=0,
            threads=0,
            open_fds=0,
            ports=(),
            failures=base.failures + (1 if failed else 0),
            exit_code=record.exit_code,
            end_time=record.end_time,
            note=note,
            resolution=0,
            count=1,
        )
