"""A client's authenticated session: cached per target, refreshed before it expires, and
re-established with the key when the refresh token no longer works."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from formation.mcp.v1 import auth_pb2, auth_pb2_grpc

from formation_mcp.auth.keys import load_private_key
from formation_mcp.client.auth import bearer, login
from formation_mcp.client.config import ClientConfig, read_json, write_private_json

REFRESH_MARGIN_SECONDS = 60


class SessionStore:
    """sessions.json: one entry per server and key (`ClientConfig.session_key`)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def load(self, key: str) -> auth_pb2.Session | None:
        entry = read_json(self._path).get(key)
        if not isinstance(entry, str):
            return None
        session = auth_pb2.Session()
        session.ParseFromString(bytes.fromhex(entry))
        return session

    def save(self, key: str, session: auth_pb2.Session) -> None:
        data = read_json(self._path)
        data[key] = session.SerializeToString().hex()
        write_private_json(self._path, data)

    def forget(self, key: str) -> None:
        data = read_json(self._path)
        if data.pop(key, None) is not None:
            write_private_json(self._path, data)


def _fresh(session: auth_pb2.Session) -> bool:
    return session.expire_time.seconds - REFRESH_MARGIN_SECONDS > time.time()


async def log_in_with_key(
    channel: grpc.aio.Channel, config: ClientConfig, store: SessionStore
) -> auth_pb2.Session:
    session = await login(channel, load_private_key(config.key_file))
    store.save(config.session_key, session)
    return session


async def ensure_session(
    channel: grpc.aio.Channel, config: ClientConfig, store: SessionStore
) -> auth_pb2.Session:
    """The cached session; refreshed near expiry; a new login with the key if that fails."""
    session = store.load(config.session_key)
    if session is not None and _fresh(session):
        return session
    if session is not None and session.refresh_token:
        try:
            refreshed: auth_pb2.Session = await auth_pb2_grpc.AuthServiceStub(channel).RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=session.refresh_token)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is not grpc.StatusCode.UNAUTHENTICATED:
                raise
        else:
            store.save(config.session_key, refreshed)
            return refreshed
    if not config.key_file.exists():
        raise FileNotFoundError(
            f"no session for {config.target} and no key at {config.key_file}: run `fmcp keygen` "
            "and `fmcp login`, or set FMCP_KEY_FILE"
        )
    return await log_in_with_key(channel, config, store)


async def auth_metadata(
    channel: grpc.aio.Channel, config: ClientConfig, store: SessionStore
) -> tuple[tuple[str, str], ...]:
    return bearer((await ensure_session(channel, config, store)).access_token)
