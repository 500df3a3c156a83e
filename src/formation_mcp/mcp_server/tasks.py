"""Operations as MCP tasks: pure translations, one place for every mapping rule.

A task is an operation: its id is the operation's name (`operations/{id}`), so a task is as
durable as the operation (in the database, read by any replica, kept for FMCP_OPERATION_TTL
after it ends, visible to its owner only). Two revisions define tasks differently:

- 2025-11-25 (core, experimental): `Task{taskId, status, statusMessage, createdAt,
  lastUpdatedAt, ttl, pollInterval}`; a failed tool is `failed`, its result comes from
  `tasks/result`.
- 2026-07-28 (extension `io.modelcontextprotocol/tasks`): the same with `ttlMs` and
  `pollIntervalMs`; `tasks/get` inlines the final `result`, and a tool that ended in error is
  `completed` with an `isError` result (`failed` is for JSON-RPC errors only).
"""

from __future__ import annotations

import time
from typing import Any

from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2

from formation_mcp.mcp_server.convert import metadata_of, result_of

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK_META = "io.modelcontextprotocol/related-task"
POLL_INTERVAL_MS = 2000
"""Suggested polling interval: progress moves in steps of seconds."""
TASK_PREFIX = "operations/"

_State = operations_pb2.OperationMetadata.State
_WORKING = {_State.STATE_UNSPECIFIED, _State.PENDING, _State.RUNNING}


def is_task_id(task_id: str) -> bool:
    rest = task_id.removeprefix(TASK_PREFIX)
    return task_id.startswith(TASK_PREFIX) and bool(rest) and "/" not in rest


def status_of(operation: lro_pb2.Operation, *, modern: bool) -> str:
    state = metadata_of(operation).state
    if not operation.done and state in _WORKING:
        return "working"
    if state == _State.CANCELLED:
        return "cancelled"
    if state == _State.FAILED and not modern:
        return "failed"
    return "completed"


def ttl_ms(operation: lro_pb2.Operation, retention_seconds: float) -> int:
    """Retention from creation: an operation is kept `retention_seconds` after it ends (and
    while it runs), so the figure grows while it runs (both revisions allow that)."""
    metadata = metadata_of(operation)
    created = metadata.create_time.ToMicroseconds()
    ended = (
        metadata.end_time.ToMicroseconds()
        if metadata.HasField("end_time")
        else time.time_ns() // 1000
    )
    return max(0, (ended - created) // 1000) + int(retention_seconds * 1000)


def task_of(
    operation: lro_pb2.Operation, retention_seconds: float, *, modern: bool
) -> dict[str, Any]:
    """The `Task` of the revision, in its wire form."""
    metadata = metadata_of(operation)
    task: dict[str, Any] = {
        "taskId": operation.name,
        "status": status_of(operation, modern=modern),
        "createdAt": metadata.create_time.ToJsonString(),
        "lastUpdatedAt": (
            metadata.update_time if metadata.HasField("update_time") else metadata.create_time
        ).ToJsonString(),
    }
    message = ": ".join(part for part in (metadata.stage, metadata.status_message) if part)
    if message:
        task["statusMessage"] = message
    ttl = ttl_ms(operation, retention_seconds)
    if modern:
        task["ttlMs"] = ttl
        task["pollIntervalMs"] = POLL_INTERVAL_MS
    else:
        task["ttl"] = ttl
        task["pollInterval"] = POLL_INTERVAL_MS
    return task


def detailed_task(operation: lro_pb2.Operation, retention_seconds: float) -> dict[str, Any]:
    """2026-07-28 `tasks/get`: the task, with the tool's result inlined once it completed."""
    task = task_of(operation, retention_seconds, modern=True)
    if task["status"] == "completed":
        task["result"] = tool_result(operation, modern=True)
    return task


def tool_result(operation: lro_pb2.Operation, *, modern: bool) -> dict[str, Any]:
    """The CallToolResult the call would have returned, naming its task in `_meta`."""
    result = result_of(operation).model_dump(by_alias=True, mode="json", exclude_none=True)
    if not modern:
        result.pop("resultType", None)
    meta = dict(result.get("_meta") or {})
    meta[RELATED_TASK_META] = {"taskId": operation.name}
    result["_meta"] = meta
    return result
