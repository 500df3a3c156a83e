"""Auth and Tools answer UNIMPLEMENTED until their issues land, through the error model."""

from __future__ import annotations

from typing import Any, NoReturn

from formation.mcp.v1 import auth_pb2_grpc, tools_pb2_grpc

from formation_mcp.errors import Unimplemented


def _not_yet(service: str, method: str) -> NoReturn:
    raise Unimplemented(
        f"{service}.{method} is not implemented yet in this server version",
        metadata={"service": service, "method": method},
    )


class PendingAuthServicer(auth_pb2_grpc.AuthServiceServicer):
    async def CreateChallenge(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "CreateChallenge")

    async def Login(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "Login")

    async def RefreshToken(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "RefreshToken")

    async def RevokeToken(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "RevokeToken")

    async def GetCurrentAccount(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "GetCurrentAccount")

    async def GetJwks(self, request: Any, context: Any) -> Any:
        _not_yet("AuthService", "GetJwks")


class PendingToolsServicer(tools_pb2_grpc.ToolsServiceServicer):
    async def ListTools(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "ListTools")

    async def GetTool(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "GetTool")

    async def CallTool(self, request: Any, context: Any) -> Any:
        _not_yet("ToolsService", "CallTool")
