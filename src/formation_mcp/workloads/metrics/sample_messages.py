"""Samples on the broker: a node's sampler sends each tick's samples to the API as one
`InstanceSamples` message on the events flow (`SamplePublisher`), and the API stores them
(`SampleIngest`), as node events go. Storing is idempotent (a sample's key is instance,
resolution and time), so a redelivered message changes nothing.

Each tick's message is spooled with the node's events (`NodeEvents`: a file in the node's
spool directory, published in order with the events, removed once the broker confirmed it), so
a tick the broker does not take waits on disk, also across a restart of the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from formation.mcp.internal.v1 import queue_pb2
from google.protobuf.message import DecodeError

from formation_mcp.events.reporter import NodeEvents
from formation_mcp.workloads.metrics.samples import Sample, SampleStore


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
    """The sampler's sink on a node: each tick's samples spooled for the broker."""

    def __init__(self, events: NodeEvents) -> None:
        self._events = events
        self.published = 0
        """Ticks spooled (the node's events publisher sends them)."""

    async def __call__(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        message = to_message(self._events.node_id, samples)
        self._events.spool(queue_pb2.OperationEvent(instance_samples=message))
        self.published += 1

    def spooled(self) -> list[Sample]:
        """The samples still waiting in the spool, oldest first: a restarted sampler carries
        its counters on from these too."""
        found: list[Sample] = []
        for path in self._events.pending():
            try:
                message = queue_pb2.OperationEvent.FromString(path.read_bytes())
            except (OSError, DecodeError):  # published and removed meanwhile, or torn
                continue
            if message.WhichOneof("kind") == "instance_samples":
                found.extend(from_message(message.instance_samples))
        return found


class SampleIngest:
    """The API's side: stores the samples a node sent (once each)."""

    def __init__(self, store: SampleStore) -> None:
        self._store = store

    async def __call__(self, message: queue_pb2.InstanceSamples) -> None:
        await self._store.add(from_message(message))
