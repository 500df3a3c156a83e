"""What the MCP tests share: the endpoint through Envoy, and the test account's token for it."""

from __future__ import annotations

import pytest
from formation.mcp.v1 import auth_pb2
from tests.mcp_server.mcp_tokens import mcp_token

from formation_mcp.app import Application


@pytest.fixture
def mcp_url(envoy: str) -> str:
    return f"{envoy}/mcp"


@pytest.fixture
def token(app: Application, session: auth_pb2.Session, mcp_url: str) -> str:
    """The test account's token for the MCP endpoint (its audience)."""
    return mcp_token(app, session.access_token, mcp_url)
