"""Tools tests run against `tools_app`: test tools, an in-process worker, each broker."""

from __future__ import annotations

import grpc
import pytest
from formation.mcp.v1 import tools_pb2_grpc

from formation_mcp.app import Application


@pytest.fixture
def app(tools_app: Application) -> Application:
    return tools_app


@pytest.fixture
def tools_stub(channel: grpc.aio.Channel) -> tools_pb2_grpc.ToolsServiceAsyncStub:
    return tools_pb2_grpc.ToolsServiceStub(channel)
