"""Runs one tool for one operation: `started`, the executor's own events, then exactly one
terminal event (succeeded, failed or cancelled)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from formation.mcp.internal.v1 import queue_pb2
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from formation_mcp.errors import FmcpError
from formation_mcp.tools.context import OperationCancelled, ToolContext
from formation_mcp.tools.registry import RegisteredTool

log = logging.getLogger(__name__)


async def run_tool(
    tool: RegisteredTool, context: ToolContext, arguments: dict[str, Any], node: str = ""
) -> None:
    await context.started(node)
    outcome = queue_pb2.OperationEvent()
    heartbeat = asyncio.ensure_future(context.keep_alive())
    try:
        output = await tool.executor(context, arguments)
        problems = sorted(e.message for e in tool.spec.output_validator.iter_errors(output))
        if problems:
            raise FmcpError(
                f"{tool.spec.name} returned output that breaks its output schema: {problems[0]}",
                reason="TOOL_OUTPUT_INVALID",
            )
        json_format.ParseDict(output, outcome.succeeded.result.output)
    except (OperationCancelled, asyncio.CancelledError):
        if not context.cancel_requested.is_set():
            raise  # shutdown, not a cancel request: the work is redelivered elsewhere
        outcome.cancelled.SetInParent()
    except FmcpError as error:
        outcome.failed.error.CopyFrom(_status(error))
    except Exception as error:
        log.exception("tool %s crashed on %s", tool.spec.name, context.operation)
        outcome.failed.error.CopyFrom(
            status_pb2.Status(
                code=code_pb2.INTERNAL,
                message=f"{tool.spec.name} failed unexpectedly: {type(error).__name__}: {error}",
            )
        )
    finally:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
    terminal = context.next_event()  # numbered after every event the tool sent
    terminal.MergeFrom(outcome)
    await context.emit(terminal)


def _status(error: FmcpError) -> status_pb2.Status:
    status = error.to_status()
    if error.code.value[0] == code_pb2.OK:
        status.code = code_pb2.UNKNOWN
    return status
