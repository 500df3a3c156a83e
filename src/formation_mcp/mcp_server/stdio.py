"""`fmcp mcp`: the MCP server over stdio, for hosts that launch it as a subprocess.

stdout carries only MCP messages (logs go to stderr). The caller is the user of the key file,
through the SDK's `Client` for the CLI's configuration (FMCP_TARGET, FMCP_KEY_FILE): the same
cached session as `fmcp login`, refreshed and renewed by the same code.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from mcp.server.stdio import stdio_server

from formation_mcp.client.auth import bearer
from formation_mcp.client.client import Client
from formation_mcp.client.errors import FmcpClientError
from formation_mcp.mcp_server.bridge import Context, CredentialsError, Metadata, ToolBridge


class _ClientBackend:
    """Our API as the client's account. Its token source renews one session at a time: refresh
    tokens rotate on use, and presenting a used one twice would revoke the whole session."""

    def __init__(self, client: Client, key_file: Path) -> None:
        self._client = client
        self._key_file = key_file

    def channel(self) -> grpc.aio.Channel:
        return self._client.channel

    async def credentials(self, _ctx: Context) -> Metadata:
        try:
            token = await self._client.access_token()
        except FmcpClientError as error:
            raise CredentialsError(
                f"logging in to {self._client.target} with {self._key_file} "
                f"failed: {error.code.name}: {error.message}"
            ) from None
        return bearer(token)

    async def close(self) -> None:
        await self._client.close()


async def serve_stdio(client: Client, key_file: Path, retention_seconds: float) -> None:
    """Serve one host over stdin/stdout until it closes stdin, as `client` (made with the key in
    `key_file`), then close it. `retention_seconds`: FMCP_OPERATION_TTL as this process reads
    it (the tasks' ttl; the same as the server's when they share a configuration)."""
    backend = _ClientBackend(client, key_file)
    bridge = ToolBridge(backend, retention_seconds=retention_seconds)
    server = bridge.server()
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        await bridge.close()
        await backend.close()
