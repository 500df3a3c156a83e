"""Where the SDK's access tokens come from: an Ed25519 key (logged in on first use, refreshed
before expiry, logged in again when the refresh token no longer works) or a fixed token.

This is the one place sessions are renewed: the SDK's `Client`, the CLI (through it) and
`fmcp mcp` (through it too) all get their tokens here. A key-based session can be cached in a
`SessionStore` (sessions.json) under `session_key(target, key)`, so `fmcp login`, the SDK and
`fmcp mcp` share it; with a store, the store's entry is the session (another process may have
refreshed it, rotating its refresh token, or forgotten it at logout), read before every use.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc

from formation_mcp.auth.keys import load_private_key
from formation_mcp.client.auth import login
from formation_mcp.client.errors import Unauthenticated, error_from_rpc
from formation_mcp.client.session import SessionStore, session_key

REFRESH_MARGIN_SECONDS = 60.0
"""Refresh this long before the access token expires (tokens live at most 15 minutes)."""


def load_key(key: Ed25519PrivateKey | bytes | str | Path) -> Ed25519PrivateKey:
    """A private key from a key object, PEM bytes, 32 raw bytes or a PEM file's path."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    if isinstance(key, str | Path):
        return load_private_key(Path(key))
    if len(key) == 32:
        return Ed25519PrivateKey.from_private_bytes(key)
    loaded = serialization.load_pem_private_key(key, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return loaded


def key_from_env() -> Ed25519PrivateKey | None:
    """`FMCP_KEY` (the PEM text itself, for CI secrets) or `FMCP_KEY_FILE` (a path)."""
    if pem := os.environ.get("FMCP_KEY"):
        return load_key(pem.encode())
    if path := os.environ.get("FMCP_KEY_FILE"):
        return load_key(Path(path))
    return None


class TokenSource:
    """Gives a valid access token; `invalidate()` after the server refused one."""

    def __init__(
        self,
        *,
        key: Ed25519PrivateKey | None = None,
        token: str | None = None,
        store: SessionStore | None = None,
        target: str = "",
        clock: Callable[[], float] = time.time,
        refresh_margin_seconds: float = REFRESH_MARGIN_SECONDS,
    ) -> None:
        if key is None and token is None:
            raise ValueError("give an Ed25519 key or an access token")
        self._key = key
        self._token = token
        self._store = store
        self._cache_key = session_key(target, key) if key is not None else ""
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._session: auth_pb2.Session | None = None
        self._lock = asyncio.Lock()

    @property
    def session(self) -> auth_pb2.Session | None:
        """The key-based session: the cached one (with a store), else the one last used (None
        before the first call, or with a token)."""
        return self._current()

    @property
    def can_renew(self) -> bool:
        return self._key is not None

    @property
    def key(self) -> Ed25519PrivateKey | None:
        """The key the session is made with (None for a fixed token): it also signs decisions
        on MCP hosts' sign-in requests."""
        return self._key

    def _fresh(self, session: auth_pb2.Session) -> bool:
        return session.expire_time.seconds - self._margin > self._clock()

    async def token(self, channel: grpc.aio.Channel) -> str:
        if self._key is None:
            assert self._token is not None
            return self._token
        async with self._lock:
            session = self._current()
            if session is None or not self._fresh(session):
                session = await self._renew(channel, session)
            return session.access_token

    async def invalidate(self, channel: grpc.aio.Channel, refused: str) -> None:
        """The server refused `refused`: renew once (refresh, else log in with the key)."""
        if self._key is None:
            return
        async with self._lock:
            session = self._current()
            if session is not None and session.access_token != refused:
                return  # another call (or process) renewed it meanwhile
            await self._renew(channel, session)

    async def login(self, channel: grpc.aio.Channel) -> auth_pb2.Session:
        """A new login with the key, whatever is cached."""
        if self._key is None:
            raise Unauthenticated(
                "logging in needs an Ed25519 key, not a token", reason="NO_KEY", client_side=True
            )
        async with self._lock:
            return await self._login(channel)

    def forget(self) -> None:
        self._session = None
        if self._store is not None and self._cache_key:
            self._store.forget(self._cache_key)

    def _current(self) -> auth_pb2.Session | None:
        """The session to use: the store's when there is one, else the one kept here."""
        if self._store is not None and self._cache_key:
            self._session = self._store.load(self._cache_key)
        return self._session

    async def _renew(
        self, channel: grpc.aio.Channel, session: auth_pb2.Session | None
    ) -> auth_pb2.Session:
        if session is not None and session.refresh_token:
            try:
                refreshed: auth_pb2.Session = await auth_pb2_grpc.AuthServiceStub(
                    channel
                ).RefreshToken(
                    auth_pb2.RefreshTokenRequest(refresh_token=session.refresh_token), timeout=30
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is not grpc.StatusCode.UNAUTHENTICATED:
                    raise error_from_rpc(error) from None
            else:
                self._keep(refreshed)
                return refreshed
        return await self._login(channel)

    async def _login(self, channel: grpc.aio.Channel) -> auth_pb2.Session:
        assert self._key is not None
        try:
            session = await login(channel, self._key)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error) from None
        self._keep(session)
        return session

    def _keep(self, session: auth_pb2.Session) -> None:
        self._session = session
        if self._store is not None:
            self._store.save(self._cache_key, session)
