"""The composition root: opens the database and the change bus, builds the services and
servers, and closes everything in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

from formation_mcp.api.server import GrpcServer
from formation_mcp.auth.accounts import AccountManager
from formation_mcp.auth.authorizations import AuthorizationManager
from formation_mcp.auth.console_sessions import ConsoleSessions
from formation_mcp.auth.grants import GrantManager
from formation_mcp.auth.keys import load_or_create_signing_key
from formation_mcp.auth.manager import AuthManager
from formation_mcp.auth.metadata_fetch import ClientMetadataFetcher
from formation_mcp.auth.oauth_clients import ClientRegistry
from formation_mcp.auth.oauth_tokens import OAuthTokenManager
from formation_mcp.auth.revocations import Revocations
from formation_mcp.auth.tokens import TokenIssuer, TokenVerifier
from formation_mcp.auth.upkeep import AuthUpkeep
from formation_mcp.broker.factory import create_broker, start_when_reachable
from formation_mcp.catalog import (
    build_registry,
    local_driver,
    metrics_sampler,
    workload_environment,
)
from formation_mcp.changes import ChangeBus, PostgresChangeBus
from formation_mcp.console.server import ConsoleServer
from formation_mcp.db import migrate
from formation_mcp.db.database import Database
from formation_mcp.dispatch.consumers import ApiConsumers
from formation_mcp.dispatch.gauges import refresh_gauges
from formation_mcp.dispatch.operation_events import OperationOutcomes
from formation_mcp.dispatch.outbox import Outbox, OutboxRelay, broker_deployment
from formation_mcp.envoy import base_route_config
from formation_mcp.errors import FmcpError
from formation_mcp.events.manager import EventManager
from formation_mcp.http_server import HttpSide, build_app
from formation_mcp.listening import check_free
from formation_mcp.mcp_server.http import McpHttpEndpoint
from formation_mcp.metrics import Metrics
from formation_mcp.network.publisher import RoutePublisher
from formation_mcp.network.routes import RouteManager, RouteStore
from formation_mcp.oauth.server import AuthorizationServer
from formation_mcp.operations.feeds import FeedHub
from formation_mcp.operations.manager import OperationManager
from formation_mcp.operations.reader import OperationReader
from formation_mcp.operations.sweeper import Sweeper
from formation_mcp.policies.manager import PolicyManager
from formation_mcp.proxies import ProxyTrust
from formation_mcp.settings import Settings
from formation_mcp.tools.approvals import ApprovalManager
from formation_mcp.tools.audit import AuditLog
from formation_mcp.tools.manager import ToolManager
from formation_mcp.tools.registry import ToolRegistry
from formation_mcp.worker.runtime import Worker
from formation_mcp.workloads.metrics.exposition import InstanceCollector
from formation_mcp.workloads.metrics.sample_messages import SampleIngest
from formation_mcp.workloads.metrics.samples import SampleStore

log = logging.getLogger(__name__)

SNAPSHOT_CACHE_ENTRIES = 10_000
WATCH_RESYNC_SECONDS = 5.0
APPROVAL_EXPIRY_SECONDS = 1.0
"""How often calls whose approval did not come in time are failed."""


class Application:
    """One API server process (with an in-process worker unless `run_worker` is false).
    `start()` then `stop()`; or `async with Application(...)`."""

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ToolRegistry | None = None,
        run_worker: bool = True,
        shared_ports: bool = False,
        bridge_secret: str = "",
        client_metadata_fetcher: ClientMetadataFetcher | None = None,
    ) -> None:
        """`shared_ports`: one of several processes serving the same ports (SO_REUSEPORT;
        `fmcp serve --processes`, whose parent checked the ports are free), which then share
        `bridge_secret` too (the MCP endpoint's call may reach another of them).
        `client_metadata_fetcher`: how OAuth clients' metadata documents are fetched
        (default: public addresses and FMCP_OAUTH_CLIENT_NETWORKS, the system's CAs)."""
        self.settings = settings
        self.metrics = Metrics()
        self.database = Database(settings.effective_database_url)
        self.reader = OperationReader(self.database)
        self.hub = FeedHub(self.reader.events_after, settings.watch_buffer_events)
        self.bus: ChangeBus = (
            PostgresChangeBus(self.database.asyncpg_dsn)
            if self.database.is_postgres
            else ChangeBus()
        )
        self.outbox = Outbox(broker_deployment(settings))
        self.events = EventManager(
            self.database,
            self.bus,
            ttl_seconds=settings.event_ttl_seconds,
            sweep_batch=settings.sweep_batch_size,
        )
        self.operations = OperationManager(
            self.database,
            self.hub,
            self.bus,
            settings.wait_max_seconds,
            snapshot_cache_size=SNAPSHOT_CACHE_ENTRIES,
            on_cancel_requested=self.outbox.enqueue_cancel,
            on_cancel_committed=self.outbox.wake,
            on_done=OperationOutcomes(self.events, self._reports_outcome),
        )
        self.sweeper = Sweeper(
            self.database, settings.operation_ttl_seconds, settings.sweep_batch_size
        )
        self.signing_key = load_or_create_signing_key(settings.effective_signing_key_file)
        self.revocations = Revocations(self.database, self.bus)
        self.auth_upkeep = AuthUpkeep(
            self.database,
            self.signing_key,
            self.revocations,
            access_token_ttl_seconds=settings.access_token_ttl_seconds,
            batch_size=settings.sweep_batch_size,
        )
        self.keys = self.auth_upkeep.keys
        self.verifier = TokenVerifier(
            self.keys,
            self.revocations,
            settings.auth_issuer,
            settings.auth_audience,
            settings.token_cache_size,
        )
        issuer = TokenIssuer(
            self.signing_key,
            settings.auth_issuer,
            settings.auth_audience,
            settings.access_token_ttl_seconds,
        )
        self.grants = GrantManager(self.database, self.bus, self.revocations)
        self.auth = AuthManager(
            self.database, self.bus, settings, issuer, self.keys, self.revocations, self.grants
        )
        self.authorizations = AuthorizationManager(self.database, settings, self.auth)
        self.oauth_clients = ClientRegistry(
            self.database,
            client_metadata_fetcher
            or ClientMetadataFetcher(allowed_networks=settings.oauth_client_networks),
            registrations_per_minute=settings.login_rate_per_minute,
        )
        self.oauth_tokens = OAuthTokenManager(
            self.database, settings, self.grants, issuer, self.verifier
        )
        self.accounts = AccountManager(self.database, self.bus, self.revocations)
        self.broker = create_broker(
            settings.broker_url, settings.max_attempts, prefix=settings.broker_prefix
        )
        node_id = settings.effective_node_id
        environment = workload_environment(settings, self.database, node_id)
        self.node_events = environment.events if run_worker else None
        self.driver = local_driver(settings, environment) if run_worker else None
        self.sampler = (
            None if self.driver is None else metrics_sampler(settings, environment, self.driver)
        )
        if self.sampler is not None:
            self.metrics.registry.register(InstanceCollector(self.sampler))
        self.route_publisher = RoutePublisher(
            RouteStore(self.database),
            settings.xds_dir.resolve(),
            base_route_config(),
            settings.route_sync_seconds,
        )
        self.routes = RouteManager(
            self.database,
            settings.effective_public_url,
            on_change=self.route_publisher.wake,
            events=self.events,
        )
        self.registry = registry or build_registry(
            settings.tool_modules, environment, self.driver, settings, self.routes
        )
        self.relay = OutboxRelay(self.database, self.broker, self.outbox)
        self.api_consumers = ApiConsumers(
            self.broker,
            self.operations,
            resource_events=self.events,
            samples=SampleIngest(SampleStore(self.database)),
        )
        self.worker = (
            Worker(
                self.broker,
                self.registry,
                self.reader,
                node_id=node_id,
                prefetch=settings.worker_prefetch,
                heartbeat_seconds=settings.progress_heartbeat_seconds,
            )
            if run_worker
            else None
        )
        self.policies = PolicyManager(self.database, self.bus)
        audit_log = AuditLog(self.database)
        self.tools = ToolManager(
            self.database,
            self.registry,
            self.operations,
            audit_log,
            self.outbox,
            self.policies,
            approval_ttl_seconds=settings.approval_ttl_seconds,
            events=self.events,
        )
        self.approvals = ApprovalManager(
            self.database,
            self.operations,
            self.outbox,
            audit_log,
            self.tools.refusal_now,
            events=self.events,
        )
        self.broker_ready = asyncio.Event()
        proxies = ProxyTrust(settings.trusted_proxies, settings.proxy_secret)
        # The MCP endpoint calls this process's gRPC API with its hosts' tokens (audience: the
        # MCP endpoint); this secret, known to both and to nothing else, lets it.
        bridge_secret = bridge_secret or secrets.token_urlsafe(32)
        if not shared_ports:
            check_free("FMCP_GRPC_LISTEN", settings.grpc_listen)
            check_free("FMCP_HTTP_LISTEN", settings.http_listen)
        self.console_sessions = ConsoleSessions(self.database, settings.console_session_seconds)
        self.grpc = GrpcServer(
            settings.grpc_listen,
            operations=self.operations,
            auth=self.auth,
            authorizations=self.authorizations,
            grants=self.grants,
            tools=self.tools,
            approvals=self.approvals,
            accounts=self.accounts,
            policies=self.policies,
            events=self.events,
            verifier=self.verifier,
            metrics=self.metrics,
            max_message_bytes=settings.max_message_bytes,
            proxies=proxies,
            reuse_port=shared_ports,
            bridge_secret=bridge_secret,
            console=self.console_sessions,
        )
        self.mcp = McpHttpEndpoint(
            self.verifier,
            issuer=settings.auth_issuer,
            grpc_target=lambda: self.grpc.address,
            allowed_origins=settings.mcp_allowed_origins,
            proxies=proxies,
            bridge_secret=bridge_secret,
            retention_seconds=settings.operation_ttl_seconds,
            sessionless=shared_ports,
        )
        self.authorization_server = AuthorizationServer(
            self.oauth_clients, self.authorizations, self.oauth_tokens, self.auth.jwks, proxies
        )
        self.http = HttpSide(
            settings.http_listen,
            build_app(
                self.metrics,
                self.database.ping,
                routes=[
                    *self.mcp.routes(),
                    *self.authorization_server.routes(),
                    *ConsoleServer(self.console_sessions, proxies).routes(),
                ],
            ),
            reuse_port=shared_ports,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._stopped = False

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        await migrate.upgrade(self.database)
        await self.bus.start()
        await self.auth_upkeep.start()
        await self.accounts.bootstrap_admins(settings.admin_keys)
        await self.policies.load()
        if self.driver is not None:
            await self.driver.start()
        if self.sampler is not None:
            await self.sampler.start()
        await self.route_publisher.publish()
        await self.grpc.start()
        await self.mcp.start()
        await self.http.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._connect_broker()),
            loop.create_task(self.relay.run()),
            loop.create_task(self.sweeper.run(settings.sweep_interval_seconds)),
            loop.create_task(refresh_gauges(self.database, self.metrics, self.relay)),
            loop.create_task(self.hub.resync_every(WATCH_RESYNC_SECONDS)),
            loop.create_task(self.events.hub.resync_every(WATCH_RESYNC_SECONDS)),
            loop.create_task(self.events.sweep_every(settings.sweep_interval_seconds)),
            loop.create_task(self.auth_upkeep.run()),
            loop.create_task(self.policies.run()),
            loop.create_task(self.approvals.run(APPROVAL_EXPIRY_SECONDS)),
            loop.create_task(self.route_publisher.run()),
        ]
        log.info(
            "serving",
            extra={
                "grpc": self.grpc.address,
                "http": self.http.address,
                "database": self.database.url.render_as_string(hide_password=True),
            },
        )

    async def stop(self) -> None:
        """Health goes NOT_SERVING, calls drain for the grace period, in-process work finishes
        or is handed back to the broker, then everything closes. Stopping twice is harmless."""
        if self._stopped:
            return
        self._stopped = True
        await self.mcp.stop()  # ends MCP sessions: their watches would hold up the gRPC drain
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        if self.broker_ready.is_set() and self.worker is not None:
            await self.worker.stop(self.settings.shutdown_grace_seconds)
        if self.sampler is not None:
            await self.sampler.stop()
        if self.driver is not None:
            await self.driver.stop()
        if self.node_events is not None:
            await self.node_events.stop(self.settings.shutdown_grace_seconds)
        if self.broker_ready.is_set():
            await self.api_consumers.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.stop()
        await self.policies.close()
        await self.events.hub.close()
        await self.broker.close()
        await self.bus.close()
        await self.database.close()
        log.info("stopped")

    async def __aenter__(self) -> Application:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _reports_outcome(self, tool: str) -> bool:
        """Operations of long-running tools get events when they end (see OperationOutcomes)."""
        try:
            return self.registry.resolve(tool).spec.long_running
        except FmcpError:
            return False

    async def _connect_broker(self) -> None:
        """Connect (calls keep succeeding into the outbox meanwhile), then consume events,
        dead letters and, with the in-process worker, work."""
        await start_when_reachable(self.broker)
        await self.api_consumers.start()
        if self.worker is not None:
            await self.worker.start()
        if self.node_events is not None:
            await self.node_events.start(self.broker)
        self.broker_ready.set()
        self.outbox.wake()
