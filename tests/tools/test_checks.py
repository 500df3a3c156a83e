"""Argument checks at CallTool time: small arguments of a tool without a precheck are checked
inline; big ones, and every precheck, on the argument-check threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from formation_mcp.errors import InvalidArgument
from formation_mcp.structs import StructSize
from formation_mcp.tools import audit
from formation_mcp.tools.checks import (
    HEAVY_CHARS,
    HEAVY_VALUES,
    WorkOrder,
    check_arguments,
    work_item,
)
from formation_mcp.tools.registry import ToolSpec

SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "additionalProperties": False,
}
SMALL = StructSize(values=1, chars=10)


def spec_recording_threads(threads: list[str], *, precheck: bool) -> ToolSpec:
    def record(arguments: dict[str, Any]) -> None:
        threads.append(threading.current_thread().name)

    return ToolSpec(
        name="test.checked",
        title="Checked",
        description="Records where its checks ran.",
        version="1.0.0",
        category="test",
        input_schema=SCHEMA,
        output_schema={"type": "object"},
        precheck=record if precheck else None,
    )


@pytest.mark.parametrize(
    ("size", "precheck", "off_the_loop"),
    [
        (SMALL, False, False),
        (None, False, False),
        (SMALL, True, True),
        (StructSize(values=HEAVY_VALUES + 1, chars=10), False, True),
        (StructSize(values=1, chars=HEAVY_CHARS + 1), False, True),
    ],
    ids=["small", "unmeasured", "precheck", "many-values", "many-characters"],
)
async def test_where_arguments_are_checked(
    size: StructSize | None, precheck: bool, off_the_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    spec = spec_recording_threads(threads, precheck=precheck)
    digest = audit.arguments_digest

    def recording_digest(arguments: dict[str, Any]) -> str:  # runs with the schema check
        threads.append(threading.current_thread().name)
        return digest(arguments)

    monkeypatch.setattr(audit, "arguments_digest", recording_digest)

    await check_arguments(spec, {"text": "hi"}, size)

    on_check_threads = [name.startswith("fmcp-argument-checks") for name in threads]
    assert on_check_threads == [off_the_loop] * (2 if precheck else 1)


async def test_invalid_arguments_are_returned_with_their_digest() -> None:
    spec = spec_recording_threads([], precheck=False)
    arguments = {"text": 3}

    checked = await check_arguments(spec, arguments, SMALL)

    assert isinstance(checked.invalid, InvalidArgument)
    assert checked.invalid.field_violations[0].field == "arguments.text"
    assert checked.digest == audit.arguments_digest(arguments)


async def test_a_work_item_carries_the_arguments_big_or_small() -> None:
    spec = spec_recording_threads([], precheck=False)
    order = WorkOrder("operations/1", "test.checked", "accounts/a", None)
    big = StructSize(values=HEAVY_VALUES + 1, chars=10)

    for size in (SMALL, big):
        checked = await check_arguments(spec, {"text": "hi"}, size)
        item = await work_item(order, {"text": "hi"}, checked)
        assert (item.operation, item.tool, item.owner, item.attempt) == (
            "operations/1",
            "test.checked",
            "accounts/a",
            1,
        )
        assert item.arguments["text"] == "hi"
