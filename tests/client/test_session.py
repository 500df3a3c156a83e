"""sessions.json: one entry per server and key, private to its user, and what one process
writes is what another reads next."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2

from formation_mcp.auth.keys import key_id, public_bytes
from formation_mcp.client.session import SessionStore, session_key


def _session(token: str) -> auth_pb2.Session:
    return auth_pb2.Session(access_token=token, refresh_token=f"refresh-{token}")


def test_the_key_is_the_target_and_the_key_id() -> None:
    key = Ed25519PrivateKey.generate()
    assert session_key("host:1", key) == f"host:1|{key_id(public_bytes(key))}"


def test_a_saved_session_is_loaded_by_its_key_only(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.json")
    store.save("a|1", _session("one"))
    assert store.load("a|1") == _session("one")
    assert store.load("a|2") is None


def test_the_file_is_private_to_its_user(tmp_path: Path) -> None:
    path = tmp_path / "config" / "sessions.json"
    SessionStore(path).save("a|1", _session("one"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_store_reads_what_another_store_wrote_since(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    reader, writer = SessionStore(path), SessionStore(path)
    assert reader.load("a|1") is None
    writer.save("a|1", _session("one"))
    assert reader.load("a|1") == _session("one")
    writer.save("a|1", _session("two"))
    assert reader.load("a|1") == _session("two")
    writer.forget("a|1")
    assert reader.load("a|1") is None


def test_forgetting_keeps_the_other_sessions(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions.json")
    store.save("a|1", _session("one"))
    store.save("b|1", _session("two"))
    store.forget("a|1")
    assert (store.load("a|1"), store.load("b|1")) == (None, _session("two"))
