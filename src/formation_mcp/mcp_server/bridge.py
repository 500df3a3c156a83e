"""The transport-independent MCP server: `tools/list` and `tools/call` answered by our own
Tools and Operations services over gRPC, with the caller's credentials.

Both transports build the same low-level SDK `Server` from a `ToolBridge`; they differ only in
the `Backend` they give it: where the gRPC channel is, and how a request's bearer token is found
(the token the HTTP client presented, or the stdio user's session from their key file).
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any

import anyio
import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from mcp.server import Server
from mcp.server.lowlevel.server import NotificationOptions
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from formation_mcp.mcp_server.backend import (
    CALLABLE,
    UNARY_TIMEOUT_SECONDS,
    Api,
    Backend,
    Context,
    CredentialsError,
    Metadata,
)
from formation_mcp.mcp_server.convert import (
    TOOL_PREFIX,
    ProgressRelay,
    awaiting_approval_result,
    call_error_result,
    error_result,
    metadata_of,
    progress_of,
    result_of,
    to_mcp_tool,
)
from formation_mcp.mcp_server.logs import LogLevels, LogRelay
from formation_mcp.mcp_server.prompts import Prompts
from formation_mcp.mcp_server.resources import Resources
from formation_mcp.mcp_server.session_watches import SessionWatches
from formation_mcp.mcp_server.subscriptions import Listen
from formation_mcp.mcp_server.task_methods import TaskService, install_tasks

log = logging.getLogger(__name__)

__all__ = ["Backend", "Context", "CredentialsError", "Metadata", "ToolBridge"]

CALL_WAIT_SECONDS = 50.0
"""A call without a progress token waits this long within CallTool (one RPC for work done by
then; under UNARY_TIMEOUT_SECONDS and the server's default FMCP_WAIT_MAX), then is followed."""
CANCEL_TIMEOUT_SECONDS = 10.0
LIST_PAGE_SIZE = 100
DEFAULT_RETENTION_SECONDS = 7 * 86400.0


class ToolBridge:
    """`tools/list` and `tools/call` over our API. A long-running tool is followed with
    WatchOperation: each rise in progress becomes `notifications/progress` (when the caller
    asked for it), the final operation becomes the result, and a cancelled request cancels the
    operation."""

    def __init__(
        self,
        backend: Backend,
        *,
        closing: Callable[[], bool] = lambda: False,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        """`retention_seconds`: how long the API keeps an operation after it ends
        (FMCP_OPERATION_TTL), reported as the tasks' ttl."""
        self._backend = backend
        self._api = Api(backend)
        self._closing = closing
        self._retention = retention_seconds
        self._tasks = TaskService(self._api, retention_seconds)
        self._resources = Resources(self._api)
        self._prompts = Prompts(self._api, self._resources)
        self._log_levels = LogLevels()
        self._watches = SessionWatches(self._api, retention_seconds)

    def server(self, name: str = "formation-mcp") -> Server[Any]:
        server = FormationServer(
            name,
            version=package_version(),
            title="Formation MCP control plane",
            instructions=(
                "Tools to build packs and manage instances on the Formation network. Long-running "
                "tools report progress and return when their operation finishes (or, for a "
                "client that takes tasks, return a task at once: its id is the operation's "
                "name); the result's _meta names the operation. Resources: "
                "formation://operations/{id}, formation://instances/{id}, "
                "formation://instances/{id}/logs, "
                "formation://packs/{build_id}/formfile. Prompts: deploy-web-app, "
                "diagnose-instance."
            ),
            # Our input schemas carry no `x-mcp-header` annotations, so there are no
            # `Mcp-Param-*` headers to check: saying so spares a tools/list per 2026 call.
            get_tool_input_schema=lambda _name: None,
            on_list_tools=self.list_tools,
            on_list_resources=self._resources.listing,
            on_list_resource_templates=self._resources.templates,
            on_read_resource=self._resources.read,
            on_list_prompts=self._prompts.listing,
            on_get_prompt=self._prompts.get,
            on_completion=self._prompts.complete,
            on_subscriptions_listen=Listen(self._api, self._retention),
            on_subscribe_resource=self._watches.subscribe,
            on_unsubscribe_resource=self._watches.unsubscribe,
        )
        # Not `on_set_logging_level=`, which warns that 2026-07-28 dropped it: the SDK serves
        # logging/setLevel to 2025 sessions only either way.
        server.add_request_handler(
            "logging/setLevel", types.SetLevelRequestParams, self._log_levels.set_level
        )
        install_tasks(server, self._tasks, self.call_tool, self._watches.follow_task)
        return server

    async def close(self) -> None:
        """Stop following operations for sessions (their operations go on)."""
        await self._watches.close()

    def _tools(self) -> tools_pb2_grpc.ToolsServiceAsyncStub:
        return self._api.tools()

    def _operations(self) -> operations_pb2_grpc.OperationsServiceAsyncStub:
        return self._api.operations()

    async def list_tools(
        self, ctx: Context, _params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        """Every tool the caller's roles can see and its policy lets it call, by name, in one
        page: hosts rarely follow `nextCursor`, and the catalog is small. A tool the policy
        refuses is left out (an agent need not spend its context on it); calling it by name
        still gets the policy's refusal."""
        tools: list[types.Tool] = []
        try:
            metadata = await self._backend.credentials(ctx)
            stub = self._tools()
            token = ""
            while True:
                page: tools_pb2.ListToolsResponse = await stub.ListTools(
                    tools_pb2.ListToolsRequest(
                        page_size=LIST_PAGE_SIZE, page_token=token, filter=CALLABLE
                    ),
                    metadata=metadata,
                    timeout=UNARY_TIMEOUT_SECONDS,
                )
                tools.extend(to_mcp_tool(tool) for tool in page.tools)
                token = page.next_page_token
                if not token:
                    break
        except grpc.aio.AioRpcError as error:
            raise MCPError(
                types.INTERNAL_ERROR,
                f"listing the tools failed: {error.code().name}: {error.details()}",
            ) from None
        except CredentialsError as error:
            raise MCPError(types.INTERNAL_ERROR, str(error)) from None
        tools.sort(key=lambda tool: tool.name)
        return types.ListToolsResult(tools=tools)

    async def call_tool(
        self, ctx: Context, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            metadata = await self._backend.credentials(ctx)
        except CredentialsError as error:
            return error_result(str(error))
        request = tools_pb2.CallToolRequest(name=TOOL_PREFIX + params.name)
        json_format.ParseDict(params.arguments or {}, request.arguments)
        lines = LogRelay(ctx, self._log_levels.allowed(ctx), params.name)
        if not _wants_progress(ctx) and not lines.active:
            # nothing to report meanwhile: wait within the call
            request.wait.FromSeconds(int(CALL_WAIT_SECONDS))
        try:
            operation: lro_pb2.Operation = await self._tools().CallTool(
                request, metadata=metadata, timeout=UNARY_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            return call_error_result(params.name, error)
        if operation.done:
            return result_of(operation)
        if metadata_of(operation).state == operations_pb2.OperationMetadata.AWAITING_APPROVAL:
            return awaiting_approval_result(operation)
        try:
            return await self._follow(ctx, operation, metadata, lines)
        except anyio.get_cancelled_exc_class():
            if self._cancelled_by_client(ctx):
                with anyio.CancelScope(shield=True):
                    await self._cancel(ctx, operation.name)
            raise

    async def _follow(
        self, ctx: Context, operation: lro_pb2.Operation, metadata: Metadata, lines: LogRelay
    ) -> types.CallToolResult:
        """Watch from just after the operation's creation (every change exactly once) until it
        is done. Each rise of the percentage, and each new message at the same percentage (a
        long step's heartbeat), is reported with the stage and status message of that change
        (see ProgressRelay: MCP progress must only ever rise); each change's new output lines
        go out as log messages when the caller asked for them (see LogRelay)."""
        relay = ProgressRelay(progress_of(operation))
        watch = self._operations().WatchOperation(
            operations_pb2.WatchOperationRequest(
                name=operation.name, after_sequence=metadata_of(operation).sequence
            ),
            metadata=metadata,
        )
        try:
            async for change in watch:
                progress = progress_of(change)
                value = relay.next(progress)
                if value is not None and _wants_progress(ctx):
                    await ctx.session.report_progress(value, 100, progress.message)
                if lines.active:
                    await lines.send(list(metadata_of(change).logs))
                if change.done:
                    await lines.finish()
                    return result_of(change)
        except grpc.aio.AioRpcError as error:
            what = f"could not be followed to its end; {operation.name} may still be running"
            return call_error_result(metadata_of(operation).tool or "the tool", error, what)
        finally:
            watch.cancel()
        raise RuntimeError(f"the watch of {operation.name} ended before the operation finished")

    def _cancelled_by_client(self, ctx: Context) -> bool:
        """Whether this cancellation is the client's: `notifications/cancelled` for the request
        (2025 revisions), or, from 2026-07-28, closing the request's response stream. Not when
        this server is shutting down: the operation goes on, and can be watched elsewhere."""
        if self._closing():
            return False
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return True
        # The SDK (2.3) sets the dispatch context's `cancel_requested` for a received
        # notifications/cancelled but does not surface it on ServerRequestContext.
        outbound = getattr(ctx.session, "_request_outbound", None)
        event = getattr(outbound, "cancel_requested", None)
        return bool(event is not None and event.is_set())

    async def _cancel(self, ctx: Context, name: str) -> None:
        try:
            metadata = await self._backend.credentials(ctx)
            await self._operations().CancelOperation(
                operations_pb2.CancelOperationRequest(name=name),
                metadata=metadata,
                timeout=CANCEL_TIMEOUT_SECONDS,
            )
        except Exception as exc:  # the cancel is best effort; the operation stays watchable
            log.warning("could not cancel %s after the MCP request was cancelled: %s", name, exc)


class FormationServer(Server[Any]):
    """The SDK's low-level server, advertising 2025-11-25's `tasks` capability (the SDK
    derives every other capability from the handlers, but tasks are types-only there)."""

    def get_capabilities(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
        *,
        protocol_version: str | None = None,
    ) -> types.ServerCapabilities:
        capabilities = super().get_capabilities(
            notification_options,
            experimental_capabilities,
            extensions,
            protocol_version=protocol_version,
        )
        if protocol_version in MODERN_PROTOCOL_VERSIONS:
            # subscriptions/listen serves resource updates (and task status), not list changes.
            return capabilities.model_copy(
                update={
                    "tools": types.ToolsCapability(list_changed=False),
                    "prompts": types.PromptsCapability(list_changed=False),
                    "resources": types.ResourcesCapability(subscribe=True, list_changed=False),
                }
            )
        return capabilities.model_copy(
            update={
                "tasks": types.ServerTasksCapability(
                    list=types.TasksListCapability(),
                    cancel=types.TasksCancelCapability(),
                    requests=types.ServerTasksRequestsCapability(
                        tools=types.TasksToolsCapability(call=types.TasksCallCapability())
                    ),
                )
            }
        )


def _wants_progress(ctx: Context) -> bool:
    return bool(ctx.meta and ctx.meta.get("progress_token") is not None)


def package_version() -> str:
    try:
        return importlib.metadata.version("formation-mcp")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"
