"""Ed25519 keys: key ids, parsing public keys, and the server's signing key file."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PUBLIC_KEY_BYTES = 32
_HEX = re.compile(r"[0-9a-fA-F]{64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]{43}={0,1}")
_B64 = re.compile(r"[A-Za-z0-9+/]{43}={0,1}")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public_key: bytes) -> str:
    """base64url (no padding) of SHA-256 of the raw public key: an account's id."""
    return b64url(hashlib.sha256(public_key).digest())


def account_name(kid: str) -> str:
    return f"accounts/{kid}"


def parse_public_key(text: str) -> bytes:
    """A raw 32-byte public key from base64url, base64 or hex text; ValueError otherwise.
    Every character must belong to the encoding: nothing is silently skipped."""
    text = text.strip()
    candidates: list[bytes] = []
    if _HEX.fullmatch(text):
        candidates.append(bytes.fromhex(text))
    if _B64URL.fullmatch(text):
        candidates.append(b64url_decode(text))
    if _B64.fullmatch(text):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    for raw in candidates:
        if len(raw) == PUBLIC_KEY_BYTES:
            return raw
    raise ValueError(
        f"{text[:16]}...: not a 32-byte Ed25519 public key in base64url, base64 or hex"
    )


def public_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def jwk_thumbprint(public_key: bytes) -> str:
    """RFC 7638 thumbprint of the OKP JWK: the `kid` of a signing key."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_key)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    private_key: Ed25519PrivateKey
    public_key: bytes


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """PEM (PKCS#8), created with mode 0600; refuses to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def load_or_create_signing_key(path: Path) -> SigningKey:
    """The server's signing key; created (0600) on first start when the file is absent."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it first
            write_private_key(path, Ed25519PrivateKey.generate())
    private_key = load_private_key(path)
    public_key = public_bytes(private_key)
    return SigningKey(jwk_thumbprint(public_key), private_key, public_key)
