"""The events of human approvals: `operation.approval_requested` when a call is admitted to
wait for an approver, then `operation.approved`, `operation.denied` or
`operation.approval_expired`; each recorded in the transaction that makes the change (so
exactly once, whichever replica makes it), and each the operation owner's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from formation.mcp.v1 import operations_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import (
    OPERATION_APPROVAL_EXPIRED,
    OPERATION_APPROVAL_REQUESTED,
    OPERATION_APPROVED,
    OPERATION_DENIED,
    EventRecord,
    NewEvent,
    Severity,
    bounded_message,
)
from formation_mcp.operations.ids import operation_name
from formation_mcp.operations.lifecycle import Change, OperationRecord, approval_of

Approval = operations_pb2.Approval
_DECIDED = {
    Approval.APPROVED: (OPERATION_APPROVED, Severity.INFO, "approved"),
    Approval.DENIED: (OPERATION_DENIED, Severity.WARNING, "denied"),
    Approval.EXPIRED: (OPERATION_APPROVAL_EXPIRED, Severity.WARNING, "not approved in time"),
}


def requested_event(record: OperationRecord) -> NewEvent:
    approval = approval_of(record)
    name = operation_name(record.id)
    return NewEvent(
        key=f"{name}:approval_requested",
        type=OPERATION_APPROVAL_REQUESTED,
        resource=name,
        owner=record.owner,
        time=record.create_time,
        severity=Severity.WARNING,
        message=f"{record.tool} needs approval (require_approval: {approval.rule}); "
        f"{name} waits for an approver",
        data={
            "tool": record.tool,
            "rule": approval.rule,
            "reason": bounded_message(approval.reason),
            "expire_time": approval.expire_time.ToJsonString(),
        },
    )


def decided_event(record: OperationRecord, time: int) -> NewEvent | None:
    """The event of the decision `record` carries; None when it carries none."""
    approval = approval_of(record)
    if approval.state not in _DECIDED:
        return None
    kind, severity, said = _DECIDED[approval.state]
    name = operation_name(record.id)
    by = f" by {approval.decided_by}" if approval.decided_by else ""
    comment = f": {approval.comment}" if approval.comment else ""
    return NewEvent(
        key=f"{name}:{kind}",
        type=kind,
        resource=name,
        owner=record.owner,
        time=time,
        severity=severity,
        message=bounded_message(f"{record.tool} {said}{by}{comment}"),
        data={
            "tool": record.tool,
            "decided_by": approval.decided_by,
            "comment": bounded_message(approval.comment),
        },
    )


class ApprovalEvents:
    """Records the events above in the caller's transaction; `committed` after its commit."""

    def __init__(self, events: EventManager | None) -> None:
        self._events = events

    async def record(self, conn: AsyncConnection, new: Sequence[NewEvent]) -> list[EventRecord]:
        if self._events is None or not new:
            return []
        return await self._events.record_in_transaction(conn, new)

    def committed(self, recorded: Sequence[EventRecord]) -> None:
        if self._events is not None:
            self._events.committed(recorded)

    def with_decision(
        self,
        also: Callable[[AsyncConnection, Change], Awaitable[None]],
        recorded: list[EventRecord],
        time: int,
    ) -> Callable[[AsyncConnection, Change], Awaitable[None]]:
        """`also` (what a decision writes besides the operation), then its event; what was
        recorded goes to `recorded`."""

        async def deciding(conn: AsyncConnection, change: Change) -> None:
            await also(conn, change)
            event = decided_event(change.record, time)
            recorded.extend(await self.record(conn, [event] if event is not None else []))

        return deciding
