"""OperationsService: thin over `OperationManager`; requests in, messages out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import empty_pb2

from formation_mcp.api.wrapping import Context
from formation_mcp.identity import current_caller
from formation_mcp.metrics import Metrics
from formation_mcp.operations.manager import OperationManager
from formation_mcp.tools.approvals import ApprovalManager


class OperationsServicer(operations_pb2_grpc.OperationsServiceServicer):
    def __init__(
        self, operations: OperationManager, approvals: ApprovalManager, metrics: Metrics
    ) -> None:
        self._operations = operations
        self._approvals = approvals
        self._metrics = metrics

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Context
    ) -> lro_pb2.Operation:
        return await self._operations.get(current_caller(), request.name)

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Context
    ) -> operations_pb2.ListOperationsResponse:
        operations, next_token = await self._operations.list(
            current_caller(), request.filter, request.page_size, request.page_token
        )
        return operations_pb2.ListOperationsResponse(
            operations=operations, next_page_token=next_token
        )

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: Context
    ) -> lro_pb2.Operation:
        return await self._operations.cancel(current_caller(), request.name)

    async def ApproveOperation(
        self, request: operations_pb2.ApproveOperationRequest, context: Context
    ) -> lro_pb2.Operation:
        return await self._approvals.approve(current_caller(), request.name, request.comment)

    async def DenyOperation(
        self, request: operations_pb2.DenyOperationRequest, context: Context
    ) -> lro_pb2.Operation:
        return await self._approvals.deny(current_caller(), request.name, request.comment)

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Context
    ) -> empty_pb2.Empty:
        await self._operations.delete(current_caller(), request.name)
        return empty_pb2.Empty()

    async def WaitOperation(
        self, request: operations_pb2.WaitOperationRequest, context: Context
    ) -> lro_pb2.Operation:
        timeout = request.timeout.ToTimedelta().total_seconds()
        remaining = context.time_remaining()
        if remaining is not None:  # answer before the caller's deadline passes
            budget = max(remaining - 0.05, 0.001)
            timeout = budget if timeout <= 0 else min(timeout, budget)
        self._metrics.watchers.inc()
        try:
            return await self._operations.wait(current_caller(), request.name, timeout)
        finally:
            self._metrics.watchers.dec()

    async def WatchOperation(
        self, request: operations_pb2.WatchOperationRequest, context: Context
    ) -> AsyncIterator[lro_pb2.Operation]:
        self._metrics.watchers.inc()
        try:
            async for operation in self._operations.watch(
                current_caller(), request.name, request.after_sequence
            ):
                yield operation
        finally:
            self._metrics.watchers.dec()
