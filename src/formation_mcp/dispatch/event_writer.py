"""Writing workers' events to the database, and giving up on an event that cannot be written.

The event consumer hands batches of events to `EventWriter.write` (through GroupCommit, which
writes one batch at a time, in delivery order). A batch that fails for any reason but the
database being down is written again event by event (GroupCommit isolates it), so that only
the event at fault fails. That event is tried again a few times (a conflict or a deadlock
passes) and then given up, before any later batch is written, so that the events of its
operation stay in order: its operation ends FAILED saying which event could not be applied
and why (the dead-letter path of events), and the event is dropped. The database being down
is not the event's fault: that failure goes back to the consumer, which hands the event back
to the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from formation.mcp.internal.v1 import queue_pb2
from google.rpc import code_pb2, status_pb2
from sqlalchemy.exc import DBAPIError

from formation_mcp.errors import Unavailable
from formation_mcp.log_throttle import LogThrottle
from formation_mcp.operations.ids import parse_operation_name
from formation_mcp.operations.manager import OperationManager
from formation_mcp.operations.storable import storable_text

log = logging.getLogger(__name__)

EVENT_MAX_ATTEMPTS = 3
"""Tries to write an event on its own (for failures other than the database being down)."""
EVENT_RETRY_BACKOFF_SECONDS = 0.05
"""The pause before the second try; doubled before each later one."""
MAX_CAUSE_CHARS = 300


class EventWriter:
    def __init__(
        self,
        operations: OperationManager,
        *,
        max_attempts: int = EVENT_MAX_ATTEMPTS,
        retry_backoff_seconds: float = EVENT_RETRY_BACKOFF_SECONDS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._operations = operations
        self._max_attempts = max_attempts
        self._backoff = retry_backoff_seconds
        self._throttle = LogThrottle(log)
        self.dead_lettered = 0
        """Events given up on so far (for metrics and tests)."""

    @staticmethod
    def isolates(exc: Exception) -> bool:
        """For GroupCommit: write a failed batch again event by event, unless the database is
        down (then every event of the batch fails alike)."""
        return not isinstance(exc, Unavailable)

    async def write(self, events: Sequence[queue_pb2.OperationEvent]) -> None:
        """Apply `events` in one transaction; an event alone is retried, then given up."""
        if len(events) > 1:
            await self._operations.apply_events(events)
            return
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._operations.apply_events(events)
                return
            except Unavailable:
                raise
            except Exception as exc:
                if attempt == self._max_attempts:
                    await self._give_up(events[0], exc)
                    return
                self._throttle.warning(
                    "event failed",
                    "could not apply an event of %s (try %d of %d): %s",
                    events[0].operation,
                    attempt,
                    self._max_attempts,
                    describe_failure(exc),
                )
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1))

    async def _give_up(self, event: queue_pb2.OperationEvent, exc: Exception) -> None:
        """The event's operation ends FAILED with why; the event is dropped. Raises
        Unavailable when the database went down meanwhile (the event is then tried later)."""
        kind = event.WhichOneof("kind") or "empty"
        cause = describe_failure(exc)
        self._throttle.error(
            "event dead-lettered",
            "gave up on the %s event %d (attempt %d) of %s after %d tries: %s",
            kind,
            event.sequence,
            event.attempt,
            event.operation,
            self._max_attempts,
            cause,
            exc_info=exc,
        )
        error = status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=(
                f"the server could not apply a {kind} event from the worker (event "
                f"{event.sequence} of attempt {event.attempt}) after {self._max_attempts} tries, "
                f"so it gave up on this operation: {cause}"
            ),
        )
        try:
            await self._operations.finish(parse_operation_name(event.operation), error=error)
        except Unavailable:
            raise
        except Exception as failure:  # nothing more to try: drop the event rather than loop
            self._throttle.error(
                "dead letter failed",
                "could not fail %s after giving up on its event: %s",
                event.operation,
                describe_failure(failure),
                exc_info=failure,
            )
        self.dead_lettered += 1


def describe_failure(exc: BaseException) -> str:
    """What went wrong, in one line for an operation's error: the driver's own error for a
    database error (SQLAlchemy's text adds the statement and its parameters)."""
    shown = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(shown).strip().splitlines()
    text = f"{type(shown).__name__}: {lines[0]}" if lines else type(shown).__name__
    if len(text) > MAX_CAUSE_CHARS:
        text = text[: MAX_CAUSE_CHARS - 1] + "…"
    return storable_text(text)
