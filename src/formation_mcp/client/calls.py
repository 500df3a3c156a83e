"""What every part of the SDK's calls shares: resource names, request ids, how long
calls wait, progress callbacks, results of done operations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from formation_mcp.client.errors import (
    FmcpClientError,
)
from formation_mcp.client.models import Operation

WAIT_SLICE_SECONDS = 50.0
"""One WaitOperation asks for at most this long (the server caps it at FMCP_WAIT_MAX, 60s)."""

ProgressCallback = Callable[[Operation], Any]


def tool_resource(name: str) -> str:
    return name if name.startswith("tools/") else f"tools/{name}"


def operation_resource(name: str) -> str:
    return name if name.startswith("operations/") else f"operations/{name}"


def result_of(operation: Operation) -> dict[str, Any]:
    """The output of a done operation, or its error raised as the SDK's exception."""
    error = operation.exception()
    if error is not None:
        raise error
    if not operation.done:
        raise FmcpClientError(
            f"{operation.name} is not done", operation=operation.name, client_side=True
        )
    return operation.result or {}


async def notify(callback: ProgressCallback | None, operation: Operation) -> None:
    if callback is None:
        return
    outcome = callback(operation)
    if asyncio.iscoroutine(outcome):
        await outcome


FIRST_WAIT_SECONDS = 1.0
"""call_and_wait with a progress callback: the call waits this long, then the operation is
followed with its progress (a call done by then takes one RPC)."""
LONGEST_WAIT_SECONDS = 55.0
"""call_and_wait without one: one call waits up to this (the server's FMCP_WAIT_MAX is 60 s
by default), then the operation is followed."""
WAIT_SLACK_SECONDS = 10.0
CREATED_SEQUENCE = 1
"""The change that created an operation: following after it replays every later one."""


def new_request_id() -> str:
    return str(uuid.uuid4())
