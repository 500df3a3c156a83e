"""MCP in tests: the SDK's client over Streamable HTTP, progress notifications recorded,
results read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.extension import ClientExtension
from mcp.client.session import LoggingFnT, MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

LEGACY = "legacy"
"""The initialize handshake: the SDK offers its newest handshake revision, 2025-11-25."""
MODERN = "2026-07-28"
OPERATION_META = "formation.cloud/operation"


@asynccontextmanager
async def http_client(
    url: str,
    token: str,
    mode: str = LEGACY,
    extensions: Sequence[ClientExtension] = (),
    logging_callback: LoggingFnT | None = None,
    message_handler: MessageHandlerFnT | None = None,
) -> AsyncIterator[Client]:
    """An initialized MCP client over Streamable HTTP, presenting `token`."""
    headers = {"authorization": f"Bearer {token}"}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(url, http_client=http)
        async with Client(
            transport,
            mode=mode,
            extensions=list(extensions) or None,
            logging_callback=logging_callback,
            message_handler=message_handler,
        ) as client:
            yield client


@dataclass
class ProgressLog:
    """Every `notifications/progress` of one call, in arrival order."""

    steps: list[tuple[float, float | None, str | None]] = field(default_factory=list)
    first: anyio.Event = field(default_factory=anyio.Event)

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.steps.append((progress, total, message))
        self.first.set()


def text_of(result: types.CallToolResult) -> str:
    assert len(result.content) == 1
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def operation_of(result: types.CallToolResult) -> str:
    assert result.meta is not None
    name = result.meta[OPERATION_META]
    assert isinstance(name, str) and name.startswith("operations/")
    return name
