"""Tools answer UNIMPLEMENTED until their issue lands, through the error model."""

from __future__ import annotations

from typing import Any, NoReturn

from formation.mcp.v1 import tools_pb2_grpc

from formation_mcp.errors import Unimplemented


def _not_yet(service: str, method: str) -> NoReturn:
    raise Unimplemented(
        f"{service}.{method} is not implemented yet in this server version",
        metadata={"service": service, "method": method},
    )


class PendingToolsServicer(tools_pb2_grpc.ToolsServiceServicer):
    async def ListTools(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "ListTools")

    async def GetTool(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "GetTool")

    async def CallTool(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "CallTool")
