"""Strings from workers made storable: control characters escaped (PostgreSQL text cannot hold
NUL), tab and newline kept, in every string of an event."""

from __future__ import annotations

import pytest
from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.protobuf import json_format
from google.rpc import code_pb2, error_details_pb2, status_pb2
from tests.support.operations import Worker, metadata_of, new_operation

from formation_mcp.app import Application
from formation_mcp.identity import Caller
from formation_mcp.operations.storable import make_storable, storable_text


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("a\x00b", "a\\x00b"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("over\rwrite", "over\\x0dwrite"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b", "csi\\x9b"),
        ("bell\x07 vt\x0b ff\x0c", "bell\\x07 vt\\x0b ff\\x0c"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("ünïcödé ✓ \u2028", "ünïcödé ✓ \u2028"),
    ],
)
def test_control_characters_but_tab_and_newline_are_escaped(text: str, stored: str) -> None:
    assert storable_text(text) == stored


def test_a_clean_string_is_returned_as_it_is() -> None:
    text = "nothing to escape here"
    assert storable_text(text) is text


def event() -> queue_pb2.OperationEvent:
    return queue_pb2.OperationEvent(operation="operations/" + "0" * 32, attempt=1, sequence=1)


def test_log_lines_are_escaped() -> None:
    message = event()
    message.logs.lines.add(text="file\x00name", stream=operations_pb2.LogLine.STDERR)
    message.logs.lines.add(text="clean")
    assert make_storable(message)
    assert [line.text for line in message.logs.lines] == ["file\\x00name", "clean"]


def test_progress_stage_and_message_are_escaped() -> None:
    message = event()
    message.progress.stage = "copy\x00"
    message.progress.message = "copying a\x00b"
    assert make_storable(message)
    assert (message.progress.stage, message.progress.message) == ("copy\\x00", "copying a\\x00b")


def test_result_keys_and_values_are_escaped_at_every_depth() -> None:
    message = event()
    json_format.ParseDict(
        {"k\x00": {"inner\x1b": ["v\x00", 1, True, None, {"deep\x07": "x\x7f"}]}, "ok": "fine"},
        message.succeeded.result.output,
    )
    assert make_storable(message)
    assert json_format.MessageToDict(message.succeeded.result.output) == {
        "k\\x00": {"inner\\x1b": ["v\\x00", 1.0, True, None, {"deep\\x07": "x\\x7f"}]},
        "ok": "fine",
    }


def test_an_error_message_and_its_details_are_escaped() -> None:
    message = event()
    message.failed.error.CopyFrom(status_pb2.Status(code=code_pb2.INTERNAL, message="bad\x00"))
    message.failed.error.details.add().Pack(
        error_details_pb2.ErrorInfo(reason="R", metadata={"file\x00": "a\x00b"})
    )
    assert make_storable(message)
    info = error_details_pb2.ErrorInfo()
    assert message.failed.error.details[0].Unpack(info)
    assert message.failed.error.message == "bad\\x00"
    assert dict(info.metadata) == {"file\\x00": "a\\x00b"}


def test_an_event_with_nothing_to_escape_is_left_unchanged() -> None:
    message = event()
    json_format.ParseDict({"build": "abc", "files": ["a", "b"]}, message.succeeded.result.output)
    before = message.SerializeToString(deterministic=True)
    assert not make_storable(message)
    assert message.SerializeToString(deterministic=True) == before


async def test_an_event_applied_with_a_nul_is_stored_escaped(app: Application) -> None:
    """On PostgreSQL the write failed (text cannot hold NUL); on SQLite it kept the NUL."""
    name = await new_operation(app, "accounts/storable")
    worker = Worker(app, name)
    await worker.start()
    await worker.progress(50, "stage\x00", "copying a\x00b")
    operation = await app.operations.get(Caller("accounts/storable", frozenset()), name)
    metadata = metadata_of(operation)
    assert (metadata.stage, metadata.status_message) == ("stage\\x00", "copying a\\x00b")
