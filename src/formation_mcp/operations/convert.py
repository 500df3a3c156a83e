"""Records to `google.longrunning.Operation` messages."""

from __future__ import annotations

from collections.abc import Iterable

from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2

from formation_mcp.clock import to_timestamp
from formation_mcp.operations.ids import operation_name
from formation_mcp.operations.lifecycle import OperationRecord


def to_operation(
    record: OperationRecord, logs: Iterable[operations_pb2.LogLine] | None = None
) -> lro_pb2.Operation:
    """The operation as callers see it. `logs` defaults to the most recent lines."""
    metadata = operations_pb2.OperationMetadata(
        tool=record.tool,
        owner=record.owner,
        state=record.state.value,
        progress_percent=record.progress_percent,
        stage=record.stage,
        status_message=record.status_message,
        create_time=to_timestamp(record.create_time),
        update_time=to_timestamp(record.update_time),
        sequence=record.sequence,
        cancel_requested=record.cancel_requested,
        attempt=record.attempt,
        logs=record.recent_logs if logs is None else logs,
        request_id=record.request_id or "",
    )
    if record.end_time is not None:
        metadata.end_time.CopyFrom(to_timestamp(record.end_time))
    if record.approval is not None:
        metadata.approval.ParseFromString(record.approval)
    operation = lro_pb2.Operation(name=operation_name(record.id), done=record.done)
    operation.metadata.Pack(metadata)
    if record.done:
        if record.error is not None:
            operation.error.ParseFromString(record.error)
        else:
            result = operations_pb2.ToolResult()
            result.ParseFromString(record.response or b"")
            operation.response.Pack(result)
    return operation
