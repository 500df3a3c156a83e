"""Operation records and events the lifecycle tests build."""

from __future__ import annotations

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from formation_mcp.operations.lifecycle import (
    OperationRecord,
    State,
    apply_event,
    new_record,
)

OPERATION_ID = "0" * 31 + "1"
NAME = f"operations/{OPERATION_ID}"
T0 = 1_700_000_000_000_000
T1 = T0 + 1_000
T2 = T0 + 2_000
T3 = T0 + 3_000

Event = queue_pb2.OperationEvent

# --------------------------------------------------------------------------- helpers


def pending_record() -> OperationRecord:
    return new_record(OPERATION_ID, "acct-1", "test.sleep", "req-1", T0)


def event_at(attempt: int, sequence: int) -> Event:
    return Event(operation=NAME, attempt=attempt, sequence=sequence)


def started_event(attempt: int = 1, sequence: int = 1) -> Event:
    event = event_at(attempt, sequence)
    event.started.node = "node-a"
    return event


def progress_event(
    percent: int, stage: str = "", message: str = "", *, attempt: int = 1, sequence: int = 2
) -> Event:
    event = event_at(attempt, sequence)
    event.progress.percent = percent
    event.progress.stage = stage
    event.progress.message = message
    return event


def log_line(
    text: str, stream: operations_pb2.LogLine.Stream.ValueType = operations_pb2.LogLine.STDOUT
) -> operations_pb2.LogLine:
    return operations_pb2.LogLine(text=text, stream=stream)


def logs_event(*texts: str, attempt: int = 1, sequence: int = 2) -> Event:
    event = event_at(attempt, sequence)
    event.logs.lines.extend(log_line(text) for text in texts)
    return event


def succeeded_event(output: dict[str, object], *, attempt: int = 1, sequence: int = 2) -> Event:
    event = event_at(attempt, sequence)
    json_format.ParseDict(output, event.succeeded.result.output)
    return event


def failed_event(code: int, message: str, *, attempt: int = 1, sequence: int = 2) -> Event:
    event = event_at(attempt, sequence)
    event.failed.error.CopyFrom(status_pb2.Status(code=code, message=message))
    return event


def cancelled_event(*, attempt: int = 1, sequence: int = 2) -> Event:
    event = event_at(attempt, sequence)
    event.cancelled.SetInParent()
    return event


def apply_all(record: OperationRecord, event: Event, now: int = T1) -> OperationRecord:
    change = apply_event(record, event, now)
    assert change is not None, "the event should have been applied"
    return change.record


def running_record() -> OperationRecord:
    """A record a worker started (attempt 1, event sequence 1)."""
    return apply_all(pending_record(), started_event())


def error_status(error: bytes | None) -> status_pb2.Status:
    assert error is not None, "the record should carry an error"
    return status_pb2.Status.FromString(error)


def log_texts(lines: tuple[operations_pb2.LogLine, ...]) -> list[str]:
    return [line.text for line in lines]


def finished_record(state: State) -> OperationRecord:
    running = running_record()
    if state is State.SUCCEEDED:
        return apply_all(running, succeeded_event({"ok": True}))
    if state is State.FAILED:
        return apply_all(running, failed_event(code_pb2.INTERNAL, "boom"))
    return apply_all(running, cancelled_event())


TERMINAL_STATES = [State.SUCCEEDED, State.FAILED, State.CANCELLED]
