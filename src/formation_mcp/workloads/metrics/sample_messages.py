"""Samples on the broker: a node's sampler sends each tick's samples to the API as one
`InstanceSamples` message on the events flow (`SamplePublisher`), and the API stores them
(`SampleIngest`), as node events go. Storing is idempotent (a sample's key is instance,
resolution and time), so a redelivered message changes nothing.

A tick the broker does not take is kept (at most MAX_PENDING_TICKS of them, oldest dropped
first, counted in `dropped`) and sent, in order, before the next tick's.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import Final, Literal

from formation.mcp.internal.v1 import queue_pb2

from formation_mcp.broker.base import Broker, BrokerUnavailable
from formation_mcp.log_throttle import LogThrottle
from formation_mcp.workloads.metrics.samples import Sample, SampleStore

log = logging.getLogger(__name__)

MAX_PENDING_TICKS: Final = 360
"""Ticks kept while the broker is away: an hour at the default 10 s interval."""


def to_message(node: str, samples: Sequence[Sample]) -> queue_pb2.InstanceSamples:
    message = queue_pb2.InstanceSamples(node=node)
    for sample in samples:
        item = message.samples.add(
            instance_id=sample.instance_id,
            time_us=sample.time_us,
            state=sample.state,
            cpu_seconds=sample.cpu_seconds,
            rss_bytes=sample.rss_bytes,
            processes=sample.processes,
            threads=sample.threads,
            ports=list(sample.ports),
            restarts=sample.restarts,
            failures=sample.failures,
            note=sample.note,
        )
        if sample.run_start is not None:
            item.run_start = sample.run_start
        if sample.cpu_percent is not None:
            item.cpu_percent = sample.cpu_percent
        if sample.disk_bytes is not None:
            item.disk_bytes = sample.disk_bytes
        if sample.open_fds is not None:
            item.open_fds = sample.open_fds
        if sample.exit_code is not None:
            item.exit_code = sample.exit_code
        if sample.end_time is not None:
            item.end_time = sample.end_time
    return message


def from_message(message: queue_pb2.InstanceSamples) -> list[Sample]:
    def optional(
        item: queue_pb2.InstanceSample,
        name: Literal["run_start", "disk_bytes", "open_fds", "exit_code", "end_time"],
    ) -> int | None:
        return int(getattr(item, name)) if item.HasField(name) else None

    return [
        Sample(
            instance_id=item.instance_id,
            node=message.node,
            time_us=item.time_us,
            state=item.state,
            run_start=optional(item, "run_start"),
            cpu_seconds=item.cpu_seconds,
            cpu_percent=item.cpu_percent if item.HasField("cpu_percent") else None,
            rss_bytes=item.rss_bytes,
            disk_bytes=optional(item, "disk_bytes"),
            processes=item.processes,
            threads=item.threads,
            open_fds=optional(item, "open_fds"),
            ports=tuple(item.ports),
            restarts=item.restarts,
            failures=item.failures,
            exit_code=optional(item, "exit_code"),
            end_time=optional(item, "end_time"),
            note=item.note,
        )
        for item in message.samples
    ]


class SamplePublisher:
    """The sampler's sink on a node: each tick's samples through the broker."""

    def __init__(self, broker: Broker, node_id: str, max_pending: int = MAX_PENDING_TICKS) -> None:
        self._broker = broker
        self._node_id = node_id
        self._pending: deque[bytes] = deque()
        self._max_pending = max_pending
        self.published = 0
        self.dropped = 0
        """Ticks dropped because the broker was away for longer than the pending ones last."""
        self._throttle = LogThrottle(log)

    async def __call__(self, samples: Sequence[Sample]) -> None:
        if samples:
            event = queue_pb2.OperationEvent(instance_samples=to_message(self._node_id, samples))
            self._pending.append(event.SerializeToString())
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self.dropped += 1
        while self._pending:
            try:
                await self._broker.publish_event(self._pending[0])
            except BrokerUnavailable as exc:
                self._throttle.warning(
                    "samples unpublished",
                    "cannot publish samples (%s); %d tick(s) kept for later",
                    exc,
                    len(self._pending),
                )
                return
            self._pending.popleft()
            self.published += 1


class SampleIngest:
    """The API's side: stores the samples a node sent (once each)."""

    def __init__(self, store: SampleStore) -> None:
        self._store = store

    async def __call__(self, message: queue_pb2.InstanceSamples) -> None:
        await self._store.add(from_message(message))
