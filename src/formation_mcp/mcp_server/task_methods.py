"""Tasks over our operations, for both revisions, through the SDK's extension mechanism.

`TasksExtension` is an SDK `Extension` (`io.modelcontextprotocol/tasks`): its methods are
`tasks/get`, `tasks/cancel` (both revisions), `tasks/update` (2026-07-28), `tasks/result` and
`tasks/list` (2025-11-25), and its `tools/call` interceptor answers a 2026-07-28 caller that
declared the extension with the task at once when the tool's operation is not done yet.
`LegacyTaskAugmentation` is a server middleware for 2025-11-25's `params.task`: a
`CreateTaskResult` is not a `CallToolResult`, which the SDK's result check for `tools/call`
at that revision would refuse, so the middleware answers such calls itself.

Every method reads the operation through our API with the caller's credentials, so a task
is found by any replica, survives restarts, and another caller's task is "not found".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2, tools_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from mcp.server import Server
from mcp.server.context import CallNext, HandlerResult
from mcp.server.extension import Extension, MethodBinding, compose_tool_call_handler
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from formation_mcp.mcp_server.backend import UNARY_TIMEOUT_SECONDS, Api, Context, Metadata
from formation_mcp.mcp_server.convert import (
    TOOL_PREFIX,
    call_error_result,
    result_of,
    text_of_result,
)
from formation_mcp.mcp_server.tasks import (
    TASKS_EXTENSION,
    detailed_task,
    is_task_id,
    task_of,
    tool_result,
)

LIST_PAGE_SIZE = 50
MODERN = frozenset(MODERN_PROTOCOL_VERSIONS)
LEGACY = frozenset(version for version in HANDSHAKE_PROTOCOL_VERSIONS if version >= "2025-11-25")


class TaskIdParams(types.RequestParams):
    """`tasks/get`, `tasks/cancel`, `tasks/result` and `tasks/update` params: the task id (a
    `tasks/update`'s `inputResponses` are the inherited field; our tasks never ask for input)."""

    task_id: str


class TaskService:
    """The task methods over our Operations service."""

    def __init__(self, api: Api, retention_seconds: float) -> None:
        self._api = api
        self._retention = retention_seconds

    async def start(
        self, ctx: Context, params: types.CallToolRequestParams, *, always: bool
    ) -> dict[str, Any] | types.CallToolResult:
        """Start the call without waiting. The task when the operation is not done (or, with
        `always`, 2025-11-25's rule for a task-augmented request, done or not); otherwise the
        tool's result. A refused call is its error result, or (`always`) a JSON-RPC error:
        no task was created."""
        metadata = await self._api.metadata(ctx)
        request = tools_pb2.CallToolRequest(name=TOOL_PREFIX + params.name)
        json_format.ParseDict(params.arguments or {}, request.arguments)
        try:
            operation: lro_pb2.Operation = await self._api.tools().CallTool(
                request, metadata=metadata, timeout=UNARY_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            refused = call_error_result(params.name, error)
            if always:
                raise MCPError(types.INVALID_PARAMS, text_of_result(refused)) from None
            return refused
        if always:
            return {"task": task_of(operation, self._retention, modern=False)}
        if operation.done:
            return result_of(operation)
        return {"resultType": "task", **task_of(operation, self._retention, modern=True)}

    async def get(self, ctx: Context, params: TaskIdParams) -> dict[str, Any]:
        operation = await self._operation(ctx, params.task_id)
        if ctx.protocol_version in MODERN:
            return detailed_task(operation, self._retention)
        return task_of(operation, self._retention, modern=False)

    async def result(self, ctx: Context, params: TaskIdParams) -> dict[str, Any]:
        """2025-11-25 `tasks/result`: waits until the task is done (watching the operation),
        then the tool's result, as the call would have returned it."""
        metadata = await self._api.metadata(ctx)
        operation = await self._operation(ctx, params.task_id, metadata)
        if not operation.done:
            operation = await self._watch_to_end(operation, metadata)
        return tool_result(operation, modern=False)

    async def list(self, ctx: Context, params: types.PaginatedRequestParams) -> dict[str, Any]:
        """2025-11-25 `tasks/list`: the caller's operations, newest first, a page at a time."""
        metadata = await self._api.metadata(ctx)
        try:
            stub = self._api.operations()
            page: operations_pb2.ListOperationsResponse = await stub.ListOperations(
                operations_pb2.ListOperationsRequest(
                    page_size=LIST_PAGE_SIZE, page_token=params.cursor or ""
                ),
                metadata=metadata,
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _protocol_error("listing the tasks failed", error) from None
        listed: dict[str, Any] = {
            "tasks": [task_of(op, self._retention, modern=False) for op in page.operations]
        }
        if page.next_page_token:
            listed["nextCursor"] = page.next_page_token
        return listed

    async def cancel(self, ctx: Context, params: TaskIdParams) -> dict[str, Any]:
        """Cancels the operation. 2025-11-25 answers the task (a done one cannot be
        cancelled: -32602); 2026-07-28 acknowledges with an empty result."""
        metadata = await self._api.metadata(ctx)
        modern = ctx.protocol_version in MODERN
        if not modern:
            current = await self._operation(ctx, params.task_id, metadata)
            if current.done:
                raise MCPError(
                    types.INVALID_PARAMS,
                    f"Cannot cancel task: {params.task_id} is already {_status(current)}",
                )
        try:
            operation: lro_pb2.Operation = await self._api.operations().CancelOperation(
                operations_pb2.CancelOperationRequest(name=params.task_id),
                metadata=metadata,
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _protocol_error("Failed to cancel task", error) from None
        return {} if modern else task_of(operation, self._retention, modern=False)

    async def update(self, ctx: Context, params: TaskIdParams) -> dict[str, Any]:
        """2026-07-28 `tasks/update`: our tasks never ask for input, so there is nothing
        outstanding to answer; the task must exist (and be the caller's)."""
        await self._operation(ctx, params.task_id)
        return {}

    async def _operation(
        self, ctx: Context, task_id: str, metadata: Metadata | None = None
    ) -> lro_pb2.Operation:
        if not is_task_id(task_id):
            raise MCPError(types.INVALID_PARAMS, f"Failed to retrieve task: no task {task_id!r}")
        try:
            operation: lro_pb2.Operation = await self._api.operations().GetOperation(
                operations_pb2.GetOperationRequest(name=task_id),
                metadata=metadata or await self._api.metadata(ctx),
                timeout=UNARY_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as error:
            raise _protocol_error("Failed to retrieve task", error) from None
        return operation

    async def _watch_to_end(
        self, operation: lro_pb2.Operation, metadata: Metadata
    ) -> lro_pb2.Operation:
        watch = self._api.operations().WatchOperation(
            operations_pb2.WatchOperationRequest(name=operation.name), metadata=metadata
        )
        try:
            async for change in watch:
                if change.done:
                    return change
        except grpc.aio.AioRpcError as error:
            raise _protocol_error(f"{operation.name} could not be followed", error) from None
        finally:
            watch.cancel()
        raise MCPError(types.INTERNAL_ERROR, f"the watch of {operation.name} ended early")


def _status(operation: lro_pb2.Operation) -> str:
    return str(task_of(operation, 0, modern=False)["status"])


def _protocol_error(what: str, error: grpc.aio.AioRpcError) -> MCPError:
    """Not found (or another caller's: the API does not tell them apart), a malformed name or
    an expired task are the caller's invalid params; anything else is internal."""
    invalid = {
        grpc.StatusCode.NOT_FOUND: "Task not found",
        grpc.StatusCode.INVALID_ARGUMENT: str(error.details()),
        grpc.StatusCode.FAILED_PRECONDITION: str(error.details()),
    }
    if error.code() in invalid:
        return MCPError(types.INVALID_PARAMS, f"{what}: {invalid[error.code()]}")
    return MCPError(types.INTERNAL_ERROR, f"{what}: {error.code().name}: {error.details()}")


Handler = Callable[[Context, Any], Awaitable[HandlerResult]]


class TasksExtension(Extension):
    identifier = TASKS_EXTENSION

    def __init__(self, service: TaskService) -> None:
        self._service = service

    def methods(self) -> Sequence[MethodBinding]:
        tasks = self._service
        return (
            MethodBinding("tasks/get", TaskIdParams, tasks.get, MODERN | LEGACY),
            MethodBinding("tasks/cancel", TaskIdParams, tasks.cancel, MODERN | LEGACY),
            MethodBinding("tasks/update", TaskIdParams, tasks.update, MODERN),
            MethodBinding("tasks/result", TaskIdParams, tasks.result, LEGACY),
            MethodBinding("tasks/list", types.PaginatedRequestParams, tasks.list, LEGACY),
        )

    async def intercept_tool_call(
        self, params: types.CallToolRequestParams, ctx: Context, call_next: CallNext
    ) -> HandlerResult:
        if ctx.protocol_version in MODERN and _declared(ctx):
            return await self._service.start(ctx, params, always=False)
        return await call_next(ctx)


def _declared(ctx: Context) -> bool:
    """Whether this 2026-07-28 request declared the extension (a task may go to no one else)."""
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    return bool(extensions and TASKS_EXTENSION in extensions)


Follow = Callable[[Context, str], Awaitable[None]]


class LegacyTaskAugmentation:
    """Server middleware: a 2025-11-25 `tools/call` with `params.task` becomes a task, whose
    status changes `follow` sends as `notifications/tasks/status`."""

    def __init__(self, service: TaskService, follow: Follow) -> None:
        self._service = service
        self._follow = follow

    async def __call__(self, ctx: Context, call_next: CallNext) -> HandlerResult:
        params = ctx.params
        if (
            ctx.method != "tools/call"
            or ctx.protocol_version not in LEGACY
            or not isinstance(params, Mapping)
            or params.get("task") is None
        ):
            return await call_next(ctx)
        try:
            typed = types.CallToolRequestParams.model_validate(params, by_name=False)
        except ValueError as error:
            raise MCPError(types.INVALID_PARAMS, f"Invalid tools/call params: {error}") from None
        created = await self._service.start(ctx, typed, always=True)
        if isinstance(created, dict) and created["task"]["status"] == "working":
            await self._follow(ctx, created["task"]["taskId"])
        return created


def install_tasks(
    server: Server[Any], service: TaskService, call_tool: Handler, follow: Follow
) -> None:
    """Apply the extension to a low-level server as `MCPServer(extensions=...)` would: its
    methods (each served at its revisions only), its `tools/call` interceptor around
    `call_tool`, and the capability; plus the 2025-11-25 middleware."""
    extension = TasksExtension(service)
    server.extensions[extension.identifier] = extension.settings()
    for binding in extension.methods():
        server.add_request_handler(binding.method, binding.params_type, _gated(binding))
    server.add_request_handler(
        "tools/call", types.CallToolRequestParams, compose_tool_call_handler([extension], call_tool)
    )
    server.middleware.append(LegacyTaskAugmentation(service, follow))


def _gated(binding: MethodBinding) -> Handler:
    versions = binding.protocol_versions

    async def handler(ctx: Context, params: BaseModel) -> HandlerResult:
        if versions is not None and ctx.protocol_version not in versions:
            raise MCPError(types.METHOD_NOT_FOUND, "Method not found", binding.method)
        return await binding.handler(ctx, params)

    return handler
