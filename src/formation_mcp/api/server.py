"""The gRPC server: our services, per-service health, reflection, interceptors."""

from __future__ import annotations

import grpc
from formation.mcp.v1 import (
    accounts_pb2,
    accounts_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    policies_pb2,
    policies_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from formation_mcp.api.auth_interceptor import AuthInterceptor
from formation_mcp.api.auth_servicer import AccountsServicer, AuthServicer
from formation_mcp.api.events_servicer import EventsServicer
from formation_mcp.api.interceptors import ErrorInterceptor
from formation_mcp.api.operations_servicer import OperationsServicer
from formation_mcp.api.policies_servicer import PoliciesServicer
from formation_mcp.api.request_gate import RequestGate
from formation_mcp.api.tools_servicer import ToolsServicer
from formation_mcp.auth.accounts import AccountManager
from formation_mcp.auth.authorizations import AuthorizationManager
from formation_mcp.auth.console_sessions import ConsoleSessions
from formation_mcp.auth.grants import GrantManager
from formation_mcp.auth.manager import AuthManager
from formation_mcp.auth.tokens import TokenVerifier
from formation_mcp.events.manager import EventManager
from formation_mcp.listening import ListenError
from formation_mcp.metrics import Metrics
from formation_mcp.operations.manager import OperationManager
from formation_mcp.policies.manager import PolicyManager
from formation_mcp.proxies import ProxyTrust
from formation_mcp.tools.approvals import ApprovalManager
from formation_mcp.tools.manager import ToolManager

SERVICE_NAMES = (
    auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name,
    accounts_pb2.DESCRIPTOR.services_by_name["AccountsService"].full_name,
    tools_pb2.DESCRIPTOR.services_by_name["ToolsService"].full_name,
    operations_pb2.DESCRIPTOR.services_by_name["OperationsService"].full_name,
    policies_pb2.DESCRIPTOR.services_by_name["PoliciesService"].full_name,
    events_pb2.DESCRIPTOR.services_by_name["EventsService"].full_name,
)


class GrpcServer:
    def __init__(
        self,
        listen: str,
        *,
        operations: OperationManager,
        auth: AuthManager,
        authorizations: AuthorizationManager,
        grants: GrantManager,
        tools: ToolManager,
        approvals: ApprovalManager,
        accounts: AccountManager,
        policies: PolicyManager,
        events: EventManager,
        verifier: TokenVerifier,
        metrics: Metrics,
        max_message_bytes: int,
        proxies: ProxyTrust,
        reuse_port: bool = False,
        console: ConsoleSessions,
        bridge_secret: str = "",
    ) -> None:
        """`bridge_secret`: what this process's own MCP endpoint sends to call with the token
        an MCP host presented (see AuthInterceptor)."""
        self.health = health.aio.HealthServicer()
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # Long watches: accept client keepalive pings every 10 s, even without calls.
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.keepalive_time_ms", 60_000),
            ("grpc.keepalive_timeout_ms", 20_000),
            # Exclusive unless several processes serve this port on purpose (--processes).
            ("grpc.so_reuseport", 1 if reuse_port else 0),
        ]
        # Outermost first: errors become statuses; bad requests are refused before auth.
        self.server = grpc.aio.server(
            interceptors=[
                ErrorInterceptor(metrics),
                RequestGate(),
                AuthInterceptor(verifier, bridge_secret, console),
            ],
            options=options,
        )
        auth_pb2_grpc.add_AuthServiceServicer_to_server(
            AuthServicer(auth, authorizations, grants, proxies, console), self.server
        )
        accounts_pb2_grpc.add_AccountsServiceServicer_to_server(
            AccountsServicer(accounts), self.server
        )
        tools_pb2_grpc.add_ToolsServiceServicer_to_server(ToolsServicer(tools), self.server)
        operations_pb2_grpc.add_OperationsServiceServicer_to_server(
            OperationsServicer(operations, approvals, metrics), self.server
        )
        policies_pb2_grpc.add_PoliciesServiceServicer_to_server(
            PoliciesServicer(policies), self.server
        )
        events_pb2_grpc.add_EventsServiceServicer_to_server(
            EventsServicer(events, metrics), self.server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        try:
            self.port = self.server.add_insecure_port(listen)
        except RuntimeError:  # grpc says only "Failed to bind"
            self.port = 0
        if self.port == 0:
            raise ListenError("FMCP_GRPC_LISTEN", listen, "gRPC cannot listen there")
        self.address = f"{listen.rpartition(':')[0]}:{self.port}"

    async def start(self) -> None:
        await self.server.start()
        for name in (*SERVICE_NAMES, ""):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float) -> None:
        """NOT_SERVING first (load balancers stop sending), then drain calls for `grace` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
