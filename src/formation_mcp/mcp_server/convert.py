"""Pure translations between our API's messages and MCP's: a Tool, a finished operation, a
gRPC error, a progress step. No I/O here, so every mapping rule is in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2, tools_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from mcp.shared.exceptions import MCPError

from formation_mcp.structs import struct_to_dict
from formation_mcp.tools.registry import host_safe_name

TOOL_PREFIX = "tools/"
META_PREFIX = "formation.cloud/"
"""Our `_meta` keys (MCP reserves prefixes with an `mcp` or `modelcontextprotocol` label)."""
OPERATION_META = META_PREFIX + "operation"
"""`_meta` key naming the operation behind a result, for GetOperation/WatchOperation later."""
MAX_LISTED_VIOLATIONS = 20


def to_mcp_tool(tool: tools_pb2.Tool) -> types.Tool:
    """Our Tool as MCP lists it: by its host-safe name (`pack_build`; calls take the dotted
    name too), with the canonical name in `_meta`. The hints are ours, not guesses:
    `openWorldHint` is false because every tool acts only on this control plane's own packs
    and instances."""
    annotations = tool.annotations
    canonical = tool.name.removeprefix(TOOL_PREFIX)
    return types.Tool(
        name=host_safe_name(canonical),
        title=tool.title or None,
        description=tool.description,
        input_schema=struct_to_dict(tool.input_schema) or {"type": "object"},
        output_schema=struct_to_dict(tool.output_schema) or None,
        annotations=types.ToolAnnotations(
            title=tool.title or None,
            read_only_hint=annotations.read_only,
            destructive_hint=annotations.destructive,
            idempotent_hint=annotations.idempotent,
            open_world_hint=False,
        ),
        # A long-running tool may run as a task (2025-11-25's per-tool negotiation).
        execution=types.ToolExecution(task_support="optional")
        if annotations.long_running
        else None,
        _meta={
            META_PREFIX + "name": canonical,
            META_PREFIX + "version": tool.version,
            META_PREFIX + "category": tool.category,
            META_PREFIX + "long_running": annotations.long_running,
        },
    )


def metadata_of(operation: lro_pb2.Operation) -> operations_pb2.OperationMetadata:
    metadata = operations_pb2.OperationMetadata()
    if operation.HasField("metadata"):
        operation.metadata.Unpack(metadata)
    return metadata


@dataclass(frozen=True, slots=True)
class Progress:
    """One `notifications/progress`: percent of 100, and what the operation is doing."""

    percent: int
    message: str | None


def progress_of(operation: lro_pb2.Operation) -> Progress:
    metadata = metadata_of(operation)
    parts = [part for part in (metadata.stage, metadata.status_message) if part]
    return Progress(metadata.progress_percent, ": ".join(parts) or None)


class ProgressRelay:
    """What to send as `notifications/progress`: MCP progress must rise with every
    notification, while an operation may repeat its percentage with a new message (a
    heartbeat during a long step). A repeat is sent as a fraction of the way to the next
    percent (p + 1/2, p + 2/3, p + 3/4, ...), so it still rises and a real rise still
    exceeds it."""

    def __init__(self, start: Progress) -> None:
        self._percent = start.percent
        self._message = start.message
        self._repeats = 0

    def next(self, progress: Progress) -> float | None:
        """The value to report for this change, or None when there is nothing new."""
        if progress.percent > self._percent:
            self._percent, self._message, self._repeats = progress.percent, progress.message, 0
            return float(progress.percent)
        if (
            progress.percent == self._percent < 100
            and progress.message
            and progress.message != self._message
        ):
            self._message = progress.message
            self._repeats += 1
            return progress.percent + self._repeats / (self._repeats + 1)
        return None


def _text_result(
    text: str, *, is_error: bool, structured: dict[str, Any] | None = None, operation: str = ""
) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        structured_content=structured,
        is_error=is_error,
        _meta={OPERATION_META: operation} if operation else None,
    )


def text_of_result(result: types.CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, types.TextContent))


def error_result(text: str) -> types.CallToolResult:
    return _text_result(text, is_error=True)


def awaiting_approval_result(operation: lro_pb2.Operation) -> types.CallToolResult:
    """A call the caller's policy makes wait for a human approval: answered at once (an
    approval may take hours), saying so; `isError`, since there is no output yet."""
    meta = metadata_of(operation)
    text = (
        f"{meta.status_message}. Nothing has run yet: it runs once an approver approves it, "
        f"and fails if it is denied or not approved by {meta.approval.expire_time.ToJsonString()}. "
        f"Check it later with GetOperation {operation.name}."
    )
    return _text_result(text, is_error=True, operation=operation.name)


def result_of(operation: lro_pb2.Operation) -> types.CallToolResult:
    """A done operation as a tool result: the output object as `structuredContent` and the same
    JSON as text; an error (failed or cancelled) as `isError` with what happened."""
    tool = metadata_of(operation).tool or "the tool"
    if operation.HasField("error"):
        return _text_result(
            operation_error_text(tool, operation.error), is_error=True, operation=operation.name
        )
    result = operations_pb2.ToolResult()
    if operation.HasField("response"):
        operation.response.Unpack(result)
    output = struct_to_dict(result.output)
    text = json.dumps(output, sort_keys=True)
    return _text_result(text, is_error=False, structured=output, operation=operation.name)


def operation_error_text(tool: str, error: status_pb2.Status) -> str:
    if error.code == code_pb2.CANCELLED:
        return f"{tool} was cancelled before it finished; nothing more will run. {error.message}"
    code = code_pb2.Code.Name(error.code) if error.code in code_pb2.Code.values() else error.code
    lines = [f"{tool} failed ({code}): {error.message}"]
    lines.extend(_detail_lines(error))
    return "\n".join(lines)


def _detail_lines(status: status_pb2.Status) -> list[str]:
    """The fields to fix (BadRequest) and the reason (ErrorInfo), as lines a model can act on."""
    lines: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations = list(bad.field_violations)
            lines.extend(
                f"- {v.field}: {v.description}" for v in violations[:MAX_LISTED_VIOLATIONS]
            )
            if len(violations) > MAX_LISTED_VIOLATIONS:
                lines.append(f"- ... and {len(violations) - MAX_LISTED_VIOLATIONS} more")
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            lines.append(f"reason: {info.reason}")
    return lines


def _reason(status: status_pb2.Status | None) -> str:
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""


def call_error_result(
    tool: str, error: grpc.aio.AioRpcError, what: str = "was refused"
) -> types.CallToolResult:
    """A refused CallTool as the MCP spec wants it. An unknown tool is a protocol error
    (JSON-RPC -32602, raised); anything else (schema violations, permissions, bad state, an
    unreachable server) is a tool result with `isError`, so the model sees it and can fix it."""
    status = rpc_status.from_call(error)
    if error.code() is grpc.StatusCode.NOT_FOUND and _reason(status) == "TOOL_NOT_FOUND":
        raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {tool}")
    lines = [f"{tool} {what} ({error.code().name}): {error.details()}"]
    if status is not None:
        lines.extend(_detail_lines(status))
    return _text_result("\n".join(lines), is_error=True)
