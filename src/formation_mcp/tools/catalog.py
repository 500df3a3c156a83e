"""Builds the registry: the built-in workload tools, plus tools from FMCP_TOOL_MODULES (each
module has a `register(registry)` function), so deployments and tests can add tools without
touching the runtime."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from formation_mcp.tools.registry import ToolRegistry

if TYPE_CHECKING:
    from formation_mcp.workloads.pack_tools import WorkloadEnvironment


def build_registry(
    modules: Iterable[str] = (), environment: WorkloadEnvironment | None = None
) -> ToolRegistry:
    registry = ToolRegistry()
    if environment is not None:
        from formation_mcp.workloads import pack_tools

        pack_tools.register(registry, environment)
    for name in modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise ValueError(f"FMCP_TOOL_MODULES: {name} has no register(registry) function")
        register(registry)
    return registry


def workload_environment(settings: object, database: object, node_id: str) -> WorkloadEnvironment:
    """The environment the built-in tools run in, from settings."""
    from formation_mcp.db.database import Database
    from formation_mcp.settings import Settings
    from formation_mcp.workloads.pack_tools import WorkloadEnvironment

    assert isinstance(settings, Settings) and isinstance(database, Database)
    return WorkloadEnvironment(
        database=database,
        artifact_dir=settings.effective_artifact_dir,
        work_dir=settings.effective_work_dir,
        run_as=settings.run_as or None,
        step_timeout_seconds=settings.build_step_timeout_seconds,
        node_id=node_id,
    )
