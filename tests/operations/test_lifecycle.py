"""The operation state machine: new_record, request_cancel and apply_event (pure functions)."""

from __future__ import annotations

import pytest
from formation.mcp.v1 import operations_pb2
from google.rpc import code_pb2
from tests.support.operation_records import (
    OPERATION_ID,
    T0,
    T1,
    T2,
    T3,
    TERMINAL_STATES,
    Event,
    apply_all,
    cancelled_event,
    error_status,
    event_at,
    failed_event,
    finished_record,
    logs_event,
    pending_record,
    progress_event,
    running_record,
    started_event,
    succeeded_event,
)

from formation_mcp.operations.lifecycle import (
    State,
    apply_event,
    new_record,
    request_cancel,
)

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
    record = pending_record()
    assert record.state is State.PENDING
    assert record.done is False


def test_new_record_keeps_identity_fields() -> None:
    record = pending_record()
    assert (record.id, record.owner, record.tool, record.request_id) == (
        OPERATION_ID,
        "acct-1",
        "test.sleep",
        "req-1",
    )


def test_new_record_accepts_no_request_id() -> None:
    assert new_record(OPERATION_ID, "acct-1", "test.sleep", None, T0).request_id is None


def test_new_record_initial_progress_and_messages() -> None:
    record = pending_record()
    assert (record.progress_percent, record.stage, record.status_message) == (
        0,
        "",
        "Waiting for a worker.",
    )


def test_new_record_initial_counters() -> None:
    record = pending_record()
    assert (record.sequence, record.attempt, record.event_attempt, record.event_sequence) == (
        1,
        0,
        0,
        0,
    )


def test_new_record_has_no_result_logs_or_cancel_request() -> None:
    record = pending_record()
    assert record.recent_logs == ()
    assert record.response is None
    assert record.error is None
    assert record.cancel_requested is False


def test_new_record_times() -> None:
    record = pending_record()
    assert (record.create_time, record.update_time, record.end_time) == (T0, T0, None)


# --------------------------------------------------------------------------- request_cancel


def test_cancel_pending_cancels_at_once() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert change.record.state is State.CANCELLED
    assert change.record.done is True


def test_cancel_pending_sets_google_rpc_cancelled_error() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert error_status(change.record.error).code == code_pb2.CANCELLED


def test_cancel_pending_advances_sequence_by_one() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert change.record.sequence == 2


def test_cancel_pending_sets_end_and_update_time() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert (change.record.update_time, change.record.end_time) == (T1, T1)


def test_cancel_pending_status_message_and_no_response() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert change.record.status_message == "Cancelled."
    assert change.record.response is None


def test_cancel_pending_adds_no_logs() -> None:
    change = request_cancel(pending_record(), T1)
    assert change is not None
    assert change.added_logs == ()


def test_cancel_running_flags_cancel_requested() -> None:
    change = request_cancel(running_record(), T2)
    assert change is not None
    assert change.record.cancel_requested is True
    assert change.record.state is State.RUNNING
    assert change.record.done is False


def test_cancel_running_advances_sequence_by_one() -> None:
    running = running_record()
    change = request_cancel(running, T2)
    assert change is not None
    assert change.record.sequence == running.sequence + 1


def test_cancel_running_sets_message_and_update_time_only() -> None:
    change = request_cancel(running_record(), T2)
    assert change is not None
    record = change.record
    assert record.status_message == "Cancellation requested."
    assert record.update_time == T2
    assert record.end_time is None
    assert record.error is None


def test_cancel_running_keeps_event_position() -> None:
    running = running_record()
    change = request_cancel(running, T2)
    assert change is not None
    assert (change.record.event_attempt, change.record.event_sequence) == (1, 1)


def test_cancel_running_twice_second_is_none() -> None:
    first = request_cancel(running_record(), T2)
    assert first is not None
    assert request_cancel(first.record, T3) is None


@pytest.mark.parametrize("state", TERMINAL_STATES)
def test_cancel_finished_is_none(state: State) -> None:
    assert request_cancel(finished_record(state), T3) is None


def test_cancel_does_not_modify_the_given_record() -> None:
    pending = pending_record()
    request_cancel(pending, T1)
    assert pending == pending_record()


# --------------------------------------------------------------------------- ordering


def test_event_advances_sequence_and_records_position() -> None:
    record = apply_all(pending_record(), started_event(attempt=3, sequence=7))
    assert (record.sequence, record.event_attempt, record.event_sequence) == (2, 3, 7)


def test_event_sets_update_time() -> None:
    assert apply_all(pending_record(), started_event(), now=T2).update_time == T2


def test_each_applied_event_increments_sequence_by_one() -> None:
    record = pending_record()
    events = [
        started_event(),
        progress_event(10, sequence=2),
        logs_event("a", sequence=3),
        progress_event(20, sequence=4),
    ]
    for event in events:
        record = apply_all(record, event)
    assert record.sequence == 1 + len(events)


def test_duplicate_event_is_ignored() -> None:
    running = running_record()
    assert apply_event(running, started_event(), T2) is None


def test_stale_event_of_same_attempt_is_ignored() -> None:
    record = apply_all(running_record(), progress_event(50, sequence=5))
    assert apply_event(record, progress_event(60, sequence=4), T2) is None


def test_event_of_older_attempt_is_ignored_even_with_higher_sequence() -> None:
    record = apply_all(pending_record(), started_event(attempt=2, sequence=1))
    assert apply_event(record, progress_event(60, attempt=1, sequence=99), T2) is None


def test_event_of_newer_attempt_applies_even_with_lower_sequence() -> None:
    record = apply_all(running_record(), progress_event(40, sequence=9))
    restarted = apply_all(record, started_event(attempt=2, sequence=1))
    assert (restarted.attempt, restarted.event_attempt, restarted.event_sequence) == (2, 2, 1)


def test_event_without_kind_changes_nothing() -> None:
    assert apply_event(running_record(), event_at(1, 2), T2) is None


@pytest.mark.parametrize("state", TERMINAL_STATES)
@pytest.mark.parametrize(
    "event",
    [
        started_event(attempt=2, sequence=1),
        progress_event(90, sequence=10),
        logs_event("late", sequence=10),
        succeeded_event({"late": True}, sequence=10),
        failed_event(code_pb2.INTERNAL, "late", sequence=10),
        cancelled_event(sequence=10),
    ],
    ids=["started", "progress", "logs", "succeeded", "failed", "cancelled"],
)
def test_terminal_state_is_final(state: State, event: Event) -> None:
    assert apply_event(finished_record(state), event, T3) is None


def test_apply_event_does_not_modify_the_given_record() -> None:
    pending = pending_record()
    apply_event(pending, started_event(), T1)
    assert pending == pending_record()


# --------------------------------------------------------------------------- started


def test_started_makes_pending_running() -> None:
    record = running_record()
    assert record.state is State.RUNNING
    assert record.status_message == "Running."


def test_started_sets_attempt_from_event() -> None:
    assert apply_all(pending_record(), started_event(attempt=4)).attempt == 4


def test_started_with_attempt_zero_counts_as_first_attempt() -> None:
    assert apply_all(pending_record(), started_event(attempt=0, sequence=1)).attempt == 1


def test_started_adds_no_logs() -> None:
    change = apply_event(pending_record(), started_event(), T1)
    assert change is not None
    assert change.added_logs == ()


def test_started_after_cancel_keeps_cancellation_message() -> None:
    record = apply_all(pending_record(), started_event(attempt=1, sequence=1))
    cancelled = request_cancel(record, T2)
    assert cancelled is not None
    restarted = apply_all(cancelled.record, started_event(attempt=2, sequence=1), now=T3)
    assert restarted.status_message == "Cancellation requested."
    assert restarted.cancel_requested is True


def test_restart_keeps_progress() -> None:
    record = apply_all(running_record(), progress_event(40, "build", "halfway"))
    restarted = apply_all(record, started_event(attempt=2, sequence=1))
    assert (restarted.progress_percent, restarted.stage) == (40, "build")
