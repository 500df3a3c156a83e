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
from formation_mcp.db.database import Database
from formation_mcp.db.group_commit import GroupCommit
from formation_mcp.dispatch.outbox import Pending
from formation_mcp.errors import FmcpError, InvalidArgument, PermissionDenied
from formation_mcp.identity import Caller
from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.ids import operation_name
from formation_mcp.operations.lifecycle import OperationRecord
from formation_mcp.operations.manager import OperationManager, new_record
from formation_mcp.permissions import may_call_tool, permissions_of
from formation_mcp.structs import StructSize
from formation_mcp.tools import audit
from formation_mcp.tools.audit import AuditLog
from formation_mcp.tools.checks import CheckedArguments, WorkOrder, check_arguments, work_item
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import Placement, RegisteredTool, ToolRegistry, ToolSpec
from formation_mcp.tools.runner import run_tool

PLACED_QUICK_WAIT = 15.0
"""How long the call of a quick tool placed on a node waits for its result before it returns
the pending operation (the node is busy or was just restarted: the caller can wait on it)."""
ADMISSION_BATCH = 128
"""At most this many accepted calls are written in one transaction."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_CATEGORY_FILTER = re.compile(r'\s*category\s*=\s*"?([A-Za-z0-9_.-]+)"?\s*')


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
    ) -> None:
        self._db = database
        self._registry = registry
        self._operations = operations
        self._audit = audit_log
        self._dispatcher = dispatcher
        self._admissions: GroupCommit[_Admission] = GroupCommit(
            self._admit, max_batch=ADMISSION_BATCH, isolate=(IntegrityError,)
        )

    def list_tools(
        self, filter_text: str, page_size: int, page_token: str
    ) -> tuple[list[ToolSpec], str]:
        category = None
        if filter_text.strip():
            match = _CATEGORY_FILTER.fullmatch(filter_text)
            if match is None:
                raise InvalidArgument.for_field(
                    "filter", 'only `category = "<name>"` is supported, e.g. category = "vm"'
                )
            category = match.group(1)
        size = paging.page_size(page_size)
        key = paging.query_key("tools", category or "")
        after = paging.decode_token(page_token, key) if page_token else ""
        specs = [s for s in self._registry.specs(category) if s.name > after]
        page = specs[:size]
        token = paging.encode_token(page[-1].name, key) if len(specs) > size else ""
        return page, token

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
    ) -> lro_pb2.Operation:
        """`size`: what `structs.arguments_from_struct` measured of `arguments` (big ones
        are checked off the event loop, see `tools.checks`). `wait` > 0: a long-running
        call's answer waits that long at most (capped by the operations' wait limit) for
        the operation to finish (call-and-wait in one RPC)."""
        operation = await self._call(caller, name, arguments, request_id, validate_only, size=size)
        if wait > 0 and not operation.done:
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
    ) -> lro_pb2.Operation:
        tool = self._registry.resolve_resource(name)
        spec = tool.spec
        checked = await check_arguments(spec, arguments, size)
        audit_fields: dict[str, Any] = {
            "account": caller.account,
            "tool": spec.name,
            "arguments_sha256": checked.digest,
            "request_id": request_id,
        }
        if not may_call_tool(
            caller.permissions, read_only=spec.read_only, admin_only=spec.admin_only
        ):
            await self._audit.write(audit.entry(**audit_fields, outcome=audit.DENIED))
            if may_call_tool(
                permissions_of(caller.roles), read_only=spec.read_only, admin_only=spec.admin_only
            ):  # the roles would allow it: the token's grant (scope) does not
                raise PermissionDenied(
                    f"this token's grant is {caller.scope}: {spec.name} changes things, so it "
                    "needs a grant with full access",
                    reason="SCOPE_INSUFFICIENT",
                    metadata={"scope": caller.scope, "tool": spec.name},
                )
            raise PermissionDenied(
                f"the caller's roles ({', '.join(sorted(caller.roles))}) may not call {spec.name}",
                reason="MISSING_PERMISSION",
                metadata={"permission": spec.permission, "tool": spec.name},
            )
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
        if validate_only:
            await self._audit.write(audit.entry(**audit_fields, outcome=audit.VALIDATED))
            return _validated(spec)
        placement = None
        if spec.placement is not None:
            try:
                placement = await spec.placement(caller, arguments)
            except FmcpError as error:
                await self._audit.write(
                    audit.entry(**audit_fields, outcome=audit.REJECTED, detail=error.message)
                )
                raise
        if spec.long_running or placement is not None:
            operation = await self._dispatch(
                caller, tool, arguments, checked, request_id, audit_fields, placement
            )
            if not spec.long_running_for(arguments) and not operation.done:
                # A quick tool placed on a node: answer with its result, as for any quick tool.
                return await self._operations.wait(caller, operation.name, PLACED_QUICK_WAIT)
            return operation
        return await self._run_inline(caller, tool, arguments, checked, request_id, audit_fields)

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
    ) -> lro_pb2.Operation:
        """The operation, its work item in the outbox and the audit entry, written in one
        transaction (together with other calls' admissions that arrive meanwhile)."""
        created = new_record(caller.account, tool.spec.name, request_id or None)
        order = WorkOrder(operation_name(created.id), tool.spec.name, caller.account, placement)
        item = await work_item(order, arguments, checked)
        entry = audit.entry(**audit_fields, outcome=audit.ACCEPTED, operation_id=created.id)
        admission = _Admission(created, to_operation(created), item, entry)
        try:
            await self._admissions.submit(admission)
        except IntegrityError:  # the same request_id raced in: answer with the first call's
            return await self._call(
                caller, tool.spec.resource_name, arguments, request_id, False, size=checked.size
            )
        return admission.snapshot

    async def _admit(self, admissions: Sequence[_Admission]) -> None:
        created = [(a.operation, a.snapshot) for a in admissions]
        async with self._operations.admitting(created) as conn:
            pending = await self._dispatcher.enqueue_many(conn, [a.work for a in admissions])
            await self._audit.insert_many(conn, [a.audit for a in admissions])
        self._dispatcher.committed(pending)


@dataclass(frozen=True, slots=True)
class _Admission:
    """What one transaction writes for an accepted long-running call."""

    operation: OperationRecord
    snapshot: lro_pb2.Operation
    """The operation as the caller gets it (and the snapshot cache keeps it)."""
    work: queue_pb2.WorkItem
    audit: dict[str, Any]


def _validated(spec: ToolSpec) -> lro_pb2.Operation:
    """validate_only: a done operation with no name and an empty result."""
    metadata = operations_pb2.OperationMetadata(
        tool=spec.name,
        state=operations_pb2.OperationMetadata.SUCCEEDED,
        progress_percent=100,
        status_message="Arguments are valid; nothing was started (validate_only).",
    )
    operation = lro_pb2.Operation(done=True)
    operation.metadata.Pack(metadata)
    operation.response.Pack(operations_pb2.ToolResult())
    return operation
