"""Builds the registry: the built-in tools, plus tools from FMCP_TOOL_MODULES (each module
has a `register(registry)` function), so deployments and tests can add tools without
touching the runtime."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from formation_mcp.tools.registry import ToolRegistry


def build_registry(modules: Iterable[str] = ()) -> ToolRegistry:
    registry = ToolRegistry()
    for name in modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise ValueError(f"FMCP_TOOL_MODULES: {name} has no register(registry) function")
        register(registry)
    return registry
