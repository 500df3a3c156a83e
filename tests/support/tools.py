"""Tools that exist only for tests: crashing workers, counting executions, control characters,
chosen stages. Test servers load them beside the README's demo tools (examples/demo_tools.py:
`test.echo`, `test.sleep`, ...) through FMCP_TOOL_MODULES (`TEST_TOOL_MODULES` in
tests/support/servers.py), so worker subprocesses get them too."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from typing import Any

from formation_mcp.errors import FailedPrecondition
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec

OBJECT = {"type": "object"}


async def crash(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Kills the whole worker process, as a crash would (only for worker subprocesses)."""
    await context.progress(5, "about to crash")
    os._exit(17)


async def crash_once(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Crashes the worker on the first attempt only; succeeds when redelivered."""
    if context.attempt == 1:
        os._exit(18)
    return {"attempt": context.attempt}


EXECUTIONS: Counter[str] = Counter()
"""How often `test.count` ran per operation in this process (in-process workers only)."""


HELD: asyncio.Event | None = None
"""When a test sets it, `test.count` runs with `held` wait for it (in-process workers only)."""


async def count(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    EXECUTIONS[context.operation] += 1
    if arguments.get("held") and HELD is not None:
        await HELD.wait()
    await asyncio.sleep(arguments.get("delay_ms", 0) / 1000)
    return {"runs": EXECUTIONS[context.operation]}


CONTROL_CHARACTERS = "nul\x00 esc\x1b[31m cr\r del\x7f c1\x9b bell\x07"
"""What a tool may see in a file name or a program's output; PostgreSQL text cannot hold NUL."""


async def control_chars(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Reports control characters in every string a worker sends (logs, progress, result keys
    and values, or its error message when `fail`)."""
    await context.log(f"line {CONTROL_CHARACTERS}", "a clean line\twith a tab")
    await context.progress(50, f"stage {CONTROL_CHARACTERS}", f"message {CONTROL_CHARACTERS}")
    if arguments.get("fail"):
        raise FailedPrecondition(f"failed on {CONTROL_CHARACTERS}", reason="TEST_FAILURE")
    return {f"key {CONTROL_CHARACTERS}": {"nested": [f"value {CONTROL_CHARACTERS}"]}}


async def stage(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Reports progress at the stage it is given, then succeeds."""
    await context.progress(50, arguments["stage"])
    return {"stage": arguments["stage"]}


def register(registry: ToolRegistry) -> None:
    registry.register(
        ToolSpec(
            name="test.crash",
            title="Crash",
            description="Kills its worker process.",
            version="1.0.0",
            category="test",
            input_schema=OBJECT,
            output_schema=OBJECT,
            long_running=True,
        ),
        crash,
    )
    registry.register(
        ToolSpec(
            name="test.crash_once",
            title="Crash once",
            description="Kills its worker once.",
            version="1.0.0",
            category="test",
            input_schema=OBJECT,
            output_schema=OBJECT,
            long_running=True,
        ),
        crash_once,
    )
    registry.register(
        ToolSpec(
            name="test.count",
            title="Count",
            description="Counts its executions.",
            version="1.0.0",
            category="test",
            input_schema={
                "type": "object",
                "properties": {"delay_ms": {"type": "integer"}, "held": {"type": "boolean"}},
            },
            output_schema=OBJECT,
            long_running=True,
        ),
        count,
    )
    registry.register(
        ToolSpec(
            name="test.control_chars",
            title="Control characters",
            description="Reports control characters in every string it sends.",
            version="1.0.0",
            category="test",
            input_schema={
                "type": "object",
                "properties": {"fail": {"type": "boolean"}},
                "additionalProperties": False,
            },
            output_schema=OBJECT,
            long_running=True,
        ),
        control_chars,
    )
    registry.register(
        ToolSpec(
            name="test.stage",
            title="Stage",
            description="Reports progress at the stage it is given.",
            version="1.0.0",
            category="test",
            input_schema={
                "type": "object",
                "properties": {"stage": {"type": "string", "maxLength": 64}},
                "required": ["stage"],
                "additionalProperties": False,
            },
            output_schema=OBJECT,
            long_running=True,
        ),
        stage,
    )
