"""The tool catalogue, assembled beside the composition roots (app.py, worker_app.py): the
built-in workload tools with their environment and driver, plus tools from FMCP_TOOL_MODULES
(each module has a `register(registry)` function), so deployments and tests can add tools
without touching the runtime."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from formation_mcp.db.database import Database
from formation_mcp.events.reporter import NodeEvents
from formation_mcp.network import tools as network_tools
from formation_mcp.network.routes import RouteManager
from formation_mcp.settings import Settings
from formation_mcp.tools.registry import ToolRegistry
from formation_mcp.workloads import pack_catalog, pack_tools, vm_tools
from formation_mcp.workloads.driver import InstanceDriver
from formation_mcp.workloads.instances import InstanceStore
from formation_mcp.workloads.local_driver import LocalDriver
from formation_mcp.workloads.metrics import tools as metrics_tools
from formation_mcp.workloads.metrics.sample_messages import SamplePublisher
from formation_mcp.workloads.metrics.sampler import Sampler
from formation_mcp.workloads.metrics.samples import SampleStore
from formation_mcp.workloads.pack_tools import WorkloadEnvironment
from formation_mcp.workloads.sandbox import WorkloadSandbox


def build_registry(
    modules: Iterable[str] = (),
    environment: WorkloadEnvironment | None = None,
    driver: InstanceDriver | None = None,
    settings: Settings | None = None,
    routes: RouteManager | None = None,
) -> ToolRegistry:
    """`driver` runs the instance tools in a process with a worker (None elsewhere);
    `routes`, the network tools, in an API server (they run there, inline)."""
    registry = ToolRegistry()
    if environment is not None:
        pack_tools.register(registry, environment)
        pack_catalog.register(registry, environment.database)
        vm_tools.register(registry, environment, driver)
        settings = settings or Settings()
        metrics_tools.register(
            registry,
            environment,
            retention_seconds=settings.metrics_retention_seconds,
            interval_seconds=settings.metrics_interval_seconds,
        )
    if routes is not None:
        network_tools.register(registry, routes)
    for name in modules:
        module = importlib.import_module(name)
        register = getattr(module, "register", None)
        if not callable(register):
            raise ValueError(f"FMCP_TOOL_MODULES: {name} has no register(registry) function")
        register(registry)
    return registry


def local_driver(settings: Settings, environment: WorkloadEnvironment) -> LocalDriver:
    """The driver a worker runs instances with."""
    return LocalDriver(
        environment,
        stop_grace_seconds=settings.instance_stop_grace_seconds,
        log_bytes=settings.instance_log_bytes,
        stop_on_exit=settings.stop_instances_on_exit,
    )


def workload_environment(
    settings: Settings, database: Database, node_id: str
) -> WorkloadEnvironment:
    """The environment the built-in tools run in, from settings."""
    return WorkloadEnvironment(
        database=database,
        artifact_dir=settings.effective_artifact_dir,
        work_dir=settings.effective_work_dir,
        run_as=settings.effective_run_as or None,
        step_timeout_seconds=settings.build_step_timeout_seconds,
        node_id=node_id,
        sandbox=WorkloadSandbox(unsafe=settings.unsafe_workloads),
        events=NodeEvents(settings.effective_work_dir / "events" / node_id, node_id),
    )


def metrics_sampler(
    settings: Settings, environment: WorkloadEnvironment, driver: LocalDriver
) -> Sampler:
    """The sampler of the instances `driver` runs (FMCP_METRICS_INTERVAL, _RETENTION); its
    samples go to the API through the broker, spooled with the node's events."""
    publisher = None if environment.events is None else SamplePublisher(environment.events)
    return Sampler(
        driver,
        InstanceStore(environment.database),
        SampleStore(environment.database),
        sink=publisher,
        pending=None if publisher is None else publisher.spooled,
        interval_seconds=settings.metrics_interval_seconds,
        retention_seconds=settings.metrics_retention_seconds,
    )
