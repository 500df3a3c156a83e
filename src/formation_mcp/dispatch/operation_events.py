"""The events of operations that end: `operation.succeeded`, `operation.failed` and
`operation.cancelled`, recorded in the transaction that ends the operation (so exactly once,
whichever replica or path ends it: a worker's terminal event, a dead letter, a cancel).

Only the operations of long-running tools get them: those are the ones callers follow; a
quick tool's answer is its own outcome (and vm.events would otherwise record itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from google.rpc import code_pb2, status_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import (
    OPERATION_CANCELLED,
    OPERATION_FAILED,
    OPERATION_SUCCEEDED,
    NewEvent,
    Severity,
    bounded_message,
)
from formation_mcp.operations.ids import operation_name
from formation_mcp.operations.lifecycle import OperationRecord, State


class OperationOutcomes:
    """The `on_done` hook of OperationManager."""

    def __init__(self, events: EventManager, reports: Callable[[str], bool]) -> None:
        """`reports(tool)`: whether operations of that tool get events."""
        self._events = events
        self._reports = reports

    async def __call__(
        self, conn: AsyncConnection, ended: Sequence[OperationRecord]
    ) -> Callable[[], None]:
        new = [outcome_event(record) for record in ended if self._reports(record.tool)]
        recorded = await self._events.record_in_transaction(conn, new)
        return lambda: self._events.committed(recorded)


def outcome_event(record: OperationRecord) -> NewEvent:
    name = operation_name(record.id)
    data: dict[str, object] = {"tool": record.tool, "state": record.state.name}
    if record.state is State.SUCCEEDED:
        kind, severity, message = OPERATION_SUCCEEDED, Severity.INFO, f"{record.tool} succeeded"
    elif record.state is State.CANCELLED:
        kind, severity, message = OPERATION_CANCELLED, Severity.WARNING, f"{record.tool} cancelled"
    else:
        error = status_pb2.Status.FromString(record.error or b"")
        data["error_code"] = _code_name(error.code)
        data["error_message"] = bounded_message(error.message)
        kind, severity = OPERATION_FAILED, Severity.ERROR
        message = f"{record.tool} failed: {error.message}"
    return NewEvent(
        key=f"{name}:done",
        type=kind,
        resource=name,
        owner=record.owner,
        time=record.end_time or record.update_time,
        severity=severity,
        message=bounded_message(message),
        data=data,
    )


def _code_name(code: int) -> str:
    try:
        return str(code_pb2.Code.Name(code))
    except ValueError:
        return str(code)
