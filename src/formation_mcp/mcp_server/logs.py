"""MCP logging: the output lines of a long call go out as `notifications/message` (as well as
progress), at a level from their stream (stdout: info, stderr: warning, system: notice).

Who gets them, per revision:
- 2025-11-25: a session that sent `logging/setLevel`, at that level and above. The level is
  held per session by this process (a 2025-11-25 session lives on the replica that opened it).
- 2026-07-28: a request whose `_meta` carries `io.modelcontextprotocol/logLevel` (the spec's
  per-request opt-in; `logging/setLevel` is gone).

Lines go on the call's own response stream; at most MAX_LINES_PER_CALL per call, then one
line saying how many more were left out (the operation keeps them all).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, get_args

import mcp_types as types
from formation.mcp.v1 import operations_pb2
from mcp.server.connection import allowed_log_levels
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.requests import HTTPConnection

from formation_mcp.mcp_server.backend import Context

LEVELS: Final[tuple[types.LoggingLevel, ...]] = get_args(types.LoggingLevel)
MAX_SESSIONS: Final = 10_000
MAX_LINES_PER_CALL: Final = 1000
SESSION_HEADER: Final = "mcp-session-id"

_Stream = operations_pb2.LogLine.Stream
STREAM_LEVELS: Final[dict[int, types.LoggingLevel]] = {
    _Stream.STREAM_UNSPECIFIED: "info",
    _Stream.STDOUT: "info",
    _Stream.STDERR: "warning",
    _Stream.SYSTEM: "notice",
}


def _session_key(ctx: Context) -> str:
    """The HTTP session id; stdio has one session per process."""
    request = ctx.request
    if isinstance(request, HTTPConnection):
        return request.headers.get(SESSION_HEADER, "")
    return ""


class LogLevels:
    """2025-11-25 `logging/setLevel`, remembered per session (the newest MAX_SESSIONS)."""

    def __init__(self) -> None:
        self._levels: OrderedDict[str, types.LoggingLevel] = OrderedDict()

    async def set_level(
        self, ctx: Context, params: types.SetLevelRequestParams
    ) -> types.EmptyResult:
        key = _session_key(ctx)
        self._levels[key] = params.level
        self._levels.move_to_end(key)
        while len(self._levels) > MAX_SESSIONS:
            self._levels.popitem(last=False)
        return types.EmptyResult()

    def allowed(self, ctx: Context) -> frozenset[types.LoggingLevel]:
        """The levels this request may be sent (none unless it or its session asked)."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return allowed_log_levels(ctx.protocol_version, ctx.meta)
        level = self._levels.get(_session_key(ctx))
        return frozenset() if level is None else frozenset(LEVELS[LEVELS.index(level) :])


class LogRelay:
    """Sends one call's output lines, bounded."""

    def __init__(self, ctx: Context, allowed: frozenset[types.LoggingLevel], logger: str) -> None:
        self._ctx = ctx
        self._allowed = allowed
        self._logger = logger
        self._sent = 0
        self._left_out = 0

    @property
    def active(self) -> bool:
        return bool(self._allowed)

    async def send(self, lines: list[operations_pb2.LogLine]) -> None:
        for line in lines:
            level = STREAM_LEVELS.get(line.stream, "info")
            if level not in self._allowed:
                continue
            if self._sent >= MAX_LINES_PER_CALL:
                self._left_out += 1
                continue
            self._sent += 1
            await self._message(level, line.text)

    async def finish(self) -> None:
        if self._left_out and "notice" in self._allowed:
            await self._message(
                "notice", f"... {self._left_out} more lines left out (the operation has them)"
            )

    async def _message(self, level: types.LoggingLevel, text: str) -> None:
        await self._ctx.session.send_notification(
            types.LoggingMessageNotification(
                params=types.LoggingMessageNotificationParams(
                    level=level, data=text, logger=self._logger
                )
            ),
            related_request_id=self._ctx.request_id,
        )
