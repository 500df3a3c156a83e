"""`fmcp keygen | login | whoami | logout | account …` as users run them, against a real server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.servers import StartApp

from formation_mcp.app import Application

FMCP = str(Path(sys.executable).parent / "fmcp")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Awaitable[Result]]:
    """Run `fmcp` with its own config dir (keys, sessions) under tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env["FMCP_CONFIG_DIR"] = str(tmp_path / "config")

    async def run(*args: str, target: str = "") -> Result:
        process = await asyncio.create_subprocess_exec(
            FMCP,
            *args,
            env={**env, "FMCP_TARGET": target} if target else env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    return run


def field(output: str, name: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if line.startswith(name))


async def test_keygen_writes_a_private_key_readable_only_by_its_owner(
    cli: Callable[..., Awaitable[Result]], tmp_path: Path
) -> None:
    result = await cli("keygen")
    key_file = tmp_path / "config" / "key.pem"
    assert result.code == 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(field(result.out, "public key:")) == 43


async def test_keygen_refuses_to_overwrite_without_force(
    cli: Callable[..., Awaitable[Result]],
) -> None:
    await cli("keygen")
    again = await cli("keygen")
    assert again.code == 1 and "--force" in again.err


async def test_login_then_whoami_prints_the_account_as_json(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    key_id = field((await cli("keygen")).out, "key id:")
    login = await cli("login", target=app.grpc.address)
    whoami = await cli("whoami", "--output", "json", target=app.grpc.address)
    assert login.code == 0, login.err
    account = json.loads(whoami.out)
    assert (account["name"], account["roles"]) == (f"accounts/{key_id}", ["user"])


async def test_a_user_administering_accounts_gets_the_permission_exit_code(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    await cli("keygen")
    result = await cli("account", "list", target=app.grpc.address)
    assert result.code == 5
    assert "PERMISSION_DENIED (MISSING_PERMISSION)" in result.err


async def test_no_key_and_no_session_is_a_clear_error(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    result = await cli("whoami", target=app.grpc.address)
    assert result.code == 1 and "fmcp keygen" in result.err


async def test_logout_revokes_the_session(
    cli: Callable[..., Awaitable[Result]], app: Application, tmp_path: Path
) -> None:
    await cli("keygen")
    await cli("login", target=app.grpc.address)
    sessions = tmp_path / "config" / "sessions.json"
    assert json.loads(sessions.read_text())
    result = await cli("logout", target=app.grpc.address)
    assert result.code == 0
    assert json.loads(sessions.read_text()) == {}


async def test_an_admin_registers_and_disables_an_account(
    cli: Callable[..., Awaitable[Result]],
    start_app: StartApp,
    tmp_path: Path,
) -> None:
    admin_public = field((await cli("keygen")).out, "public key:")
    other = await cli("keygen", "--key-file", str(tmp_path / "other.pem"))
    server = await start_app(admin_keys=(admin_public,))
    target = server.grpc.address
    registered = await cli(
        "account",
        "register",
        "--role",
        "viewer",
        "-o",
        "json",
        "--",  # a public key may start with "-"
        field(other.out, "public key:"),
        target=target,
    )
    assert registered.code == 0, registered.err
    name = json.loads(registered.out)["name"]
    disabled = await cli("account", "disable", name, "-o", "json", target=target)
    assert json.loads(disabled.out)["disabled"] is True
    listed = json.loads((await cli("account", "list", "-o", "json", target=target)).out)
    assert {a["name"] for a in listed} >= {name}


async def test_register_with_a_malformed_key_is_a_usage_error(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    await cli("keygen")
    result = await cli("account", "register", "not-a-key", target=app.grpc.address)
    assert result.code == 2 and "PUBLIC_KEY" in result.err


async def test_register_takes_a_key_that_starts_with_a_dash_as_an_option(
    cli: Callable[..., Awaitable[Result]], start_app: StartApp
) -> None:
    admin_public = field((await cli("keygen")).out, "public key:")
    server = await start_app(admin_keys=(admin_public,))
    dashed = _public_key_starting_with_a_dash()
    registered = await cli(
        "account", "register", f"--public-key={dashed}", "-o", "json", target=server.grpc.address
    )
    assert registered.code == 0, registered.err
    assert json.loads(registered.out)["name"].startswith("accounts/")


async def test_register_refuses_a_key_given_twice(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    await cli("keygen")
    result = await cli("account", "register", "--public-key=abc", "abc", target=app.grpc.address)
    assert result.code == 2 and "once" in result.err


def _public_key_starting_with_a_dash() -> str:
    while True:
        raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        encoded = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        if encoded.startswith("-"):
            return encoded


async def test_token_prints_an_access_token_that_the_server_accepts(
    cli: Callable[..., Awaitable[Result]], app: Application
) -> None:
    await cli("keygen")
    result = await cli("token", target=app.grpc.address)
    caller = await app.verifier.verify(result.out.strip())
    assert result.code == 0 and caller.account.startswith("accounts/")


async def test_sign_refuses_stdin_that_is_not_a_challenge(
    cli: Callable[..., Awaitable[Result]],
) -> None:
    await cli("keygen")
    result = await cli("sign")  # stdin is empty
    assert result.code == 1 and "CreateChallenge" in result.err


async def test_sign_message_signs_with_the_key_pubkey_prints(
    cli: Callable[..., Awaitable[Result]],
) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    await cli("keygen")
    public = base64.b64decode((await cli("pubkey")).out.strip())
    message = base64.b64encode(b"formation-mcp-login-v1\ntest").decode()
    signature = base64.b64decode((await cli("sign", "--message", message)).out.strip())
    Ed25519PublicKey.from_public_bytes(public).verify(signature, base64.b64decode(message))
