"""The operation state machine: new_record, request_cancel and apply_event (pure functions)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.protobuf import json_format, timestamp_pb2
from google.rpc import code_pb2, status_pb2

from formation_mcp.operations.lifecycle import (
    MAX_MESSAGE_CHARS,
    MAX_STAGE_CHARS,
    RECENT_LOG_LINES,
    OperationRecord,
    State,
    apply_event,
    new_record,
    request_cancel,
)

OPERATION_ID = "0" * 31 + "1"
NAME = f"operations/{OPERATION_ID}"
T0 = 1_700_000_000_000_000
T1 = T0 + 1_000
T2 = T0 + 2_000
T3 = T0 + 3_000

Event = queue_pb2.OperationEvent

# --------------------------------------------------------------------------- helpers


def _pending() -> OperationRecord:
    return new_record(OPERATION_ID, "acct-1", "test.sleep", "req-1", T0)


def _event(attempt: int, sequence: int) -> Event:
    return Event(operation=NAME, attempt=attempt, sequence=sequence)


def _started(attempt: int = 1, sequence: int = 1) -> Event:
    event = _event(attempt, sequence)
    event.started.node = "node-a"
    return event


def _progress(
    percent: int, stage: str = "", message: str = "", *, attempt: int = 1, sequence: int = 2
) -> Event:
    event = _event(attempt, sequence)
    event.progress.percent = percent
    event.progress.stage = stage
    event.progress.message = message
    return event


def _line(
    text: str, stream: operations_pb2.LogLine.Stream.ValueType = operations_pb2.LogLine.STDOUT
) -> operations_pb2.LogLine:
    return operations_pb2.LogLine(text=text, stream=stream)


def _logs(*texts: str, attempt: int = 1, sequence: int = 2) -> Event:
    event = _event(attempt, sequence)
    event.logs.lines.extend(_line(text) for text in texts)
    return event


def _succeeded(output: dict[str, object], *, attempt: int = 1, sequence: int = 2) -> Event:
    event = _event(attempt, sequence)
    json_format.ParseDict(output, event.succeeded.result.output)
    return event


def _failed(code: int, message: str, *, attempt: int = 1, sequence: int = 2) -> Event:
    event = _event(attempt, sequence)
    event.failed.error.CopyFrom(status_pb2.Status(code=code, message=message))
    return event


def _cancelled(*, attempt: int = 1, sequence: int = 2) -> Event:
    event = _event(attempt, sequence)
    event.cancelled.SetInParent()
    return event


def _apply(record: OperationRecord, event: Event, now: int = T1) -> OperationRecord:
    change = apply_event(record, event, now)
    assert change is not None, "the event should have been applied"
    return change.record


def _running() -> OperationRecord:
    """A record a worker started (attempt 1, event sequence 1)."""
    return _apply(_pending(), _started())


def _status(error: bytes | None) -> status_pb2.Status:
    assert error is not None, "the record should carry an error"
    return status_pb2.Status.FromString(error)


def _texts(lines: tuple[operations_pb2.LogLine, ...]) -> list[str]:
    return [line.text for line in lines]


def _finished(state: State) -> OperationRecord:
    running = _running()
    if state is State.SUCCEEDED:
        return _apply(running, _succeeded({"ok": True}))
    if state is State.FAILED:
        return _apply(running, _failed(code_pb2.INTERNAL, "boom"))
    return _apply(running, _cancelled())


TERMINAL_STATES = [State.SUCCEEDED, State.FAILED, State.CANCELLED]

# --------------------------------------------------------------------------- State


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (State.PENDING, False),
        (State.RUNNING, False),
        (State.SUCCEEDED, True),
        (State.FAILED, True),
        (State.CANCELLED, True),
    ],
)
def test_state_is_terminal(state: State, terminal: bool) -> None:
    assert state.is_terminal is terminal


@pytest.mark.parametrize("state", list(State))
def test_state_values_match_the_proto_enum(state: State) -> None:
    assert operations_pb2.OperationMetadata.State.Name(state.value) == state.name


# --------------------------------------------------------------------------- new_record


def test_new_record_starts_pending_and_not_done() -> None:
    record = _pending()
    assert record.state is State.PENDING
    assert record.done is False


def test_new_record_keeps_identity_fields() -> None:
    record = _pending()
    assert (record.id, record.owner, record.tool, record.request_id) == (
        OPERATION_ID,
        "acct-1",
        "test.sleep",
        "req-1",
    )


def test_new_record_accepts_no_request_id() -> None:
    assert new_record(OPERATION_ID, "acct-1", "test.sleep", None, T0).request_id is None


def test_new_record_initial_progress_and_messages() -> None:
    record = _pending()
    assert (record.progress_percent, record.stage, record.status_message) == (
        0,
        "",
        "Waiting for a worker.",
    )


def test_new_record_initial_counters() -> None:
    record = _pending()
    assert (record.sequence, record.attempt, record.event_attempt, record.event_sequence) == (
        1,
        0,
        0,
        0,
    )


def test_new_record_has_no_result_logs_or_cancel_request() -> None:
    record = _pending()
    assert record.recent_logs == ()
    assert record.response is None
    assert record.error is None
    assert record.cancel_requested is False


def test_new_record_times() -> None:
    record = _pending()
    assert (record.create_time, record.update_time, record.end_time) == (T0, T0, None)


# --------------------------------------------------------------------------- request_cancel


def test_cancel_pending_cancels_at_once() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert change.record.state is State.CANCELLED
    assert change.record.done is True


def test_cancel_pending_sets_google_rpc_cancelled_error() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert _status(change.record.error).code == code_pb2.CANCELLED


def test_cancel_pending_advances_sequence_by_one() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert change.record.sequence == 2


def test_cancel_pending_sets_end_and_update_time() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert (change.record.update_time, change.record.end_time) == (T1, T1)


def test_cancel_pending_status_message_and_no_response() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert change.record.status_message == "Cancelled."
    assert change.record.response is None


def test_cancel_pending_adds_no_logs() -> None:
    change = request_cancel(_pending(), T1)
    assert change is not None
    assert change.added_logs == ()


def test_cancel_running_flags_cancel_requested() -> None:
    change = request_cancel(_running(), T2)
    assert change is not None
    assert change.record.cancel_requested is True
    assert change.record.state is State.RUNNING
    assert change.record.done is False


def test_cancel_running_advances_sequence_by_one() -> None:
    running = _running()
    change = request_cancel(running, T2)
    assert change is not None
    assert change.record.sequence == running.sequence + 1


def test_cancel_running_sets_message_and_update_time_only() -> None:
    change = request_cancel(_running(), T2)
    assert change is not None
    record = change.record
    assert record.status_message == "Cancellation requested."
    assert record.update_time == T2
    assert record.end_time is None
    assert record.error is None


def test_cancel_running_keeps_event_position() -> None:
    running = _running()
    change = request_cancel(running, T2)
    assert change is not None
    assert (change.record.event_attempt, change.record.event_sequence) == (1, 1)


def test_cancel_running_twice_second_is_none() -> None:
    first = request_cancel(_running(), T2)
    assert first is not None
    assert request_cancel(first.record, T3) is None


@pytest.mark.parametrize("state", TERMINAL_STATES)
def test_cancel_finished_is_none(state: State) -> None:
    assert request_cancel(_finished(state), T3) is None


def test_cancel_does_not_modify_the_given_record() -> None:
    pending = _pending()
    request_cancel(pending, T1)
    assert pending == _pending()


# --------------------------------------------------------------------------- ordering


def test_event_advances_sequence_and_records_position() -> None:
    record = _apply(_pending(), _started(attempt=3, sequence=7))
    assert (record.sequence, record.event_attempt, record.event_sequence) == (2, 3, 7)


def test_event_sets_update_time() -> None:
    assert _apply(_pending(), _started(), now=T2).update_time == T2


def test_each_applied_event_increments_sequence_by_one() -> None:
    record = _pending()
    events = [
        _started(),
        _progress(10, sequence=2),
        _logs("a", sequence=3),
        _progress(20, sequence=4),
    ]
    for event in events:
        record = _apply(record, event)
    assert record.sequence == 1 + len(events)


def test_duplicate_event_is_ignored() -> None:
    running = _running()
    assert apply_event(running, _started(), T2) is None


def test_stale_event_of_same_attempt_is_ignored() -> None:
    record = _apply(_running(), _progress(50, sequence=5))
    assert apply_event(record, _progress(60, sequence=4), T2) is None


def test_event_of_older_attempt_is_ignored_even_with_higher_sequence() -> None:
    record = _apply(_pending(), _started(attempt=2, sequence=1))
    assert apply_event(record, _progress(60, attempt=1, sequence=99), T2) is None


def test_event_of_newer_attempt_applies_even_with_lower_sequence() -> None:
    record = _apply(_running(), _progress(40, sequence=9))
    restarted = _apply(record, _started(attempt=2, sequence=1))
    assert (restarted.attempt, restarted.event_attempt, restarted.event_sequence) == (2, 2, 1)


def test_event_without_kind_changes_nothing() -> None:
    assert apply_event(_running(), _event(1, 2), T2) is None


@pytest.mark.parametrize("state", TERMINAL_STATES)
@pytest.mark.parametrize(
    "event",
    [
        _started(attempt=2, sequence=1),
        _progress(90, sequence=10),
        _logs("late", sequence=10),
        _succeeded({"late": True}, sequence=10),
        _failed(code_pb2.INTERNAL, "late", sequence=10),
        _cancelled(sequence=10),
    ],
    ids=["started", "progress", "logs", "succeeded", "failed", "cancelled"],
)
def test_terminal_state_is_final(state: State, event: Event) -> None:
    assert apply_event(_finished(state), event, T3) is None


def test_apply_event_does_not_modify_the_given_record() -> None:
    pending = _pending()
    apply_event(pending, _started(), T1)
    assert pending == _pending()


# --------------------------------------------------------------------------- started


def test_started_makes_pending_running() -> None:
    record = _running()
    assert record.state is State.RUNNING
    assert record.status_message == "Running."


def test_started_sets_attempt_from_event() -> None:
    assert _apply(_pending(), _started(attempt=4)).attempt == 4


def test_started_with_attempt_zero_counts_as_first_attempt() -> None:
    assert _apply(_pending(), _started(attempt=0, sequence=1)).attempt == 1


def test_started_adds_no_logs() -> None:
    change = apply_event(_pending(), _started(), T1)
    assert change is not None
    assert change.added_logs == ()


def test_started_after_cancel_keeps_cancellation_message() -> None:
    record = _apply(_pending(), _started(attempt=1, sequence=1))
    cancelled = request_cancel(record, T2)
    assert cancelled is not None
    restarted = _apply(cancelled.record, _started(attempt=2, sequence=1), now=T3)
    assert restarted.status_message == "Cancellation requested."
    assert restarted.cancel_requested is True


def test_restart_keeps_progress() -> None:
    record = _apply(_running(), _progress(40, "build", "halfway"))
    restarted = _apply(record, _started(attempt=2, sequence=1))
    assert (restarted.progress_percent, restarted.stage) == (40, "build")


# --------------------------------------------------------------------------- progress


def test_progress_sets_percent_stage_and_message() -> None:
    record = _apply(_running(), _progress(30, "build", "Compiling."))
    assert (record.progress_percent, record.stage, record.status_message) == (
        30,
        "build",
        "Compiling.",
    )


def test_progress_on_pending_makes_it_running() -> None:
    record = _apply(_pending(), _progress(10, sequence=1))
    assert record.state is State.RUNNING


@pytest.mark.parametrize(
    ("percent", "expected"),
    [(0, 0), (1, 1), (55, 55), (100, 100), (101, 100), (1_000_000, 100), (-1, 0), (-500, 0)],
)
def test_progress_is_clamped_to_0_100(percent: int, expected: int) -> None:
    assert _apply(_running(), _progress(percent)).progress_percent == expected


def test_progress_never_decreases() -> None:
    record = _apply(_running(), _progress(60, sequence=2))
    assert _apply(record, _progress(30, sequence=3)).progress_percent == 60


def test_progress_lower_percent_still_updates_stage_and_message() -> None:
    record = _apply(_running(), _progress(60, "build", "Building.", sequence=2))
    record = _apply(record, _progress(30, "upload", "Uploading.", sequence=3))
    assert (record.stage, record.status_message) == ("upload", "Uploading.")


def test_progress_empty_stage_and_message_keep_previous() -> None:
    record = _apply(_running(), _progress(20, "build", "Building.", sequence=2))
    record = _apply(record, _progress(40, "", "", sequence=3))
    assert (record.progress_percent, record.stage, record.status_message) == (
        40,
        "build",
        "Building.",
    )


def test_progress_stage_is_truncated() -> None:
    record = _apply(_running(), _progress(1, "s" * (MAX_STAGE_CHARS + 10)))
    assert record.stage == "s" * MAX_STAGE_CHARS


def test_progress_message_is_truncated() -> None:
    record = _apply(_running(), _progress(1, message="m" * (MAX_MESSAGE_CHARS + 10)))
    assert record.status_message == "m" * MAX_MESSAGE_CHARS


def test_progress_adds_no_logs() -> None:
    change = apply_event(_running(), _progress(10), T2)
    assert change is not None
    assert change.added_logs == ()


def test_progress_before_started_sets_attempt() -> None:
    record = _apply(_pending(), _progress(10, attempt=1, sequence=2))
    assert record.attempt == 1


# --------------------------------------------------------------------------- logs


def test_logs_are_added_to_recent_logs_and_reported_as_added() -> None:
    change = apply_event(_running(), _logs("one", "two"), T2)
    assert change is not None
    assert _texts(change.record.recent_logs) == ["one", "two"]
    assert _texts(change.added_logs) == ["one", "two"]


def test_logs_are_stamped_with_the_changes_sequence() -> None:
    change = apply_event(_running(), _logs("one", "two"), T2)
    assert change is not None
    assert {line.sequence for line in change.added_logs} == {change.record.sequence}


def test_logs_keep_stream_and_text() -> None:
    event = _event(1, 2)
    event.logs.lines.append(_line("oops", operations_pb2.LogLine.STDERR))
    change = apply_event(_running(), event, T2)
    assert change is not None
    (line,) = change.added_logs
    assert (line.text, line.stream) == ("oops", operations_pb2.LogLine.STDERR)


def test_logs_without_time_get_the_change_time() -> None:
    change = apply_event(_running(), _logs("one"), T2)
    assert change is not None
    assert change.added_logs[0].time.ToMicroseconds() == T2


def test_logs_with_time_keep_it() -> None:
    event = _event(1, 2)
    line = _line("one")
    line.time.CopyFrom(timestamp_pb2.Timestamp(seconds=1_600_000_000))
    event.logs.lines.append(line)
    change = apply_event(_running(), event, T2)
    assert change is not None
    assert change.added_logs[0].time.seconds == 1_600_000_000


def test_logs_do_not_modify_the_event() -> None:
    event = _logs("one")
    apply_event(_running(), event, T2)
    assert event.logs.lines[0].sequence == 0
    assert not event.logs.lines[0].HasField("time")


def test_logs_accumulate_across_changes_with_their_own_sequences() -> None:
    first = apply_event(_running(), _logs("a", sequence=2), T2)
    assert first is not None
    second = apply_event(first.record, _logs("b", sequence=3), T3)
    assert second is not None
    assert [(line.text, line.sequence) for line in second.record.recent_logs] == [
        ("a", first.record.sequence),
        ("b", second.record.sequence),
    ]


def test_recent_logs_are_trimmed_to_the_newest_lines() -> None:
    record = _apply(_running(), _logs(*[f"a{i}" for i in range(15)], sequence=2))
    change = apply_event(record, _logs(*[f"b{i}" for i in range(10)], sequence=3), T3)
    assert change is not None
    expected = [f"a{i}" for i in range(15)] + [f"b{i}" for i in range(10)]
    assert _texts(change.record.recent_logs) == expected[-RECENT_LOG_LINES:]


def test_added_logs_are_not_trimmed() -> None:
    count = RECENT_LOG_LINES + 5
    change = apply_event(_running(), _logs(*[f"l{i}" for i in range(count)]), T2)
    assert change is not None
    assert len(change.added_logs) == count
    assert len(change.record.recent_logs) == RECENT_LOG_LINES


def test_logs_on_pending_make_it_running() -> None:
    assert _apply(_pending(), _logs("hello", sequence=1)).state is State.RUNNING


def test_logs_keep_progress_and_message() -> None:
    record = _apply(_running(), _progress(30, "build", "Building.", sequence=2))
    record = _apply(record, _logs("x", sequence=3))
    assert (record.progress_percent, record.stage, record.status_message) == (
        30,
        "build",
        "Building.",
    )


# --------------------------------------------------------------------------- succeeded


def test_succeeded_finishes_with_result() -> None:
    event = _succeeded({"image": "abc", "size": 3})
    record = _apply(_running(), event, now=T2)
    assert record.state is State.SUCCEEDED
    assert record.done is True
    assert operations_pb2.ToolResult.FromString(record.response or b"") == event.succeeded.result


def test_succeeded_sets_progress_to_100() -> None:
    record = _apply(_running(), _progress(40, sequence=2))
    assert _apply(record, _succeeded({}, sequence=3)).progress_percent == 100


def test_succeeded_sets_times_and_message_and_no_error() -> None:
    record = _apply(_running(), _succeeded({"ok": True}), now=T2)
    assert (record.update_time, record.end_time) == (T2, T2)
    assert record.status_message == "Succeeded."
    assert record.error is None


def test_succeeded_with_empty_result_stores_empty_bytes() -> None:
    event = _event(1, 2)
    event.succeeded.SetInParent()
    assert _apply(_running(), event).response == b""


# --------------------------------------------------------------------------- failed


def test_failed_keeps_error_code_and_message() -> None:
    record = _apply(_running(), _failed(code_pb2.RESOURCE_EXHAUSTED, "out of disk"))
    error = _status(record.error)
    assert record.state is State.FAILED
    assert (error.code, error.message) == (code_pb2.RESOURCE_EXHAUSTED, "out of disk")


def test_failed_status_message_names_the_error() -> None:
    record = _apply(_running(), _failed(code_pb2.INTERNAL, "boom"))
    assert record.status_message == "Failed: boom"


def test_failed_status_message_is_truncated() -> None:
    record = _apply(_running(), _failed(code_pb2.INTERNAL, "x" * (MAX_MESSAGE_CHARS + 50)))
    assert len(record.status_message) == MAX_MESSAGE_CHARS
    assert record.status_message.startswith("Failed: x")


def test_failed_with_code_ok_becomes_unknown() -> None:
    record = _apply(_running(), _failed(code_pb2.OK, "said ok but failed"))
    assert _status(record.error).code == code_pb2.UNKNOWN


def test_failed_with_code_ok_does_not_modify_the_event() -> None:
    event = _failed(code_pb2.OK, "said ok but failed")
    _apply(_running(), event)
    assert event.failed.error.code == code_pb2.OK


def test_failed_keeps_progress_and_has_no_response() -> None:
    record = _apply(_running(), _progress(40, sequence=2))
    record = _apply(record, _failed(code_pb2.INTERNAL, "boom", sequence=3), now=T3)
    assert record.progress_percent == 40
    assert record.response is None
    assert record.end_time == T3


def test_failed_from_pending_is_allowed() -> None:
    record = _apply(_pending(), _failed(code_pb2.INTERNAL, "no worker", sequence=1))
    assert record.state is State.FAILED


# --------------------------------------------------------------------------- cancelled


def test_cancelled_event_finishes_with_cancelled_error() -> None:
    cancelling = request_cancel(_running(), T2)
    assert cancelling is not None
    record = _apply(cancelling.record, _cancelled(), now=T3)
    assert record.state is State.CANCELLED
    assert _status(record.error).code == code_pb2.CANCELLED
    assert (record.status_message, record.end_time) == ("Cancelled.", T3)


def test_cancelled_event_keeps_progress() -> None:
    record = _apply(_running(), _progress(70, sequence=2))
    assert _apply(record, _cancelled(sequence=3)).progress_percent == 70


def test_cancelled_event_sequence_follows_cancel_request() -> None:
    cancelling = request_cancel(_running(), T2)
    assert cancelling is not None
    record = _apply(cancelling.record, _cancelled(), now=T3)
    assert record.sequence == cancelling.record.sequence + 1


def test_finishing_does_not_modify_the_given_record() -> None:
    running = _running()
    snapshot = replace(running)
    _apply(running, _succeeded({}))
    assert running == snapshot
    assert running.state is State.RUNNING
