"""The operation state machine applying worker events: progress, logs and the terminal states."""

from __future__ import annotations

from dataclasses import replace

import pytest
from formation.mcp.v1 import operations_pb2
from google.protobuf import timestamp_pb2
from google.rpc import code_pb2
from tests.support.operation_records import (
    T2,
    T3,
    apply_all,
    cancelled_event,
    error_status,
    event_at,
    failed_event,
    log_line,
    log_texts,
    logs_event,
    pending_record,
    progress_event,
    running_record,
    succeeded_event,
)

from formation_mcp.operations.lifecycle import (
    MAX_MESSAGE_CHARS,
    MAX_STAGE_CHARS,
    RECENT_LOG_LINES,
    State,
    apply_event,
    request_cancel,
)

# --------------------------------------------------------------------------- progress


def test_progress_sets_percent_stage_and_message() -> None:
    record = apply_all(running_record(), progress_event(30, "build", "Compiling."))
    assert (record.progress_percent, record.stage, record.status_message) == (
        30,
        "build",
        "Compiling.",
    )


def test_progress_on_pending_makes_it_running() -> None:
    record = apply_all(pending_record(), progress_event(10, sequence=1))
    assert record.state is State.RUNNING


@pytest.mark.parametrize(
    ("percent", "expected"),
    [(0, 0), (1, 1), (55, 55), (100, 100), (101, 100), (1_000_000, 100), (-1, 0), (-500, 0)],
)
def test_progress_is_clamped_to_0_100(percent: int, expected: int) -> None:
    assert apply_all(running_record(), progress_event(percent)).progress_percent == expected


def test_progress_never_decreases() -> None:
    record = apply_all(running_record(), progress_event(60, sequence=2))
    assert apply_all(record, progress_event(30, sequence=3)).progress_percent == 60


def test_progress_lower_percent_still_updates_stage_and_message() -> None:
    record = apply_all(running_record(), progress_event(60, "build", "Building.", sequence=2))
    record = apply_all(record, progress_event(30, "upload", "Uploading.", sequence=3))
    assert (record.stage, record.status_message) == ("upload", "Uploading.")


def test_progress_empty_stage_and_message_keep_previous() -> None:
    record = apply_all(running_record(), progress_event(20, "build", "Building.", sequence=2))
    record = apply_all(record, progress_event(40, "", "", sequence=3))
    assert (record.progress_percent, record.stage, record.status_message) == (
        40,
        "build",
        "Building.",
    )


def test_progress_stage_is_truncated() -> None:
    record = apply_all(running_record(), progress_event(1, "s" * (MAX_STAGE_CHARS + 10)))
    assert record.stage == "s" * MAX_STAGE_CHARS


def test_progress_message_is_truncated() -> None:
    record = apply_all(running_record(), progress_event(1, message="m" * (MAX_MESSAGE_CHARS + 10)))
    assert record.status_message == "m" * MAX_MESSAGE_CHARS


def test_progress_adds_no_logs() -> None:
    change = apply_event(running_record(), progress_event(10), T2)
    assert change is not None
    assert change.added_logs == ()


def test_progress_before_started_sets_attempt() -> None:
    record = apply_all(pending_record(), progress_event(10, attempt=1, sequence=2))
    assert record.attempt == 1


# --------------------------------------------------------------------------- logs


def test_logs_are_added_to_recent_logs_and_reported_as_added() -> None:
    change = apply_event(running_record(), logs_event("one", "two"), T2)
    assert change is not None
    assert log_texts(change.record.recent_logs) == ["one", "two"]
    assert log_texts(change.added_logs) == ["one", "two"]


def test_logs_are_stamped_with_the_changes_sequence() -> None:
    change = apply_event(running_record(), logs_event("one", "two"), T2)
    assert change is not None
    assert {line.sequence for line in change.added_logs} == {change.record.sequence}


def test_logs_keep_stream_and_text() -> None:
    event = event_at(1, 2)
    event.logs.lines.append(log_line("oops", operations_pb2.LogLine.STDERR))
    change = apply_event(running_record(), event, T2)
    assert change is not None
    (line,) = change.added_logs
    assert (line.text, line.stream) == ("oops", operations_pb2.LogLine.STDERR)


def test_logs_without_time_get_the_change_time() -> None:
    change = apply_event(running_record(), logs_event("one"), T2)
    assert change is not None
    assert change.added_logs[0].time.ToMicroseconds() == T2


def test_logs_with_time_keep_it() -> None:
    event = event_at(1, 2)
    line = log_line("one")
    line.time.CopyFrom(timestamp_pb2.Timestamp(seconds=1_600_000_000))
    event.logs.lines.append(line)
    change = apply_event(running_record(), event, T2)
    assert change is not None
    assert change.added_logs[0].time.seconds == 1_600_000_000


def test_logs_do_not_modify_the_event() -> None:
    event = logs_event("one")
    apply_event(running_record(), event, T2)
    assert event.logs.lines[0].sequence == 0
    assert not event.logs.lines[0].HasField("time")


def test_logs_accumulate_across_changes_with_their_own_sequences() -> None:
    first = apply_event(running_record(), logs_event("a", sequence=2), T2)
    assert first is not None
    second = apply_event(first.record, logs_event("b", sequence=3), T3)
    assert second is not None
    assert [(line.text, line.sequence) for line in second.record.recent_logs] == [
        ("a", first.record.sequence),
        ("b", second.record.sequence),
    ]


def test_recent_logs_are_trimmed_to_the_newest_lines() -> None:
    record = apply_all(running_record(), logs_event(*[f"a{i}" for i in range(15)], sequence=2))
    change = apply_event(record, logs_event(*[f"b{i}" for i in range(10)], sequence=3), T3)
    assert change is not None
    expected = [f"a{i}" for i in range(15)] + [f"b{i}" for i in range(10)]
    assert log_texts(change.record.recent_logs) == expected[-RECENT_LOG_LINES:]


def test_added_logs_are_not_trimmed() -> None:
    count = RECENT_LOG_LINES + 5
    change = apply_event(running_record(), logs_event(*[f"l{i}" for i in range(count)]), T2)
    assert change is not None
    assert len(change.added_logs) == count
    assert len(change.record.recent_logs) == RECENT_LOG_LINES


def test_logs_on_pending_make_it_running() -> None:
    assert apply_all(pending_record(), logs_event("hello", sequence=1)).state is State.RUNNING


def test_logs_keep_progress_and_message() -> None:
    record = apply_all(running_record(), progress_event(30, "build", "Building.", sequence=2))
    record = apply_all(record, logs_event("x", sequence=3))
    assert (record.progress_percent, record.stage, record.status_message) == (
        30,
        "build",
        "Building.",
    )


# --------------------------------------------------------------------------- succeeded


def test_succeeded_finishes_with_result() -> None:
    event = succeeded_event({"image": "abc", "size": 3})
    record = apply_all(running_record(), event, now=T2)
    assert record.state is State.SUCCEEDED
    assert record.done is True
    assert operations_pb2.ToolResult.FromString(record.response or b"") == event.succeeded.result


def test_succeeded_sets_progress_to_100() -> None:
    record = apply_all(running_record(), progress_event(40, sequence=2))
    assert apply_all(record, succeeded_event({}, sequence=3)).progress_percent == 100


def test_succeeded_sets_times_and_message_and_no_error() -> None:
    record = apply_all(running_record(), succeeded_event({"ok": True}), now=T2)
    assert (record.update_time, record.end_time) == (T2, T2)
    assert record.status_message == "Succeeded."
    assert record.error is None


def test_succeeded_with_empty_result_stores_empty_bytes() -> None:
    event = event_at(1, 2)
    event.succeeded.SetInParent()
    assert apply_all(running_record(), event).response == b""


# --------------------------------------------------------------------------- failed


def test_failed_keeps_error_code_and_message() -> None:
    record = apply_all(running_record(), failed_event(code_pb2.RESOURCE_EXHAUSTED, "out of disk"))
    error = error_status(record.error)
    assert record.state is State.FAILED
    assert (error.code, error.message) == (code_pb2.RESOURCE_EXHAUSTED, "out of disk")


def test_failed_status_message_names_the_error() -> None:
    record = apply_all(running_record(), failed_event(code_pb2.INTERNAL, "boom"))
    assert record.status_message == "Failed: boom"


def test_failed_status_message_is_truncated() -> None:
    record = apply_all(
        running_record(), failed_event(code_pb2.INTERNAL, "x" * (MAX_MESSAGE_CHARS + 50))
    )
    assert len(record.status_message) == MAX_MESSAGE_CHARS
    assert record.status_message.startswith("Failed: x")


def test_failed_with_code_ok_becomes_unknown() -> None:
    record = apply_all(running_record(), failed_event(code_pb2.OK, "said ok but failed"))
    assert error_status(record.error).code == code_pb2.UNKNOWN


def test_failed_with_code_ok_does_not_modify_the_event() -> None:
    event = failed_event(code_pb2.OK, "said ok but failed")
    apply_all(running_record(), event)
    assert event.failed.error.code == code_pb2.OK


def test_failed_keeps_progress_and_has_no_response() -> None:
    record = apply_all(running_record(), progress_event(40, sequence=2))
    record = apply_all(record, failed_event(code_pb2.INTERNAL, "boom", sequence=3), now=T3)
    assert record.progress_percent == 40
    assert record.response is None
    assert record.end_time == T3


def test_failed_from_pending_is_allowed() -> None:
    record = apply_all(pending_record(), failed_event(code_pb2.INTERNAL, "no worker", sequence=1))
    assert record.state is State.FAILED


# --------------------------------------------------------------------------- cancelled


def test_cancelled_event_finishes_with_cancelled_error() -> None:
    cancelling = request_cancel(running_record(), T2)
    assert cancelling is not None
    record = apply_all(cancelling.record, cancelled_event(), now=T3)
    assert record.state is State.CANCELLED
    assert error_status(record.error).code == code_pb2.CANCELLED
    assert (record.status_message, record.end_time) == ("Cancelled.", T3)


def test_cancelled_event_keeps_progress() -> None:
    record = apply_all(running_record(), progress_event(70, sequence=2))
    assert apply_all(record, cancelled_event(sequence=3)).progress_percent == 70


def test_cancelled_event_sequence_follows_cancel_request() -> None:
    cancelling = request_cancel(running_record(), T2)
    assert cancelling is not None
    record = apply_all(cancelling.record, cancelled_event(), now=T3)
    assert record.sequence == cancelling.record.sequence + 1


def test_finishing_does_not_modify_the_given_record() -> None:
    running = running_record()
    snapshot = replace(running)
    apply_all(running, succeeded_event({}))
    assert running == snapshot
    assert running.state is State.RUNNING
