"""`client.tools` and `client.operations`: the Tools and Operations services."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

from formation.mcp.v1 import (
    operations_pb2,
    operations_pb2_grpc,
    tools_pb2,
    tools_pb2_grpc,
)
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format

from formation_mcp.client.calls import (
    WAIT_SLACK_SECONDS,
    WAIT_SLICE_SECONDS,
    operation_resource,
    tool_resource,
)
from formation_mcp.client.models import Operation, Tool
from formation_mcp.client.policies import decide

if TYPE_CHECKING:
    from formation_mcp.client.client import Client


class ToolsAPI:
    """`client.tools`: discover and call tools."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> tools_pb2_grpc.ToolsServiceAsyncStub:
        return tools_pb2_grpc.ToolsServiceStub(self._client.channel)

    async def list(self, filter: str = "") -> list[Tool]:
        """Every tool (all pages) matching the AIP-160 `filter` (e.g. `category = "vm"`)."""
        tools: list[Tool] = []
        page_token = ""
        while True:
            page: tools_pb2.ListToolsResponse = await self._client.unary(
                self._stub().ListTools,
                tools_pb2.ListToolsRequest(filter=filter, page_size=1000, page_token=page_token),
                idempotent=True,
            )
            tools.extend(Tool.from_proto(t) for t in page.tools)
            page_token = page.next_page_token
            if not page_token:
                return tools

    async def get(self, name: str) -> Tool:
        tool: tools_pb2.Tool = await self._client.unary(
            self._stub().GetTool,
            tools_pb2.GetToolRequest(name=tool_resource(name)),
            idempotent=True,
        )
        return Tool.from_proto(tool)

    async def call(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        validate_only: bool = False,
        wait: float = 0.0,
        reason: str = "",
    ) -> Operation:
        """Call a tool; a quick tool's operation comes back done, a long-running one PENDING
        (or, with `wait` seconds, done when it finished within them: the server caps the
        wait at its FMCP_WAIT_MAX), or AWAITING_APPROVAL when the policy wants an approver
        to see it first (`reason` tells them why). With a `request_id` the call is retried
        when the server is unavailable (a repeated id returns the first call's operation)."""
        request = tools_pb2.CallToolRequest(
            name=tool_resource(name),
            request_id=request_id or "",
            validate_only=validate_only,
            reason=reason,
        )
        json_format.ParseDict(arguments or {}, request.arguments)
        if wait > 0:
            request.wait.FromNanoseconds(int(wait * 1e9))
        operation: lro_pb2.Operation = await self._client.unary(
            self._stub().CallTool,
            request,
            idempotent=bool(request_id),
            timeout=max(self._client.deadline, wait + WAIT_SLACK_SECONDS),
        )
        return Operation.from_proto(operation)


class OperationsAPI:
    """`client.operations`: follow and manage the operations tool calls start."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> operations_pb2_grpc.OperationsServiceAsyncStub:
        return operations_pb2_grpc.OperationsServiceStub(self._client.channel)

    async def get(self, name: str) -> Operation:
        operation: lro_pb2.Operation = await self._client.unary(
            self._stub().GetOperation,
            operations_pb2.GetOperationRequest(name=operation_resource(name)),
            idempotent=True,
        )
        return Operation.from_proto(operation)

    async def list(
        self,
        filter: str = "",
        *,
        page_size: int = 0,
        limit: int | None = None,
    ) -> AsyncIterator[Operation]:
        """Your operations, newest first, fetching pages as you iterate (stops after `limit`)."""
        page_token = ""
        seen = 0
        while True:
            page: operations_pb2.ListOperationsResponse = await self._client.unary(
                self._stub().ListOperations,
                operations_pb2.ListOperationsRequest(
                    filter=filter, page_size=page_size, page_token=page_token
                ),
                idempotent=True,
            )
            for message in page.operations:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield Operation.from_proto(message)
            page_token = page.next_page_token
            if not page_token:
                return

    async def cancel(self, name: str) -> Operation:
        """Ask for the operation to stop; it ends CANCELLED once the work has stopped."""
        operation: lro_pb2.Operation = await self._client.unary(
            self._stub().CancelOperation,
            operations_pb2.CancelOperationRequest(name=operation_resource(name)),
            idempotent=True,
        )
        return Operation.from_proto(operation)

    async def approve(self, name: str, comment: str = "") -> Operation:
        """Approve another account's call AWAITING_APPROVAL (approvers and admins)."""
        return await decide(self._client, name, comment, approve=True)

    async def deny(self, name: str, comment: str) -> Operation:
        """Deny it: it fails PERMISSION_DENIED with `comment` (required)."""
        return await decide(self._client, name, comment, approve=False)

    async def delete(self, name: str) -> None:
        """Forget the operation (it does not stop the work: cancel does)."""
        await self._client.unary(
            self._stub().DeleteOperation,
            operations_pb2.DeleteOperationRequest(name=operation_resource(name)),
            idempotent=True,
        )

    async def wait(self, name: str, timeout: float | None = None) -> Operation:
        """The operation once done, or as it is when `timeout` seconds have passed (check
        `.done`). Without a timeout, waits as long as it takes."""
        name = operation_resource(name)
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while True:
            left = WAIT_SLICE_SECONDS if end is None else min(WAIT_SLICE_SECONDS, end - loop.time())
            request = operations_pb2.WaitOperationRequest(name=name)
            request.timeout.FromNanoseconds(int(max(left, 0) * 1e9))
            message: lro_pb2.Operation = await self._client.unary(
                self._stub().WaitOperation,
                request,
                idempotent=True,
                timeout=max(left, 0) + self._client.deadline,
            )
            operation = Operation.from_proto(message)
            if operation.done or (end is not None and loop.time() >= end):
                return operation

    async def watch(self, name: str, after_sequence: int = 0) -> AsyncGenerator[Operation, None]:
        """The operation now, then once per change (progress, stage, new log lines in
        `metadata.logs`), ending with the snapshot that has `done`. With `after_sequence`,
        the changes after that sequence instead of the current snapshot."""
        async for message in self._client.stream_operations(
            operation_resource(name), after_sequence
        ):
            yield Operation.from_proto(message)
