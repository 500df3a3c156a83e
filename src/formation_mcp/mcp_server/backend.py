"""What a transport gives the MCP server: where our gRPC API is and who is calling, and the
one way every MCP handler calls that API with the caller's credentials."""

from __future__ import annotations

from typing import Any, Protocol

import grpc
import mcp_types as types
from formation.mcp.v1 import (
    events_pb2_grpc,
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format
from mcp.server import ServerRequestContext
from mcp.shared.exceptions import MCPError

from formation_mcp.mcp_server.convert import TOOL_PREFIX
from formation_mcp.structs import struct_to_dict

Metadata = tuple[tuple[str, str], ...]
Context = ServerRequestContext[Any, Any]

UNARY_TIMEOUT_SECONDS = 60.0
"""One unary call to our API (a quick tool runs inline within CallTool)."""

CALLABLE = "allowed = true"
"""The ListTools filter for what the caller's policy lets it call (tools/list, completion)."""


class CredentialsError(Exception):
    """The caller's credentials could not be had (no key file, login refused, API down);
    the message says what to do."""


class Backend(Protocol):
    """Where our API is and who is calling: all a transport has to provide."""

    def channel(self) -> grpc.aio.Channel:
        """The gRPC channel to our API (created lazily, in the serving event loop)."""
        ...

    async def credentials(self, ctx: Context) -> Metadata:
        """gRPC metadata that authenticates this MCP request's caller; CredentialsError when
        there are none to be had."""
        ...


class Api:
    """Our Tools and Operations services as this MCP request's caller."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def metadata(self, ctx: Context) -> Metadata:
        """The caller's credentials, or a JSON-RPC internal error saying why there are none."""
        try:
            return await self._backend.credentials(ctx)
        except CredentialsError as error:
            raise MCPError(types.INTERNAL_ERROR, str(error)) from None

    async def credentials(self, ctx: Context) -> Metadata:
        return await self._backend.credentials(ctx)

    def tools(self) -> tools_pb2_grpc.ToolsServiceAsyncStub:
        return tools_pb2_grpc.ToolsServiceStub(self._backend.channel())

    def operations(self) -> operations_pb2_grpc.OperationsServiceAsyncStub:
        return operations_pb2_grpc.OperationsServiceStub(self._backend.channel())

    def events(self) -> events_pb2_grpc.EventsServiceAsyncStub:
        return events_pb2_grpc.EventsServiceStub(self._backend.channel())

    async def call(
        self, ctx: Context, tool: str, arguments: dict[str, Any], wait_seconds: int = 20
    ) -> dict[str, Any]:
        """A quick tool's output (`vm.status`, `pack.get`, ...), waited for within one CallTool.
        ToolError when it failed or did not finish in time; grpc errors as they come."""
        return await self.call_as(await self.metadata(ctx), tool, arguments, wait_seconds)

    async def call_as(
        self, metadata: Metadata, tool: str, arguments: dict[str, Any], wait_seconds: int = 20
    ) -> dict[str, Any]:
        """`call` with credentials taken earlier (a subscription's background watch)."""
        request = tools_pb2.CallToolRequest(name=TOOL_PREFIX + tool)
        json_format.ParseDict(arguments, request.arguments)
        request.wait.FromSeconds(wait_seconds)
        operation: lro_pb2.Operation = await self.tools().CallTool(
            request, metadata=metadata, timeout=UNARY_TIMEOUT_SECONDS
        )
        if not operation.done:
            raise ToolError(f"{tool} did not finish within {wait_seconds}s ({operation.name})")
        if operation.HasField("error"):
            raise ToolError(f"{tool} failed: {operation.error.message}", operation.error.code)
        result = operations_pb2.ToolResult()
        operation.response.Unpack(result)
        return struct_to_dict(result.output)


class ToolError(Exception):
    """A quick tool the MCP server called for a resource, prompt or completion failed."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code
