"""The Tools domain service: list and describe tools, and call them.

A call is checked (tool exists, caller may call it, arguments match the input schema) before
anything is written. A quick tool runs inline and returns a done operation; a long-running one
is handed to the dispatcher (operation and outbox row in one transaction) and returns PENDING.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from formation_mcp import paging
from formation_mcp.auth import store as auth_store
from formation_mcp.db.database import Database
from formation_mcp.db.group_commit import GroupCommit
from formation_mcp.dispatch.outbox import Pending
from formation_mcp.errors import FmcpError, InvalidArgument, PermissionDenied, ResourceExhausted
from formation_mcp.events.manager import EventManager
from formation_mcp.identity import Caller
from formation_mcp.operations import lifecycle
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.ids import operation_name
from formation_mcp.operations.lifecycle import OperationRecord
from formation_mcp.operations.manager import OperationManager, new_record
from formation_mcp.permissions import may_call_tool, permissions_of
from formation_mcp.policies.manager import PolicyManager, QuotaCheck
from formation_mcp.policies.quotas import INSTANCE_QUOTAS, relevant
from formation_mcp.policies.rules import first_match, has_quota
from formation_mcp.structs import StructSize
from formation_mcp.tools import audit
from formation_mcp.tools.approval_events import ApprovalEvents, requested_event
from formation_mcp.tools.approvals import approval_request, keep_work
from formation_mcp.tools.audit import AuditLog
from formation_mcp.tools.checks import CheckedArguments, WorkOrder, check_arguments, work_item
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import (
    MAX_REASON_CHARS,
    REASON_ARGUMENT,
    Placement,
    RegisteredTool,
    ToolRegistry,
    ToolSpec,
)
from formation_mcp.tools.runner import run_tool

PLACED_QUICK_WAIT = 15.0
"""How long the call of a quick tool placed on a node waits for its result before it returns
the pending operation (the node is busy or was just restarted: the caller can wait on it)."""
ADMISSION_BATCH = 128
"""At most this many accepted calls are written in one transaction."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FILTER_TERM = re.compile(
    r'\s*(?:category\s*=\s*"?(?P<category>[A-Za-z0-9_.-]+)"?|allowed\s*=\s*(?P<allowed>true|false))\s*'
)
_AND = re.compile(r"\s+AND\s+")


class Dispatcher(Protocol):
    """Hands long-running work to workers, in the transaction that creates the operation."""

    async def enqueue_many(
        self, conn: AsyncConnection, items: Sequence[queue_pb2.WorkItem]
    ) -> Pending: ...

    def committed(self, pending: Pending) -> None:
        """The transaction that enqueued `pending` committed: send it now."""
        ...


class ToolManager:
    def __init__(
        self,
        database: Database,
        registry: ToolRegistry,
        operations: OperationManager,
        audit_log: AuditLog,
        dispatcher: Dispatcher,
        policies: PolicyManager,
        *,
        approval_ttl_seconds: float = 3600.0,
        events: EventManager | None = None,
    ) -> None:
        """`events` records the approval requests of calls that wait for an approver."""
        self._approval_events = ApprovalEvents(events)
        self._db = database
        self._policies = policies
        self._approval_ttl_us = int(approval_ttl_seconds * 1_000_000)
        self._registry = registry
        self._operations = operations
        self._audit = audit_log
        self._dispatcher = dispatcher
        self._admissions: GroupCommit[_Admission] = GroupCommit(
            # A quota one admission exceeds fails that admission alone.
            self._admit,
            max_batch=ADMISSION_BATCH,
            isolate=(IntegrityError, ResourceExhausted),
        )

    def list_tools(
        self, caller: Caller, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[tuple[ToolSpec, FmcpError | None]], str]:
        """A page of tools, each with why the caller may not call it (None: it may).
        `filter`: `category = "vm"`, `allowed = true|false`, or both joined by AND."""
        category, allowed = _parse_filter(filter_text)
        size = paging.page_size(page_size)
        key = paging.query_key("tools", category or "", str(allowed))
        after = paging.decode_token(page_token, key) if page_token else ""
        listed = [
            (spec, self.refusal(caller, spec))
            for spec in self._registry.specs(category)
            if spec.name > after
        ]
        if allowed is not None:
            listed = [(spec, why) for spec, why in listed if (why is None) == allowed]
        page = listed[:size]
        token = paging.encode_token(page[-1][0].name, key) if len(listed) > size else ""
        return page, token

    async def refusal_now(self, account: str, tool: str) -> FmcpError | None:
        """Why `account`, with the roles it has now, may not call `tool` now (its policy
        may have changed since it called): approving must not run what it would refuse."""
        async with self._db.read() as conn:
            found = await auth_store.get_account(conn, account.removeprefix("accounts/"))
        roles = frozenset(found.roles) if found is not None and not found.disabled else frozenset()
        return self.refusal(Caller(account=account, roles=roles), self._registry.resolve(tool).spec)

    def refusal(self, caller: Caller, spec: ToolSpec) -> FmcpError | None:
        """Why the caller may not call the tool (its roles or grant, then its policy)."""
        if not may_call_tool(
            caller.permissions, read_only=spec.read_only, admin_only=spec.admin_only
        ):
            return _permission_refusal(caller, spec)
        return self._policies.refusal(caller, spec.facts)

    def get_tool(self, name: str) -> ToolSpec:
        return self._registry.resolve_resource(name).spec

    async def call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any],
        request_id: str,
        validate_only: bool,
        *,
        size: StructSize | None = None,
        wait: float = 0.0,
        reason: str = "",
    ) -> lro_pb2.Operation:
        """`size`: what `structs.arguments_from_struct` measured of `arguments` (big ones
        are checked off the event loop, see `tools.checks`). `wait` > 0: a long-running
        call's answer waits that long at most (capped by the operations' wait limit) for
        the operation to finish (call-and-wait in one RPC). `reason`: why the call is made,
        for an approver when the call needs one."""
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument.for_field("reason", f"at most {MAX_REASON_CHARS} characters")
        operation = await self._call(
            caller, name, arguments, request_id, validate_only, size=size, reason=reason
        )
        if wait > 0 and not operation.done and not _awaits_approval(operation):
            return await self._operations.wait(caller, operation.name, wait)
        return operation

    async def _call(
        self,
        caller: Caller,
        name: str,
        arguments: dict[str, Any],
        request_id: str,
        validate_only: bool,
        *,
        size: StructSize | None,
        reason: str = "",
    ) -> lro_pb2.Operation:
        tool = self._registry.resolve_resource(name)
        spec = tool.spec
        checked = await check_arguments(spec, arguments, size)
        if spec.takes_reason and REASON_ARGUMENT in arguments:  # the call's, not the tool's
            given = arguments[REASON_ARGUMENT]
            arguments = {k: v for k, v in arguments.items() if k != REASON_ARGUMENT}
            reason = reason or (given if isinstance(given, str) else "")
        audit_fields: dict[str, Any] = {
            "account": caller.account,
            "tool": spec.name,
            "arguments_sha256": checked.digest,
            "request_id": request_id,
        }
        refused = self.refusal(caller, spec)
        if refused is not None:
            await self._audit.write(
                audit.entry(**audit_fields, outcome=audit.DENIED, detail=refused.message)
            )
            raise refused
        if request_id and not _REQUEST_ID.fullmatch(request_id):
            raise InvalidArgument.for_field(
                "request_id", "1 to 128 characters of A-Z a-z 0-9 - _ (a UUID is ideal)"
            )
        if request_id and (existing := await self._existing(caller, request_id, spec)):
            await self._audit.write(
                audit.entry(**audit_fields, outcome=audit.DUPLICATE, operation_id=existing.id)
            )
            return to_operation(existing)
        if checked.invalid is not None:
            await self._audit.write(
                audit.entry(**audit_fields, outcome=audit.INVALID, detail=checked.invalid.message)
            )
            raise checked.invalid
        try:
            await self._policies.count_call(caller, spec.facts, dry_run=validate_only)
            quota = await self._quota_check(caller, spec, arguments)
            if validate_only and quota is not None:
                await self._policies.check_quotas(quota)
        except FmcpError as error:
            outcome = audit.DENIED if isinstance(error, ResourceExhausted) else audit.REJECTED
            await self._audit.write(
                audit.entry(**audit_fields, outcome=outcome, detail=error.message)
            )
            raise
        rule = first_match(self._policies.for_caller(caller).require_approval, spec.facts)
        if validate_only:
            await self._audit.write(audit.entry(**audit_fields, outcome=audit.VALIDATED))
            return _validated(spec, rule)
        placement = None
        if spec.placement is not None:
            try:
                placement = await spec.placement(caller, arguments)
            except FmcpError as error:
                await self._audit.write(
                    audit.entry(**audit_fields, outcome=audit.REJECTED, detail=error.message)
                )
                raise
        approval = None
        if rule is not None:
            approval = approval_request(rule, reason, arguments, checked.digest)
        if spec.long_running or placement is not None or approval is not None:
            operation = await self._dispatch(
                caller,
                tool,
                arguments,
                checked,
                request_id,
                audit_fields,
                placement,
                quota,
                approval,
            )
            if not spec.long_running_for(arguments) and not operation.done and approval is None:
                # A quick tool placed on a node: answer with its result, as for any quick tool.
                return await self._operations.wait(caller, operation.name, PLACED_QUICK_WAIT)
            return operation
        return await self._run_inline(caller, tool, arguments, checked, request_id, audit_fields)

    async def _quota_check(
        self, caller: Caller, spec: ToolSpec, arguments: dict[str, Any]
    ) -> QuotaCheck | None:
        """The quotas the caller's policy sets that this call adds to, and what it adds (a
        long-running call: one more operation not done; an instance, a build)."""
        policy = self._policies.for_caller(caller)
        demand = None
        if spec.demand is not None and has_quota(policy, (*INSTANCE_QUOTAS, "max_builds_per_hour")):
            demand = await spec.demand(caller, arguments)
        quotas = relevant(policy, demand, long_running=spec.long_running)
        if not quotas:
            return None
        return QuotaCheck(caller.account, policy, tuple(quotas), demand, spec.name)

    async def _existing(
        self, caller: Caller, request_id: str, spec: ToolSpec
    ) -> OperationRecord | None:
        existing = await self._operations.by_request_id(caller.account, request_id)
        if existing is not None and existing.tool != spec.name:
            raise InvalidArgument.for_field(
                "request_id", f"was already used for a call of {existing.tool}; use a new one"
            )
        return existing

    async def _run_inline(
        self,
        caller: Caller,
        tool: RegisteredTool,
        arguments: dict[str, Any],
        checked: CheckedArguments,
        request_id: str,
        audit_fields: dict[str, Any],
    ) -> lro_pb2.Operation:
        try:
            created = await self._operations.create(
                caller.account, tool.spec.name, request_id=request_id or None
            )
        except IntegrityError:  # the same request_id raced in: answer with the first call's
            return await self._call(
                caller, tool.spec.resource_name, arguments, request_id, False, size=checked.size
            )
        context = ToolContext(
            operation=operation_name(created.id),
            tool=tool.spec.name,
            owner=caller.account,
            attempt=1,
            emit=self._apply,
            caller_is_admin=caller.is_admin,
        )
        await run_tool(tool, context, arguments, node="api")
        final = await self._operations.record(created.id)
        assert final is not None
        outcome = audit.SUCCEEDED if final.error is None else audit.FAILED
        await self._audit.write(
            audit.entry(**audit_fields, outcome=outcome, operation_id=created.id)
        )
        return to_operation(final)

    async def _apply(self, event: queue_pb2.OperationEvent) -> None:
        await self._operations.apply_event(event)

    async def _dispatch(
        self,
        caller: Caller,
        tool: RegisteredTool,
        arguments: dict[str, Any],
        checked: CheckedArguments,
        request_id: str,
        audit_fields: dict[str, Any],
        placement: Placement | None,
        quota: QuotaCheck | None,
        approval: operations_pb2.Approval | None = None,
    ) -> lro_pb2.Operation:
        """The operation, its work item in the outbox and the audit entry, written in one
        transaction (together with other calls' admissions that arrive meanwhile), in which
        the caller's quotas are checked too."""
        created = new_record(caller.account, tool.spec.name, request_id or None)
        if approval is not None:
            approval.expire_time.FromMicroseconds(created.create_time + self._approval_ttl_us)
            created = lifecycle.awaiting_approval(created, approval)
        order = WorkOrder(operation_name(created.id), tool.spec.name, caller.account, placement)
        item = await work_item(order, arguments, checked)
        outcome = audit.ACCEPTED if approval is None else audit.AWAITING_APPROVAL
        entry = audit.entry(**audit_fields, outcome=outcome, operation_id=created.id)
        admission = _Admission(created, to_operation(created), item, entry, quota)
        try:
            await self._admissions.submit(admission)
        except ResourceExhausted as error:
            await self._audit.write(
                audit.entry(**audit_fields, outcome=audit.DENIED, detail=error.message)
            )
            raise
        except IntegrityError:  # the same request_id raced in: answer with the first call's
            return await self._call(
                caller, tool.spec.resource_name, arguments, request_id, False, size=checked.size
            )
        return admission.snapshot

    async def _admit(self, admissions: Sequence[_Admission]) -> None:
        created = [(a.operation, a.snapshot) for a in admissions]
        async with self._operations.admitting(created) as conn:
            for admission in admissions:
                if admission.quota is not None:
                    await self._policies.admit(conn, admission.operation.id, admission.quota)
            queued = [a.work for a in admissions if not a.awaiting]
            pending = await self._dispatcher.enqueue_many(conn, queued) if queued else None
            waiting = [(a.operation, a.work) for a in admissions if a.awaiting]
            if waiting:  # queued when approved (tools.approvals)
                await keep_work(conn, waiting, self._approval_ttl_us)
            await self._audit.insert_many(conn, [a.audit for a in admissions])
            requested = [requested_event(record) for record, _work in waiting]
            recorded = await self._approval_events.record(conn, requested)
        if pending is not None:
            self._dispatcher.committed(pending)
        self._approval_events.committed(recorded)


@dataclass(frozen=True, slots=True)
class _Admission:
    """What one transaction writes for an accepted long-running call."""

    operation: OperationRecord
    snapshot: lro_pb2.Operation
    """The operation as the caller gets it (and the snapshot cache keeps it)."""
    work: queue_pb2.WorkItem
    audit: dict[str, Any]
    quota: QuotaCheck | None

    @property
    def awaiting(self) -> bool:
        """The call waits for an approval: its work is kept aside, not queued."""
        return self.operation.state is lifecycle.State.AWAITING_APPROVAL


def _awaits_approval(operation: lro_pb2.Operation) -> bool:
    """No call-and-wait for a call waiting for a person: it answers at once."""
    metadata = operations_pb2.OperationMetadata()
    operation.metadata.Unpack(metadata)
    return metadata.state == operations_pb2.OperationMetadata.AWAITING_APPROVAL


def _parse_filter(filter_text: str) -> tuple[str | None, bool | None]:
    category: str | None = None
    allowed: bool | None = None
    if not filter_text.strip():
        return category, allowed
    for term in _AND.split(filter_text.strip()):
        match = _FILTER_TERM.fullmatch(term)
        if match is None:
            raise InvalidArgument.for_field(
                "filter",
                'supported: category = "<name>", allowed = true|false, joined by AND, '
                'e.g. category = "vm" AND allowed = true',
            )
        if match.group("category"):
            category = match.group("category")
        else:
            allowed = match.group("allowed") == "true"
    return category, allowed


def _permission_refusal(caller: Caller, spec: ToolSpec) -> PermissionDenied:
    if may_call_tool(
        permissions_of(caller.roles), read_only=spec.read_only, admin_only=spec.admin_only
    ):  # the roles would allow it: the token's grant (scope) does not
        return PermissionDenied(
            f"this token's grant is {caller.scope}: {spec.name} changes things, so it "
            "needs a grant with full access",
            reason="SCOPE_INSUFFICIENT",
            metadata={"scope": caller.scope, "tool": spec.name},
        )
    return PermissionDenied(
        f"the caller's roles ({', '.join(sorted(caller.roles))}) may not call {spec.name}",
        reason="MISSING_PERMISSION",
        metadata={"permission": spec.permission, "tool": spec.name},
    )


def _validated(spec: ToolSpec, approval_rule: str | None = None) -> lro_pb2.Operation:
    """validate_only: a done operation with no name and an empty result."""
    message = "Arguments are valid; nothing was started (validate_only)."
    if approval_rule is not None:
        message += f" The call would wait for an approval (require_approval: {approval_rule})."
    metadata = operations_pb2.OperationMetadata(
        tool=spec.name,
        state=operations_pb2.OperationMetadata.SUCCEEDED,
        progress_percent=100,
        status_message=message,
    )
    operation = lro_pb2.Operation(done=True)
    operation.metadata.Pack(metadata)
    operation.response.Pack(operations_pb2.ToolResult())
    return operation
