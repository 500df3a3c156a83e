"""`fmcp worker`: a worker process on its own (RabbitMQ and a shared database)."""

from __future__ import annotations

import logging

from formation_mcp.broker.factory import create_broker
from formation_mcp.catalog import (
    build_registry,
    local_driver,
    metrics_sampler,
    workload_environment,
)
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.http_server import HttpSide, build_app
from formation_mcp.metrics import Metrics
from formation_mcp.operations.reader import OperationReader
from formation_mcp.settings import Settings
from formation_mcp.tools.registry import ToolRegistry
from formation_mcp.worker.runtime import Worker
from formation_mcp.workloads.metrics.exposition import InstanceCollector

log = logging.getLogger(__name__)


class WorkerApplication:
    """Reads operation state from the database (to skip finished or duplicate work); every
    change to an operation goes through events on the broker, and so do its instances' events
    and metric samples (the API stores them); its instances' rows it writes itself. Its HTTP side
    (FMCP_WORKER_HTTP_LISTEN) serves /metrics (its instances' series) and /healthz."""

    def __init__(self, settings: Settings, *, registry: ToolRegistry | None = None) -> None:
        if settings.broker_url.startswith("memory://"):
            raise ValueError(
                "fmcp worker needs a shared broker: set FMCP_BROKER_URL=amqp://... "
                "(with memory:// the worker runs inside fmcp serve)"
            )
        self.settings = settings
        self.database = Database(settings.effective_database_url)
        self.broker = create_broker(
            settings.broker_url, settings.max_attempts, prefix=settings.broker_prefix
        )
        node_id = settings.effective_node_id
        environment = workload_environment(settings, self.database, node_id)
        self.driver = local_driver(settings, environment)
        self.sampler = metrics_sampler(settings, environment, self.driver)
        self.metrics = Metrics()
        self.metrics.registry.register(InstanceCollector(self.sampler))
        self.http = HttpSide(
            settings.worker_http_listen,
            build_app(self.metrics, self.database.ping),
            variable="FMCP_WORKER_HTTP_LISTEN",
        )
        self.node_events = environment.events
        self.worker = Worker(
            self.broker,
            registry or build_registry(settings.tool_modules, environment, self.driver, settings),
            OperationReader(self.database),
            node_id=node_id,
            prefetch=settings.worker_prefetch,
            heartbeat_seconds=settings.progress_heartbeat_seconds,
        )

    async def start(self) -> None:
        await migrate.upgrade(self.database)
        await self.driver.start()
        await self.sampler.start()
        await self.http.start()
        await self.broker.start()
        if self.node_events is not None:
            await self.node_events.start(self.broker)
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop(self.settings.shutdown_grace_seconds)
        await self.http.stop()
        await self.sampler.stop()
        await self.driver.stop()
        if self.node_events is not None:
            await self.node_events.stop(self.settings.shutdown_grace_seconds)
        await self.broker.close()
        await self.database.close()
