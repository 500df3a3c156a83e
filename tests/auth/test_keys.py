"""Ed25519 key helpers, without a server: key ids, parsing public keys, the signing key file,
and JWK thumbprints."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from formation_mcp.auth.keys import (
    account_name,
    b64url,
    b64url_decode,
    jwk_thumbprint,
    key_id,
    load_or_create_signing_key,
    parse_public_key,
    public_bytes,
    write_private_key,
)

# RFC 8037 appendix A.1 (the Ed25519 key) and A.3 (its RFC 7638 JWK thumbprint).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def new_public_key() -> bytes:
    return public_bytes(Ed25519PrivateKey.generate())


# -- key ids ------------------------------------------------------------------------------------


def test_key_id_is_unpadded_base64url_of_the_sha256_of_the_raw_key() -> None:
    public_key = new_public_key()
    digest = hashlib.sha256(public_key).digest()
    kid = key_id(public_key)
    assert kid == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    assert len(kid) == 43 and "=" not in kid and "+" not in kid and "/" not in kid
    assert b64url_decode(kid) == digest


def test_key_ids_of_different_keys_differ() -> None:
    assert key_id(new_public_key()) != key_id(new_public_key())


def test_account_name_is_accounts_slash_key_id() -> None:
    public_key = new_public_key()
    assert account_name(key_id(public_key)) == f"accounts/{key_id(public_key)}"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 31, 32, 33, 64])
def test_b64url_round_trips_without_padding(size: int) -> None:
    data = bytes(range(size))
    text = b64url(data)
    assert "=" not in text
    assert b64url_decode(text) == data


def test_public_bytes_of_a_private_key_and_of_its_public_key_agree() -> None:
    key = Ed25519PrivateKey.generate()
    assert public_bytes(key) == public_bytes(key.public_key())
    assert len(public_bytes(key)) == 32


# -- parsing public keys --------------------------------------------------------------------------


def _encodings(public_key: bytes) -> dict[str, str]:
    return {
        "base64url": b64url(public_key),
        "base64url-padded": base64.urlsafe_b64encode(public_key).decode(),
        "base64": base64.b64encode(public_key).decode(),
        "base64-unpadded": base64.b64encode(public_key).decode().rstrip("="),
        "hex": public_key.hex(),
        "HEX": public_key.hex().upper(),
        "surrounding-space": f"  {b64url(public_key)}\n",
    }


@pytest.mark.parametrize(
    "encoding",
    [
        "base64url",
        "base64url-padded",
        "base64",
        "base64-unpadded",
        "hex",
        "HEX",
        "surrounding-space",
    ],
)
def test_parse_public_key_accepts_base64url_base64_and_hex(encoding: str) -> None:
    # A key whose base64 and base64url forms differ (has both + or / and - or _).
    public_key = next(
        k
        for k in (new_public_key() for _ in range(1000))
        if set(base64.b64encode(k).decode()) & set("+/")
    )
    assert parse_public_key(_encodings(public_key)[encoding]) == public_key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not a key",
        b64url(bytes(31)),
        b64url(bytes(33)),
        bytes(31).hex(),
        bytes(33).hex(),
        "0x" + bytes(32).hex(),
        "g" * 64,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKNSbGFL0l08nh5Ynbpp9Yb0bS9JFqOYpaXnb4EVcVnH",
    ],
    ids=[
        "empty",
        "blank",
        "words",
        "31-bytes-b64url",
        "33-bytes-b64url",
        "31-bytes-hex",
        "33-bytes-hex",
        "0x-hex",
        "not-hex",
        "openssh",
    ],
)
def test_parse_public_key_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a 32-byte Ed25519 public key"):
        parse_public_key(text)


@pytest.mark.parametrize("junk", ["!{std}", "!!!!{url}", "*{std}***", "{url}%%%%"])
def test_parse_public_key_rejects_characters_outside_every_alphabet(junk: str) -> None:
    public_key = new_public_key()
    text = junk.format(std=base64.b64encode(public_key).decode(), url=b64url(public_key))
    with pytest.raises(ValueError, match="not a 32-byte Ed25519 public key"):
        parse_public_key(text)


# -- the signing key file -------------------------------------------------------------------------


def test_load_or_create_signing_key_creates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing-key.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key.public_key == public_bytes(key.private_key)
    assert key.kid == jwk_thumbprint(key.public_key)


def test_load_or_create_signing_key_reloads_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    first = load_or_create_signing_key(path)
    contents = path.read_bytes()
    second = load_or_create_signing_key(path)
    assert second.kid == first.kid
    assert second.public_key == first.public_key
    assert path.read_bytes() == contents


def test_different_key_files_give_different_kids(tmp_path: Path) -> None:
    first = load_or_create_signing_key(tmp_path / "a.pem")
    second = load_or_create_signing_key(tmp_path / "b.pem")
    assert first.kid != second.kid


def test_load_or_create_signing_key_uses_an_existing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "existing.pem"
    private_key = Ed25519PrivateKey.generate()
    write_private_key(path, private_key)
    assert load_or_create_signing_key(path).public_key == public_bytes(private_key)


def test_write_private_key_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "existing.pem"
    write_private_key(path, Ed25519PrivateKey.generate())
    with pytest.raises(FileExistsError):
        write_private_key(path, Ed25519PrivateKey.generate())


def test_a_file_that_is_not_an_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_text("not a key\n")
    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message is not ours
        load_or_create_signing_key(path)


# -- JWK thumbprints (RFC 7638) -------------------------------------------------------------------


def test_jwk_thumbprint_matches_the_rfc_8037_example() -> None:
    private_key = Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))
    public_key = public_bytes(private_key)
    assert b64url(public_key) == RFC8037_X
    assert jwk_thumbprint(public_key) == RFC8037_THUMBPRINT


def test_jwk_thumbprint_is_the_sha256_of_the_canonical_jwk() -> None:
    public_key = new_public_key()
    members = {"x": b64url(public_key), "kty": "OKP", "crv": "Ed25519"}
    canonical = "{" + ",".join(f'"{k}":{json.dumps(members[k])}' for k in sorted(members)) + "}"
    assert canonical.startswith('{"crv":"Ed25519","kty":"OKP","x":"')
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert jwk_thumbprint(public_key) == expected.decode().rstrip("=")
