"""Human approval of tool calls: a call of a tool its caller's policy names in
`require_approval` is admitted AWAITING_APPROVAL with its work kept aside (`approval_work`);
an approver (role `approver`, or an admin; never the caller itself) approves it, which makes it
PENDING and queues its work in the same transaction, or denies it (FAILED, PERMISSION_DENIED).
Nobody deciding within FMCP_APPROVAL_TTL fails it with DEADLINE_EXCEEDED; cancelling it while it
waits cancels it at once. Every decision is audited."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import approval_work
from formation_mcp.dispatch.outbox import Pending
from formation_mcp.errors import (
    FailedPrecondition,
    FmcpError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import EventRecord
from formation_mcp.identity import Caller
from formation_mcp.operations import lifecycle
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.ids import operation_name, parse_operation_name
from formation_mcp.operations.lifecycle import Change, OperationRecord, State
from formation_mcp.operations.manager import OperationManager
from formation_mcp.permissions import OPERATIONS_APPROVE
from formation_mcp.tools import audit
from formation_mcp.tools.approval_events import ApprovalEvents
from formation_mcp.tools.audit import AuditLog

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 500
MAX_SHOWN_ARGUMENTS_CHARS = 4096
"""The arguments an approver sees with the request, at most (as JSON)."""
EXPIRY_BATCH = 100
APPROVED, DENIED, EXPIRED = "APPROVED", "DENIED", "EXPIRED"


Decider = Callable[[OperationRecord], Change | None]
Also = Callable[[AsyncConnection, Change], Awaitable[None]]


Recheck = Callable[[str, str], Awaitable[FmcpError | None]]
"""Why an account may not call a tool now (ToolManager.refusal_now), or None."""


class Dispatcher(Protocol):
    """What approving needs of the outbox (the ToolManager's dispatcher)."""

    async def enqueue_many(
        self, conn: AsyncConnection, items: Sequence[queue_pb2.WorkItem]
    ) -> Pending: ...

    def committed(self, pending: Pending) -> None: ...


def approval_request(
    rule: str, reason: str, arguments: dict[str, Any], digest: str
) -> operations_pb2.Approval:
    """What an approver sees of a call: why, which rule, and its arguments (when small)."""
    approval = operations_pb2.Approval(
        state=operations_pb2.Approval.REQUESTED,
        reason=reason,
        rule=rule,
        arguments_sha256=digest,
    )
    if len(json.dumps(arguments, default=str)) <= MAX_SHOWN_ARGUMENTS_CHARS:
        json_format.ParseDict(arguments, approval.arguments)
    else:
        approval.arguments_truncated = True
    return approval


async def keep_work(
    conn: AsyncConnection, items: Sequence[tuple[OperationRecord, queue_pb2.WorkItem]], ttl_us: int
) -> None:
    """In the admitting transaction: the work of calls that wait for an approval."""
    await conn.execute(
        approval_work.insert(),
        [
            {
                "operation_id": record.id,
                "owner": record.owner,
                "work": item.SerializeToString(),
                "expire_time": record.create_time + ttl_us,
            }
            for record, item in items
        ],
    )


class ApprovalManager:
    def __init__(
        self,
        database: Database,
        operations: OperationManager,
        dispatcher: Dispatcher,
        audit_log: AuditLog,
        recheck: Recheck,
        events: EventManager | None = None,
    ) -> None:
        """`recheck`: the caller's roles and policy as they are when it is approved; `events`
        records each decision (`tools.approval_events`)."""
        self._events = ApprovalEvents(events)
        self._db = database
        self._operations = operations
        self._dispatcher = dispatcher
        self._audit = audit_log
        self._recheck = recheck

    async def approve(self, caller: Caller, name: str, comment: str) -> lro_pb2.Operation:
        record = await self._waiting(caller, name, comment, required=False)
        refused = await self._recheck(record.owner, record.tool)
        if refused is not None:  # the policy changed while it waited
            raise FailedPrecondition(
                f"{record.owner} may no longer call {record.tool} ({refused.message}); "
                "deny it instead",
                reason="POLICY_CHANGED",
                metadata={"name": operation_name(record.id), "tool": record.tool},
            )
        pending: list[Pending] = []

        async def queue(conn: AsyncConnection, change: Change) -> None:
            row = (
                await conn.execute(
                    sa.delete(approval_work)
                    .where(approval_work.c.operation_id == change.record.id)
                    .returning(approval_work.c.work)
                )
            ).first()
            if row is None:  # pragma: no cover - written with the operation, removed with it
                raise FailedPrecondition(
                    f"{operation_name(change.record.id)} has no work to queue",
                    reason="APPROVAL_WORK_MISSING",
                )
            pending.append(
                await self._dispatcher.enqueue_many(conn, [queue_pb2.WorkItem.FromString(row.work)])
            )

        decided = await self._decide(
            caller,
            record,
            lambda r: lifecycle.approve(r, caller.account, comment, now_us()),
            queue,
            APPROVED,
            comment,
        )
        for each in pending:
            self._dispatcher.committed(each)
        return decided

    async def deny(self, caller: Caller, name: str, comment: str) -> lro_pb2.Operation:
        record = await self._waiting(caller, name, comment, required=True)
        return await self._decide(
            caller,
            record,
            lambda r: lifecycle.deny(r, caller.account, comment, now_us()),
            _drop_work,
            DENIED,
            comment,
        )

    async def expire_due(self) -> int:
        """Fail the calls whose approval did not come in time; returns how many."""
        async with self._db.read() as conn:
            due = (
                (
                    await conn.execute(
                        sa.select(approval_work.c.operation_id)
                        .where(approval_work.c.expire_time < now_us())
                        .limit(EXPIRY_BATCH)
                    )
                )
                .scalars()
                .all()
            )
        for operation_id in due:
            await self._expire_one(operation_id)
        return len(due)

    async def _expire_one(self, operation_id: str) -> None:
        expired: list[Change] = []

        def expire(record: OperationRecord) -> Change | None:
            change = lifecycle.expire(record, now_us())
            expired[:] = [change] if change is not None else []
            return change

        recorded: list[EventRecord] = []
        record = await self._operations.transition(
            operation_id, expire, self._events.with_decision(_drop_work, recorded, now_us())
        )
        self._events.committed(recorded)
        if not expired:  # cancelled, decided or deleted meanwhile (here or elsewhere)
            async with self._db.write() as conn:
                await _delete_work(conn, operation_id)
        elif record is not None:
            await self._audit.write(
                audit.entry(
                    account="",
                    tool=record.tool,
                    arguments_sha256="",
                    outcome=EXPIRED,
                    operation_id=record.id,
                )
            )

    async def run(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.expire_due()
            except Exception:
                log.warning("could not expire approvals", exc_info=True)
            await asyncio.sleep(interval_seconds)

    async def _waiting(
        self, caller: Caller, name: str, comment: str, *, required: bool
    ) -> OperationRecord:
        """The operation, if the caller may decide on it now."""
        if required and not comment.strip():
            raise InvalidArgument.for_field("comment", "say why it is denied (the caller reads it)")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidArgument.for_field("comment", f"at most {MAX_COMMENT_CHARS} characters")
        operation_id = parse_operation_name(name)
        record = await self._operations.record(operation_id)
        awaiting = record is not None and record.state is State.AWAITING_APPROVAL
        if record is None or not (awaiting or caller.can_see(record.owner)):
            raise NotFound(
                f"{operation_name(operation_id)} not found",
                reason="OPERATION_NOT_FOUND",
                metadata={"name": operation_name(operation_id)},
            )
        if not caller.can(OPERATIONS_APPROVE):  # pragma: no cover - the interceptor checks
            raise PermissionDenied("approving needs the role approver", reason="NOT_APPROVER")
        if record.owner == caller.account:
            raise PermissionDenied(
                f"{operation_name(operation_id)} is your own call: another approver must "
                "decide on it",
                reason="SELF_APPROVAL",
                metadata={"name": operation_name(operation_id)},
            )
        if not awaiting:
            raise _not_waiting(record)
        return record

    async def _decide(
        self,
        caller: Caller,
        record: OperationRecord,
        decide: Decider,
        also: Also,
        outcome: str,
        comment: str,
    ) -> lro_pb2.Operation:
        applied = False

        def deciding(current: OperationRecord) -> Change | None:
            nonlocal applied
            change = decide(current)
            applied = change is not None
            return change

        recorded: list[EventRecord] = []
        decided = await self._operations.transition(
            record.id, deciding, self._events.with_decision(also, recorded, now_us())
        )
        self._events.committed(recorded)
        if decided is None:
            raise NotFound(
                f"{operation_name(record.id)} not found",
                reason="OPERATION_NOT_FOUND",
                metadata={"name": operation_name(record.id)},
            )
        if not applied:
            raise _not_waiting(decided)  # decided, cancelled or expired meanwhile
        await self._audit.write(
            audit.entry(
                account=caller.account,
                tool=decided.tool,
                arguments_sha256="",
                outcome=outcome,
                operation_id=decided.id,
                detail=comment,
            )
        )
        return to_operation(decided)


async def _drop_work(conn: AsyncConnection, change: Change) -> None:
    await _delete_work(conn, change.record.id)


async def _delete_work(conn: AsyncConnection, operation_id: str) -> None:
    await conn.execute(sa.delete(approval_work).where(approval_work.c.operation_id == operation_id))


def _not_waiting(record: OperationRecord) -> FailedPrecondition:
    name = operation_name(record.id)
    return FailedPrecondition(
        f"{name} does not wait for an approval (it is {record.state.name}); nothing to decide",
        reason="OPERATION_NOT_AWAITING_APPROVAL",
        metadata={"name": name, "state": record.state.name},
    )
