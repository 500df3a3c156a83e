"""Demo tools to try the API with: quick, long-running, failing, read-only and admin-only ones.

Load them into a server with `FMCP_TOOL_MODULES=examples.demo_tools` from the repository root
(`PYTHONPATH=.`), as the README's worked example does. The tests load them too (beside tools
that exist only for tests, in tests/support/tools.py), so the names below are what the README,
the tests and MCP hosts call: `test.echo`, `test.sleep`, `test.fail`, `test.read`, `test.admin`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from formation_mcp.errors import FailedPrecondition
from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec

OBJECT = {"type": "object"}


async def echo(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"echo": arguments["text"] * arguments.get("count", 1)}


async def sleep(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    steps = arguments.get("steps", 3)
    delay = arguments.get("delay_ms", 10) / 1000
    for step in range(1, steps + 1):
        await asyncio.sleep(delay)
        context.check_cancelled()
        await context.log(f"step {step} of {steps}")
        await context.progress(step * 100 // steps, "sleeping", f"step {step} of {steps}")
    return {"steps": steps}


async def fail(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    await context.progress(10, "checking")
    raise FailedPrecondition("the test tool failed on purpose", reason="TEST_FAILURE")


async def read(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"value": 42}


def register(registry: ToolRegistry) -> None:
    registry.register(
        ToolSpec(
            name="test.echo",
            title="Echo",
            description="Returns its text, repeated.",
            version="1.0.0",
            category="test",
            input_schema={
                "type": "object",
                "properties": {
                    "text": {"type": "string", "maxLength": 100},
                    "count": {"type": "integer", "minimum": 1, "maximum": 10},
                },
                "required": ["text"],
                "additionalProperties": False,
            },
            output_schema={
                "type": "object",
                "properties": {"echo": {"type": "string"}},
                "required": ["echo"],
            },
            idempotent=True,
            aliases=("test_echo",),
        ),
        echo,
    )
    registry.register(
        ToolSpec(
            name="test.sleep",
            title="Sleep",
            description="Sleeps in steps, reporting progress.",
            version="1.0.0",
            category="test",
            input_schema={
                "type": "object",
                "properties": {
                    "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "delay_ms": {"type": "integer", "minimum": 0, "maximum": 60000},
                },
                "additionalProperties": False,
            },
            output_schema={"type": "object", "properties": {"steps": {"type": "integer"}}},
            long_running=True,
        ),
        sleep,
    )
    registry.register(
        ToolSpec(
            name="test.fail",
            title="Fail",
            description="Fails.",
            version="1.0.0",
            category="test",
            input_schema=OBJECT,
            output_schema=OBJECT,
            long_running=True,
        ),
        fail,
    )
    registry.register(
        ToolSpec(
            name="test.read",
            title="Read",
            description="Reads a value.",
            version="1.0.0",
            category="test-read",
            input_schema=OBJECT,
            output_schema=OBJECT,
            read_only=True,
        ),
        read,
    )
    registry.register(
        ToolSpec(
            name="test.admin",
            title="Admin",
            description="Admins only.",
            version="1.0.0",
            category="test",
            input_schema=OBJECT,
            output_schema=OBJECT,
            admin_only=True,
        ),
        read,
    )
