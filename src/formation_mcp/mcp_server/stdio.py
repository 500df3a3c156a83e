"""`fmcp mcp`: the MCP server over stdio, for hosts that launch it as a subprocess.

stdout carries only MCP messages (logs go to stderr). The caller is the user of the key file:
the same cached, auto-refreshed session as the CLI's `fmcp login` (FMCP_TARGET, FMCP_KEY_FILE).
"""

from __future__ import annotations

import asyncio

import grpc
from mcp.server.stdio import stdio_server

from formation_mcp.client.auth import bearer
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.session import SessionStore, ensure_session
from formation_mcp.mcp_server.bridge import Context, CredentialsError, Metadata, ToolBridge


class _SessionBackend:
    """Our API at FMCP_TARGET, as the key file's account. One refresh at a time: refresh
    tokens rotate on use, and presenting a used one twice would revoke the whole session."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config
        self._store = SessionStore(config.session_file)
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None

    def channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._config.target)
        return self._channel

    async def credentials(self, _ctx: Context) -> Metadata:
        try:
            async with self._lock:
                session = await ensure_session(self.channel(), self._config, self._store)
        except FileNotFoundError as error:
            raise CredentialsError(str(error)) from None
        except grpc.aio.AioRpcError as error:
            raise CredentialsError(
                f"logging in to {self._config.target} with {self._config.key_file} failed: "
                f"{error.code().name}: {error.details()}"
            ) from None
        return bearer(session.access_token)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


async def serve_stdio(config: ClientConfig) -> None:
    """Serve one host over stdin/stdout until it closes stdin."""
    backend = _SessionBackend(config)
    server = ToolBridge(backend).server()
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await backend.close()
