"""The operation state machine: pure functions from a record and a change to the next record.

PENDING -> RUNNING -> SUCCEEDED | FAILED | CANCELLED, and PENDING -> CANCELLED | FAILED.
A call that needs a human approval starts AWAITING_APPROVAL: approved, it becomes PENDING;
denied or expired, FAILED; cancelled, CANCELLED. Worker events never move it (no work was
queued for it yet).
Terminal states never change again. Worker events are ordered by (attempt, sequence); an
event that is not newer than the last one applied is a duplicate and changes nothing, which
makes applying events idempotent under at-least-once delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.rpc import code_pb2, status_pb2

RECENT_LOG_LINES = 20
MAX_STAGE_CHARS = 128
MAX_MESSAGE_CHARS = 2048


class State(IntEnum):
    PENDING = operations_pb2.OperationMetadata.PENDING
    RUNNING = operations_pb2.OperationMetadata.RUNNING
    SUCCEEDED = operations_pb2.OperationMetadata.SUCCEEDED
    FAILED = operations_pb2.OperationMetadata.FAILED
    CANCELLED = operations_pb2.OperationMetadata.CANCELLED
    AWAITING_APPROVAL = operations_pb2.OperationMetadata.AWAITING_APPROVAL

    @property
    def is_terminal(self) -> bool:
        return self in (State.SUCCEEDED, State.FAILED, State.CANCELLED)


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """Everything stored about an operation (times in microseconds since the epoch)."""

    id: str
    owner: str
    tool: str
    state: State
    progress_percent: int
    stage: str
    status_message: str
    request_id: str | None
    cancel_requested: bool
    attempt: int
    sequence: int
    event_attempt: int
    event_sequence: int
    recent_logs: tuple[operations_pb2.LogLine, ...]
    response: bytes | None
    error: bytes | None
    create_time: int
    update_time: int
    end_time: int | None
    approval: bytes | None = None
    """formation.mcp.v1.Approval, serialized, when the call needed one."""

    @property
    def done(self) -> bool:
        return self.state.is_terminal


@dataclass(frozen=True, slots=True)
class Change:
    """The record after a change, and the log lines that change added."""

    record: OperationRecord
    added_logs: tuple[operations_pb2.LogLine, ...] = ()


def new_record(
    operation_id: str, owner: str, tool: str, request_id: str | None, now: int
) -> OperationRecord:
    return OperationRecord(
        id=operation_id,
        owner=owner,
        tool=tool,
        state=State.PENDING,
        progress_percent=0,
        stage="",
        status_message="Waiting for a worker.",
        request_id=request_id,
        cancel_requested=False,
        attempt=0,
        sequence=1,
        event_attempt=0,
        event_sequence=0,
        recent_logs=(),
        response=None,
        error=None,
        create_time=now,
        update_time=now,
        end_time=None,
    )


def cancelled_status() -> status_pb2.Status:
    return status_pb2.Status(code=code_pb2.CANCELLED, message="The operation was cancelled.")


def request_cancel(record: OperationRecord, now: int) -> Change | None:
    """Cancel a pending operation at once, flag a running one for its worker;
    a finished one does not change."""
    if record.done:
        return None
    if record.state in (State.PENDING, State.AWAITING_APPROVAL):
        advanced = replace(record, sequence=record.sequence + 1)
        return Change(_finish(advanced, State.CANCELLED, now, error=cancelled_status()))
    if record.cancel_requested:
        return None
    return Change(
        replace(
            record,
            cancel_requested=True,
            status_message="Cancellation requested.",
            sequence=record.sequence + 1,
            update_time=now,
        )
    )


def apply_event(
    record: OperationRecord, event: queue_pb2.OperationEvent, now: int
) -> Change | None:
    """The change an event makes, or None when it is a duplicate, stale or too late."""
    position = (event.attempt, event.sequence)
    if record.done or position <= (record.event_attempt, record.event_sequence):
        return None
    if record.state is State.AWAITING_APPROVAL:
        return None  # no work was queued: nothing may run it before it is approved
    base = replace(
        record,
        attempt=max(record.attempt, event.attempt, 1),
        event_attempt=event.attempt,
        event_sequence=event.sequence,
        sequence=record.sequence + 1,
        update_time=now,
    )
    kind = event.WhichOneof("kind")
    if kind == "started":
        message = "Running." if not record.cancel_requested else record.status_message
        return Change(replace(base, state=State.RUNNING, status_message=message))
    if kind == "progress":
        return Change(_progress(base, event.progress))
    if kind == "logs":
        return _append_logs(base, event.logs.lines, now)
    if kind == "succeeded":
        result = event.succeeded.result.SerializeToString(deterministic=True)
        return Change(_finish(base, State.SUCCEEDED, now, response=result))
    if kind == "failed":
        error = status_pb2.Status()
        error.CopyFrom(event.failed.error)
        if error.code == code_pb2.OK:
            error.code = code_pb2.UNKNOWN
        return Change(_finish(base, State.FAILED, now, error=error))
    if kind == "cancelled":
        return Change(_finish(base, State.CANCELLED, now, error=cancelled_status()))
    return None


def _progress(
    record: OperationRecord, progress: queue_pb2.OperationEvent.Progress
) -> OperationRecord:
    percent = max(record.progress_percent, min(100, max(0, progress.percent)))
    return replace(
        record,
        state=State.RUNNING,
        progress_percent=percent,
        stage=progress.stage[:MAX_STAGE_CHARS] or record.stage,
        status_message=progress.message[:MAX_MESSAGE_CHARS] or record.status_message,
    )


def _append_logs(
    record: OperationRecord, lines: Sequence[operations_pb2.LogLine], now: int
) -> Change:
    added = []
    for line in lines:
        stamped = operations_pb2.LogLine()
        stamped.CopyFrom(line)
        stamped.sequence = record.sequence
        if not stamped.HasField("time"):
            stamped.time.FromMicroseconds(now)
        added.append(stamped)
    recent = (*record.recent_logs, *added)[-RECENT_LOG_LINES:]
    state = State.RUNNING if record.state is State.PENDING else record.state
    return Change(replace(record, recent_logs=recent, state=state), tuple(added))


def _finish(
    record: OperationRecord,
    state: State,
    now: int,
    *,
    response: bytes | None = None,
    error: status_pb2.Status | None = None,
) -> OperationRecord:
    message = {
        State.SUCCEEDED: "Succeeded.",
        State.FAILED: f"Failed: {error.message}" if error is not None else "Failed.",
        State.CANCELLED: "Cancelled.",
    }[state]
    return replace(
        record,
        state=state,
        progress_percent=100 if state is State.SUCCEEDED else record.progress_percent,
        status_message=message[:MAX_MESSAGE_CHARS],
        response=response,
        error=error.SerializeToString(deterministic=True) if error is not None else None,
        update_time=now,
        end_time=now,
    )


# -- human approval ----------------------------------------------------------------------------


def awaiting_approval(
    record: OperationRecord, approval: operations_pb2.Approval
) -> OperationRecord:
    """A new operation (from `new_record`) that waits for an approver."""
    name = f"operations/{record.id}"
    return replace(
        record,
        state=State.AWAITING_APPROVAL,
        status_message=(
            f"{record.tool} needs approval (require_approval: {approval.rule}); {name} waits "
            "for an approver"
        )[:MAX_MESSAGE_CHARS],
        approval=approval.SerializeToString(deterministic=True),
    )


def approval_of(record: OperationRecord) -> operations_pb2.Approval:
    approval = operations_pb2.Approval()
    if record.approval is not None:
        approval.ParseFromString(record.approval)
    return approval


def _decided(
    record: OperationRecord, state: operations_pb2.Approval.State.ValueType, by: str, comment: str
) -> bytes:
    approval = approval_of(record)
    approval.state = state
    approval.decided_by = by
    approval.comment = comment
    return approval.SerializeToString(deterministic=True)


def approve(record: OperationRecord, by: str, comment: str, now: int) -> Change | None:
    """Approved: PENDING (its work is queued in the same transaction); None unless it waits."""
    if record.state is not State.AWAITING_APPROVAL:
        return None
    return Change(
        replace(
            record,
            state=State.PENDING,
            status_message=f"Approved by {by}; waiting for a worker."[:MAX_MESSAGE_CHARS],
            approval=_decided(record, operations_pb2.Approval.APPROVED, by, comment),
            sequence=record.sequence + 1,
            update_time=now,
        )
    )


def deny(record: OperationRecord, by: str, comment: str, now: int) -> Change | None:
    """Denied: FAILED with PERMISSION_DENIED and the approver's comment."""
    if record.state is not State.AWAITING_APPROVAL:
        return None
    error = status_pb2.Status(
        code=code_pb2.PERMISSION_DENIED,
        message=f"{record.tool} was denied by {by}: {comment}"[:MAX_MESSAGE_CHARS],
    )
    decided = replace(
        record,
        approval=_decided(record, operations_pb2.Approval.DENIED, by, comment),
        sequence=record.sequence + 1,
    )
    return Change(_finish(decided, State.FAILED, now, error=error))


def expire(record: OperationRecord, now: int) -> Change | None:
    """Nobody decided in time: FAILED with DEADLINE_EXCEEDED."""
    if record.state is not State.AWAITING_APPROVAL:
        return None
    error = status_pb2.Status(
        code=code_pb2.DEADLINE_EXCEEDED,
        message=f"{record.tool} was not approved in time (FMCP_APPROVAL_TTL); call it again",
    )
    decided = replace(
        record,
        approval=_decided(record, operations_pb2.Approval.EXPIRED, "", ""),
        sequence=record.sequence + 1,
    )
    return Change(_finish(decided, State.FAILED, now, error=error))
