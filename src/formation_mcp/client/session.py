"""sessions.json: the key-based sessions clients cache, one per server and key (mode 0600).

The CLI, the SDK's `Client.from_config` and `fmcp mcp` share it, so one login serves them all;
`credentials.TokenSource` is the one code that renews what is cached here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2

from formation_mcp.auth.keys import key_id, public_bytes
from formation_mcp.client.config import read_json, write_private_json

_FileSignature = tuple[int, int, int]


def session_key(target: str, key: Ed25519PrivateKey) -> str:
    """Sessions are cached per server and per key (`target|key_id`): another key never reuses
    one."""
    return f"{target}|{key_id(public_bytes(key))}"


class SessionStore:
    """One entry per `session_key`. Another process may refresh or forget a session at any
    time, so token sources read the store before every use: the file is parsed again only when
    it changed (its inode, size or modification time), which makes that read a `stat`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._read: tuple[_FileSignature, dict[str, Any]] | None = None

    def load(self, key: str) -> auth_pb2.Session | None:
        entry = self._entries().get(key)
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

    def _entries(self) -> dict[str, Any]:
        try:
            status = self._path.stat()
        except FileNotFoundError:
            return {}
        signature = (status.st_ino, status.st_size, status.st_mtime_ns)
        if self._read is None or self._read[0] != signature:
            self._read = (signature, read_json(self._path))
        return self._read[1]
