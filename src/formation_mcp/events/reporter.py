"""The events a node reports (its instances' state changes, its builds, itself), and its
metric samples (one batch per sampling tick, spooled and published the same way).

Each event is written to the node's spool directory first (one small file, renamed into
place), then published through the broker in the order reported (up to PUBLISH_WINDOW in flight:
only a publish that has to be retried can overtake, and then the API orders by when it
records); its file is removed once the broker confirmed it. So an event survives a worker
restart (the next start publishes what is left), a broker outage (publishing retries) and an
API restart (the broker keeps it). Each event has a key of its own, and the API records a key
once: publishing again after a crash between the confirm and the removal changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Final

from formation.mcp.internal.v1 import queue_pb2

from formation_mcp.broker.base import Broker, BrokerUnavailable
from formation_mcp.clock import now_us
from formation_mcp.events.model import (
    NewEvent,
    Severity,
    bounded_data,
    bounded_message,
    new_event_to_proto,
)

log = logging.getLogger(__name__)

SUFFIX: Final = ".event"
RETRY_MAX_SECONDS: Final = 5.0
PUBLISH_WINDOW: Final = 128
"""Events published at once, in report order, before their confirms are awaited together."""


class NodeEvents:
    def __init__(self, spool_dir: Path, node_id: str) -> None:
        self.node_id = node_id
        self._dir = spool_dir
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._broker: Broker | None = None
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.published = 0
        """Events published so far (for metrics and tests)."""

    def report(
        self,
        type: str,
        resource: str,
        owner: str,
        severity: Severity,
        message: str,
        **data: Any,
    ) -> NewEvent:
        """Spool an event (published as soon as the broker takes it)."""
        now = now_us()
        stem = self._stem(now)
        event = NewEvent(
            key=f"{self.node_id}:{stem}",
            type=type,
            resource=resource,
            owner=owner,
            time=now,
            severity=severity,
            message=bounded_message(message),
            data=bounded_data({key: value for key, value in data.items() if value is not None}),
            node=self.node_id,
        )
        self._spool(
            stem,
            queue_pb2.OperationEvent(
                resource_event=queue_pb2.ResourceEvent(
                    key=event.key, event=new_event_to_proto(event)
                )
            ),
        )
        return event

    def spool(self, message: queue_pb2.OperationEvent) -> None:
        """Spool another message of the events flow (a node's sample batch): published in
        order with the events, with the same guarantees."""
        self._spool(self._stem(now_us()), message)

    def _stem(self, now: int) -> str:
        return f"{now:016x}-{next(self._counter):08x}-{secrets.token_hex(4)}"

    def _spool(self, stem: str, message: queue_pb2.OperationEvent) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        tmp = self._dir / f"{stem}.tmp"
        tmp.write_bytes(message.SerializeToString())
        os.replace(tmp, self._dir / f"{stem}{SUFFIX}")
        self._idle.clear()
        self._wake.set()

    def pending(self) -> list[Path]:
        with contextlib.suppress(FileNotFoundError):
            return sorted(self._dir.glob(f"*{SUFFIX}"))
        return []

    async def start(self, broker: Broker) -> None:
        """Publish what is spooled (from before a restart too), and from now on each event."""
        self._broker = broker
        self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._publish_forever())

    async def stop(self, grace: float) -> None:
        """Publish what is spooled within `grace` seconds; the rest waits for the next start."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _publish_forever(self) -> None:
        assert self._broker is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending = self.pending()
            for start in range(0, len(pending), PUBLISH_WINDOW):
                window = pending[start : start + PUBLISH_WINDOW]
                bodies = []
                for path in window:
                    with contextlib.suppress(FileNotFoundError):
                        bodies.append((path, path.read_bytes()))
                # Sent in order on one channel, confirmed together (many in flight).
                await asyncio.gather(*(self._publish(self._broker, body) for _, body in bodies))
                for path, _ in bodies:
                    path.unlink(missing_ok=True)
                self.published += len(bodies)
            if not self._wake.is_set():
                self._idle.set()

    async def _publish(self, broker: Broker, body: bytes) -> None:
        delay = 0.05
        while True:
            try:
                await broker.publish_event(body)
                return
            except BrokerUnavailable as exc:
                log.warning("cannot publish a node event (%s); retrying in %.2fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_SECONDS)
