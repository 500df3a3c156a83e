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
    heartbeat = _Heartbeat(context)
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
        await heartbeat.stop()
    terminal = context.next_event()  # numbered after every event the tool sent
    terminal.MergeFrom(outcome)
    await context.emit(terminal)


class _Heartbeat:
    """The context's `keep_alive` beside the tool, started once the tool has run for the
    heartbeat interval (nothing is due before then): a quick tool costs a timer, not a task."""

    def __init__(self, context: ToolContext) -> None:
        self._context = context
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if context.heartbeat_seconds:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(context.heartbeat_seconds, self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._context.keep_alive())

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _status(error: FmcpError) -> status_pb2.Status:
    status = error.to_status()
    if error.code.value[0] == code_pb2.OK:
        status.code = code_pb2.UNKNOWN
    return status
