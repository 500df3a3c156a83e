"""`fmcp keygen`, `login`, `whoami`, `logout` and `account …`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import accounts_pb2, accounts_pb2_grpc, auth_pb2, auth_pb2_grpc
from google.protobuf import empty_pb2, field_mask_pb2

from formation_mcp.auth.keys import (
    b64url,
    key_id,
    load_private_key,
    parse_public_key,
    public_bytes,
    write_private_key,
)
from formation_mcp.cli.output import emit, emit_rows, fail_with_rpc_error, to_dict
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.session import (
    SessionStore,
    auth_metadata,
    ensure_session,
    log_in_with_key,
)

T = TypeVar("T")
ACCOUNT_COLUMNS = ("name", "roles", "disabled", "create_time")

target_option = click.option("--target", help="Server address (env FMCP_TARGET).")
key_option = click.option("--key-file", help="Ed25519 private key, PEM (env FMCP_KEY_FILE).")
output_option = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def run_rpc(
    config: ClientConfig, call: Callable[[grpc.aio.Channel, SessionStore], Awaitable[T]]
) -> T:
    """Run one client action; gRPC errors become a message and the error class's exit code."""

    async def main() -> T:
        async with grpc.aio.insecure_channel(config.target) as channel:
            return await call(channel, SessionStore(config.session_file))

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as error:
        fail_with_rpc_error(error)
        raise  # unreachable: fail_with_rpc_error exits
    except FileNotFoundError as error:
        raise click.ClickException(str(error)) from None


@click.command()
@key_option
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def keygen(key_file: str | None, force: bool) -> None:
    """Create an Ed25519 private key (mode 0600) and print its public key and key id."""
    path = ClientConfig.resolve(key_file=key_file).key_file
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    if path.exists():
        path.unlink()
    key = Ed25519PrivateKey.generate()
    write_private_key(path, key)
    public_key = public_bytes(key)
    click.echo(f"key file:   {path}")
    click.echo(f"public key: {b64url(public_key)}")
    click.echo(f"key id:     {key_id(public_key)}")


def _load_key(key_file: str | None) -> Ed25519PrivateKey:
    path = ClientConfig.resolve(key_file=key_file).key_file
    try:
        return load_private_key(path)
    except FileNotFoundError:
        raise click.ClickException(f"no key at {path}: run `fmcp keygen`") from None


@click.command()
@key_option
def pubkey(key_file: str | None) -> None:
    """Print the public key (base64) of your key, as CreateChallenge takes it."""
    click.echo(base64.b64encode(public_bytes(_load_key(key_file))).decode())


@click.command()
@key_option
@click.option("--message", help="Sign this base64 message and print the base64 signature.")
def sign(key_file: str | None, message: str | None) -> None:
    """Sign a login challenge for REST users. Reads the JSON answer of POST /v1/auth/challenge
    on stdin and prints the JSON body for POST /v1/auth/login:

    curl -s $ENVOY/v1/auth/challenge -d "{\"public_key\":\"$(fmcp pubkey)\"}" | fmcp sign |
    curl -s $ENVOY/v1/auth/login -d @-
    """
    key = _load_key(key_file)
    if message is not None:
        click.echo(base64.b64encode(key.sign(_b64(message, "--message"))).decode())
        return
    try:
        challenge = json.loads(sys.stdin.read())
        challenge_id, text = challenge["challenge_id"], challenge["message"]
    except (ValueError, KeyError, TypeError):
        raise click.ClickException(
            "stdin must be the JSON answer of CreateChallenge (challenge_id, message)"
        ) from None
    signature = key.sign(_b64(text, "message"))
    click.echo(
        json.dumps(
            {
                "challenge_id": challenge_id,
                "public_key": base64.b64encode(public_bytes(key)).decode(),
                "signature": base64.b64encode(signature).decode(),
            }
        )
    )


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(
            text + "=" * (-len(text) % 4),
            altchars=b"-_" if ("-" in text or "_" in text) else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise click.ClickException(f"{what} is not base64") from None


@click.command("login")
@target_option
@key_option
@output_option
def login_command(target: str | None, key_file: str | None, output: str) -> None:
    """Sign a login challenge with your key and cache the session for later commands."""
    config = ClientConfig.resolve(target, key_file)

    async def call(channel: grpc.aio.Channel, store: SessionStore) -> auth_pb2.Session:
        return await log_in_with_key(channel, config, store)

    session = run_rpc(config, call)
    emit(to_dict(session.account), output, ("name", "key_id", "roles"))


@click.command()
@target_option
@key_option
@output_option
def whoami(target: str | None, key_file: str | None, output: str) -> None:
    """Show the account you are logged in as."""
    config = ClientConfig.resolve(target, key_file)

    async def call(channel: grpc.aio.Channel, store: SessionStore) -> auth_pb2.Account:
        metadata = await auth_metadata(channel, config, store)
        account: auth_pb2.Account = await auth_pb2_grpc.AuthServiceStub(channel).GetCurrentAccount(
            empty_pb2.Empty(), metadata=metadata
        )
        return account

    emit(to_dict(run_rpc(config, call)), output, ("name", "key_id", "roles"))


@click.command()
@target_option
@key_option
def token(target: str | None, key_file: str | None) -> None:
    """Print a valid access token (refreshed or re-logged-in as needed), for curl and grpcurl:
    `-H "authorization: Bearer $(fmcp token)"`."""
    config = ClientConfig.resolve(target, key_file)

    async def call(channel: grpc.aio.Channel, store: SessionStore) -> str:
        return (await ensure_session(channel, config, store)).access_token

    click.echo(run_rpc(config, call))


@click.command()
@target_option
@key_option
def logout(target: str | None, key_file: str | None) -> None:
    """Revoke the cached session on the server and forget it here."""
    config = ClientConfig.resolve(target, key_file)

    async def call(channel: grpc.aio.Channel, store: SessionStore) -> None:
        session = store.load(config.session_key)
        if session is None:
            return
        await auth_pb2_grpc.AuthServiceStub(channel).RevokeToken(
            auth_pb2.RevokeTokenRequest(refresh_token=session.refresh_token),
            metadata=(("authorization", f"Bearer {session.access_token}"),),
        )
        store.forget(config.session_key)

    run_rpc(config, call)
    click.echo("logged out")


@click.group()
def account() -> None:
    """Administer accounts (needs the admin role)."""


def _accounts_call(
    config: ClientConfig,
    action: Callable[[accounts_pb2_grpc.AccountsServiceAsyncStub, Any], Awaitable[T]],
) -> T:
    async def call(channel: grpc.aio.Channel, store: SessionStore) -> T:
        metadata = await auth_metadata(channel, config, store)
        return await action(accounts_pb2_grpc.AccountsServiceStub(channel), metadata)

    return run_rpc(config, call)


@account.command("list")
@target_option
@key_option
@output_option
def account_list(target: str | None, key_file: str | None, output: str) -> None:
    """List every account."""
    config = ClientConfig.resolve(target, key_file)

    async def action(
        stub: accounts_pb2_grpc.AccountsServiceAsyncStub, md: Any
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        token = ""
        while True:
            page = await stub.ListAccounts(
                accounts_pb2.ListAccountsRequest(page_token=token), metadata=md
            )
            rows.extend(to_dict(a) for a in page.accounts)
            token = page.next_page_token
            if not token:
                return rows

    emit_rows(_accounts_call(config, action), output, ACCOUNT_COLUMNS)


@account.command("register")
@click.argument("public_key")
@click.option("--role", "roles", multiple=True, help="admin, user or viewer (repeatable).")
@target_option
@key_option
@output_option
def account_register(
    public_key: str, roles: tuple[str, ...], target: str | None, key_file: str | None, output: str
) -> None:
    """Register PUBLIC_KEY (base64url, base64 or hex) as an account."""
    config = ClientConfig.resolve(target, key_file)
    try:
        raw = parse_public_key(public_key)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="PUBLIC_KEY") from None

    async def action(stub: accounts_pb2_grpc.AccountsServiceAsyncStub, md: Any) -> auth_pb2.Account:
        created: auth_pb2.Account = await stub.CreateAccount(
            accounts_pb2.CreateAccountRequest(
                account=auth_pb2.Account(public_key=raw, roles=list(roles))
            ),
            metadata=md,
        )
        return created

    emit(to_dict(_accounts_call(config, action)), output, ACCOUNT_COLUMNS)


def _update(
    config: ClientConfig, name: str, account_fields: auth_pb2.Account, paths: list[str], output: str
) -> None:
    account_fields.name = name if name.startswith("accounts/") else f"accounts/{name}"

    async def action(stub: accounts_pb2_grpc.AccountsServiceAsyncStub, md: Any) -> auth_pb2.Account:
        updated: auth_pb2.Account = await stub.UpdateAccount(
            accounts_pb2.UpdateAccountRequest(
                account=account_fields, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
            metadata=md,
        )
        return updated

    emit(to_dict(_accounts_call(config, action)), output, ACCOUNT_COLUMNS)


@account.command("disable")
@click.argument("name")
@target_option
@key_option
@output_option
def account_disable(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Disable NAME (accounts/KEY_ID or KEY_ID): no login, its tokens stop working."""
    config = ClientConfig.resolve(target, key_file)
    _update(config, name, auth_pb2.Account(disabled=True), ["disabled"], output)


@account.command("enable")
@click.argument("name")
@target_option
@key_option
@output_option
def account_enable(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Enable NAME again."""
    config = ClientConfig.resolve(target, key_file)
    _update(config, name, auth_pb2.Account(disabled=False), ["disabled"], output)


@account.command("roles")
@click.argument("name")
@click.argument("roles", nargs=-1, required=True)
@target_option
@key_option
@output_option
def account_roles(
    name: str, roles: tuple[str, ...], target: str | None, key_file: str | None, output: str
) -> None:
    """Set the roles of NAME (admin, user, viewer)."""
    config = ClientConfig.resolve(target, key_file)
    _update(config, name, auth_pb2.Account(roles=list(roles)), ["roles"], output)
