"""Exit codes per error class, and the progress display on a terminal and elsewhere."""

from __future__ import annotations

import io

import grpc
import pytest

from formation_mcp.cli.output import EXIT_CODES, fail_with_client_error
from formation_mcp.cli.progress import ProgressDisplay
from formation_mcp.client.errors import ERROR_CLASSES, FieldViolation
from formation_mcp.client.models import LogLine, Operation, OperationMetadata


@pytest.mark.parametrize("code", list(ERROR_CLASSES))
def test_every_error_class_exits_with_its_code(
    code: grpc.StatusCode, capsys: pytest.CaptureFixture[str]
) -> None:
    error = ERROR_CLASSES[code](
        "bad", reason="WHY", field_violations=(FieldViolation("arguments.x", "too big"),)
    )
    with pytest.raises(SystemExit) as exited:
        fail_with_client_error(error)
    assert exited.value.code == EXIT_CODES.get(code, 1)
    err = capsys.readouterr().err
    assert f"error: {code.name} (WHY): bad" in err and "  arguments.x: too big" in err


def test_the_documented_exit_codes() -> None:
    assert {code.name: number for code, number in EXIT_CODES.items()} == {
        "INVALID_ARGUMENT": 3,
        "UNAUTHENTICATED": 4,
        "PERMISSION_DENIED": 5,
        "NOT_FOUND": 6,
        "ALREADY_EXISTS": 7,
        "FAILED_PRECONDITION": 8,
        "RESOURCE_EXHAUSTED": 9,
        "UNAVAILABLE": 10,
        "DEADLINE_EXCEEDED": 11,
        "CANCELLED": 12,
    }


def _snapshot(percent: int, stage: str, *lines: str) -> Operation:
    meta = OperationMetadata(
        tool="t",
        owner="o",
        state="RUNNING",
        progress_percent=percent,
        stage=stage,
        status_message="",
        create_time=None,
        update_time=None,
        end_time=None,
        sequence=1,
        cancel_requested=False,
        attempt=1,
        logs=[LogLine(sequence=1, time=None, stream="STDOUT", text=t) for t in lines],
        request_id="",
    )
    return Operation(name="operations/x", done=False, metadata=meta)


def test_on_a_terminal_one_line_is_redrawn_with_bar_stage_and_latest_log() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, terminal=True)
    display.update(_snapshot(50, "building", "first", "latest"))
    display.finish()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K[############------------]  50%  building  latest")
    assert text.endswith("\n")


def test_elsewhere_every_change_and_log_line_is_a_plain_line() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, terminal=False)
    display.update(_snapshot(10, "a", "one"))
    display.update(_snapshot(10, "a", "two"))
    display.update(_snapshot(20, "b"))
    assert stream.getvalue().splitlines() == [
        "[ 10%] RUNNING a",
        "  | one",
        "  | two",
        "[ 20%] RUNNING b",
    ]
