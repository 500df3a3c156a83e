"""Tools only the benchmarks use (FMCP_TOOL_MODULES=bench.tools)."""

from __future__ import annotations

from typing import Any

from formation_mcp.tools.context import ToolContext
from formation_mcp.tools.registry import ToolRegistry, ToolSpec


async def noop(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return {}


def register(registry: ToolRegistry) -> None:
    registry.register(
        ToolSpec(
            name="bench.noop",
            title="No-op",
            description="A long-running tool that does nothing: measures the runtime itself.",
            version="1.0.0",
            category="bench",
            input_schema={"type": "object", "additionalProperties": False},
            output_schema={"type": "object"},
            long_running=True,
        ),
        noop,
    )
    registry.register(
        ToolSpec(
            name="bench.quick",
            title="Quick no-op",
            description="A quick tool that does nothing: a CallTool answered inline.",
            version="1.0.0",
            category="bench",
            input_schema={"type": "object", "additionalProperties": False},
            output_schema={"type": "object"},
        ),
        noop,
    )
