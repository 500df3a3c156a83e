"""Operations in tests: play a worker's events, create operations, unpack their metadata and
results, and build tool arguments."""

from __future__ import annotations

from typing import Any

from formation.mcp.internal.v1 import queue_pb2
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import code_pb2, status_pb2

from formation_mcp.app import Application
from formation_mcp.operations.ids import operation_name


class Worker:
    """Plays a worker for one operation: emits events with increasing sequence numbers."""

    def __init__(self, app: Application, name: str, attempt: int = 1) -> None:
        self.app = app
        self.name = name
        self.attempt = attempt
        self.sequence = 0

    def _event(self) -> queue_pb2.OperationEvent:
        self.sequence += 1
        return queue_pb2.OperationEvent(
            operation=self.name, attempt=self.attempt, sequence=self.sequence
        )

    async def send(self, event: queue_pb2.OperationEvent) -> None:
        await self.app.operations.apply_event(event)

    async def start(self) -> None:
        event = self._event()
        event.started.node = "test-node"
        await self.send(event)

    async def progress(self, percent: int, stage: str = "", message: str = "") -> None:
        event = self._event()
        event.progress.percent, event.progress.stage, event.progress.message = (
            percent,
            stage,
            message,
        )
        await self.send(event)

    async def log(self, *lines: str) -> None:
        event = self._event()
        event.logs.lines.extend(
            operations_pb2.LogLine(text=line, stream=operations_pb2.LogLine.STDOUT)
            for line in lines
        )
        await self.send(event)

    async def succeed(self, output: dict[str, Any]) -> None:
        event = self._event()
        json_format.ParseDict(output, event.succeeded.result.output)
        await self.send(event)

    async def fail(self, message: str, code: int = code_pb2.INTERNAL) -> None:
        event = self._event()
        event.failed.error.CopyFrom(status_pb2.Status(code=code, message=message))
        await self.send(event)

    async def cancelled(self) -> None:
        event = self._event()
        event.cancelled.SetInParent()
        await self.send(event)


async def new_operation(app: Application, owner: str, tool: str = "test.sleep") -> str:
    record = await app.operations.create(owner, tool)
    return operation_name(record.id)


def metadata_of(operation: lro_pb2.Operation) -> operations_pb2.OperationMetadata:
    metadata = operations_pb2.OperationMetadata()
    assert operation.metadata.Unpack(metadata)
    return metadata


def output_of(operation: lro_pb2.Operation) -> dict[str, Any]:
    result = operations_pb2.ToolResult()
    assert operation.response.Unpack(result)
    return json_format.MessageToDict(result.output)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    json_format.ParseDict(value, message)
    return message
