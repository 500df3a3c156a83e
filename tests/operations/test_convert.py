"""Records to google.longrunning.Operation messages."""

from __future__ import annotations

from dataclasses import replace

import pytest
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from formation_mcp.operations.convert import to_operation
from formation_mcp.operations.lifecycle import (
    OperationRecord,
    State,
    apply_event,
    new_record,
    request_cancel,
)

OPERATION_ID = "0190f5a0c1e27b3c8d4e5f6a7b8c9d0e"
NAME = f"operations/{OPERATION_ID}"
T0 = 1_700_000_000_000_001
T1 = T0 + 1_000
T2 = T0 + 2_000
T3 = T0 + 3_000

Event = queue_pb2.OperationEvent


def _pending(request_id: str | None = "req-1") -> OperationRecord:
    return new_record(OPERATION_ID, "acct-1", "pack.build", request_id, T0)


def _apply(record: OperationRecord, event: Event, now: int) -> OperationRecord:
    change = apply_event(record, event, now)
    assert change is not None
    return change.record


def _running() -> OperationRecord:
    """Started by a worker on attempt 2, 45% through `build`, with two log lines."""
    record = _apply(_pending(), Event(attempt=2, sequence=1, started=Event.Started()), T1)
    progress = Event(attempt=2, sequence=2)
    progress.progress.percent, progress.progress.stage = 45, "build"
    progress.progress.message = "Compiling."
    record = _apply(record, progress, T1)
    logs = Event(attempt=2, sequence=3)
    logs.logs.lines.extend([operations_pb2.LogLine(text="a"), operations_pb2.LogLine(text="b")])
    return _apply(record, logs, T2)


def _result() -> operations_pb2.ToolResult:
    result = operations_pb2.ToolResult()
    json_format.ParseDict({"image": "sha256:abc", "layers": 3}, result.output)
    return result


def _succeeded() -> OperationRecord:
    event = Event(attempt=2, sequence=4)
    event.succeeded.result.CopyFrom(_result())
    return _apply(_running(), event, T3)


def _failed() -> OperationRecord:
    event = Event(attempt=2, sequence=4)
    event.failed.error.CopyFrom(status_pb2.Status(code=code_pb2.INTERNAL, message="boom"))
    return _apply(_running(), event, T3)


def _cancelled() -> OperationRecord:
    change = request_cancel(_pending(), T3)
    assert change is not None
    return change.record


def _metadata(operation: lro_pb2.Operation) -> operations_pb2.OperationMetadata:
    metadata = operations_pb2.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


def _error(operation: lro_pb2.Operation) -> status_pb2.Status:
    assert operation.WhichOneof("result") == "error"
    return operation.error


# --------------------------------------------------------------------------- name and done


def test_name_is_operations_slash_id() -> None:
    assert to_operation(_pending()).name == NAME


@pytest.mark.parametrize(
    ("record", "done"),
    [
        (_pending(), False),
        (_running(), False),
        (_succeeded(), True),
        (_failed(), True),
        (_cancelled(), True),
    ],
    ids=["pending", "running", "succeeded", "failed", "cancelled"],
)
def test_done_follows_the_state(record: OperationRecord, done: bool) -> None:
    assert to_operation(record).done is done


@pytest.mark.parametrize("record", [_pending(), _running()], ids=["pending", "running"])
def test_unfinished_operation_has_no_result(record: OperationRecord) -> None:
    assert to_operation(record).WhichOneof("result") is None


# --------------------------------------------------------------------------- metadata


def test_metadata_is_packed_operation_metadata() -> None:
    operation = to_operation(_pending())
    assert operation.metadata.Is(operations_pb2.OperationMetadata.DESCRIPTOR)


def test_metadata_of_pending_operation() -> None:
    metadata = _metadata(to_operation(_pending()))
    assert (metadata.tool, metadata.owner, metadata.request_id) == (
        "pack.build",
        "acct-1",
        "req-1",
    )
    assert metadata.state == operations_pb2.OperationMetadata.PENDING
    assert (metadata.progress_percent, metadata.stage, metadata.status_message) == (
        0,
        "",
        "Waiting for a worker.",
    )
    assert (metadata.sequence, metadata.attempt, metadata.cancel_requested) == (1, 0, False)


def test_metadata_times_of_pending_operation() -> None:
    metadata = _metadata(to_operation(_pending()))
    assert metadata.create_time.ToMicroseconds() == T0
    assert metadata.update_time.ToMicroseconds() == T0
    assert not metadata.HasField("end_time")


def test_metadata_request_id_none_is_empty() -> None:
    assert _metadata(to_operation(_pending(request_id=None))).request_id == ""


def test_metadata_of_running_operation() -> None:
    record = _running()
    metadata = _metadata(to_operation(record))
    assert metadata.state == operations_pb2.OperationMetadata.RUNNING
    assert (metadata.progress_percent, metadata.stage, metadata.status_message) == (
        45,
        "build",
        "Compiling.",
    )
    assert (metadata.sequence, metadata.attempt) == (record.sequence, 2)
    assert metadata.update_time.ToMicroseconds() == T2


def test_metadata_cancel_requested() -> None:
    change = request_cancel(_running(), T3)
    assert change is not None
    metadata = _metadata(to_operation(change.record))
    assert metadata.cancel_requested is True
    assert metadata.status_message == "Cancellation requested."


@pytest.mark.parametrize(
    ("record", "state"),
    [
        (_succeeded(), operations_pb2.OperationMetadata.SUCCEEDED),
        (_failed(), operations_pb2.OperationMetadata.FAILED),
        (_cancelled(), operations_pb2.OperationMetadata.CANCELLED),
    ],
    ids=["succeeded", "failed", "cancelled"],
)
def test_metadata_of_finished_operation_has_state_and_end_time(
    record: OperationRecord, state: int
) -> None:
    metadata = _metadata(to_operation(record))
    assert metadata.state == state
    assert metadata.end_time.ToMicroseconds() == T3


# --------------------------------------------------------------------------- result


def test_succeeded_operation_packs_the_tool_result() -> None:
    operation = to_operation(_succeeded())
    assert operation.WhichOneof("result") == "response"
    result = operations_pb2.ToolResult()
    assert operation.response.Unpack(result)
    assert result == _result()


def test_succeeded_operation_without_stored_response_packs_empty_tool_result() -> None:
    operation = to_operation(replace(_succeeded(), response=None))
    result = operations_pb2.ToolResult()
    assert operation.response.Unpack(result)
    assert result == operations_pb2.ToolResult()


def test_failed_operation_carries_the_error() -> None:
    error = _error(to_operation(_failed()))
    assert (error.code, error.message) == (code_pb2.INTERNAL, "boom")


def test_cancelled_operation_carries_cancelled_error() -> None:
    assert _error(to_operation(_cancelled())).code == code_pb2.CANCELLED


# --------------------------------------------------------------------------- logs


def test_logs_default_to_recent_logs() -> None:
    record = _running()
    metadata = _metadata(to_operation(record))
    assert list(metadata.logs) == list(record.recent_logs)
    assert [line.text for line in metadata.logs] == ["a", "b"]


def test_logs_argument_overrides_recent_logs() -> None:
    lines = [operations_pb2.LogLine(text="only this", sequence=9)]
    metadata = _metadata(to_operation(_running(), lines))
    assert list(metadata.logs) == lines


def test_empty_logs_argument_means_no_logs() -> None:
    metadata = _metadata(to_operation(_running(), []))
    assert len(metadata.logs) == 0


def test_to_operation_accepts_any_iterable_of_logs() -> None:
    lines = (operations_pb2.LogLine(text=str(i)) for i in range(3))
    metadata = _metadata(to_operation(_running(), lines))
    assert [line.text for line in metadata.logs] == ["0", "1", "2"]


@pytest.mark.parametrize(
    "record",
    [_pending(), _running(), _succeeded(), _failed(), _cancelled()],
    ids=["pending", "running", "succeeded", "failed", "cancelled"],
)
def test_metadata_state_matches_record_state(record: OperationRecord) -> None:
    assert State(_metadata(to_operation(record)).state) is record.state
