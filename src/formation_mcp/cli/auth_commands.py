"""`fmcp keygen`, `login`, `whoami`, `logout` and `account …`."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import accounts_pb2, accounts_pb2_grpc, auth_pb2
from google.protobuf import field_mask_pb2

from formation_mcp.auth.keys import (
    b64url,
    key_id,
    load_private_key,
    parse_public_key,
    public_bytes,
    write_private_key,
)
from formation_mcp.cli.common import key_option, output_option, run_client, target_option
from formation_mcp.cli.output import emit, emit_rows, to_dict
from formation_mcp.client.client import Client
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.models import Account

T = TypeVar("T")
ACCOUNT_COLUMNS = ("name", "roles", "disabled", "create_time")


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

    async def call(client: Client) -> Account:
        return await client.login()

    emit(run_client(target, key_file, call).to_dict(), output, ("name", "key_id", "roles"))


@click.command()
@target_option
@key_option
@output_option
def whoami(target: str | None, key_file: str | None, output: str) -> None:
    """Show the account you are logged in as."""

    async def call(client: Client) -> Account:
        return await client.whoami()

    emit(run_client(target, key_file, call).to_dict(), output, ("name", "key_id", "roles"))


@click.command()
@target_option
@key_option
def token(target: str | None, key_file: str | None) -> None:
    """Print a valid access token (refreshed or re-logged-in as needed), for curl and grpcurl:
    `-H "authorization: Bearer $(fmcp token)"`."""

    async def call(client: Client) -> str:
        return await client.access_token()

    click.echo(run_client(target, key_file, call))


@click.command()
@target_option
@key_option
def logout(target: str | None, key_file: str | None) -> None:
    """Revoke the cached session on the server and forget it here."""

    async def call(client: Client) -> None:
        await client.logout()

    run_client(target, key_file, call)
    click.echo("logged out")


@click.group()
def account() -> None:
    """Your sessions (`sessions`), and administering accounts (the other commands need the
    admin role)."""


def _accounts_call(
    target: str | None,
    key_file: str | None,
    action: Callable[[Client, accounts_pb2_grpc.AccountsServiceAsyncStub], Awaitable[T]],
) -> T:
    async def call(client: Client) -> T:
        return await action(client, accounts_pb2_grpc.AccountsServiceStub(client.channel))

    return run_client(target, key_file, call)


@account.command("list")
@target_option
@key_option
@output_option
def account_list(target: str | None, key_file: str | None, output: str) -> None:
    """List every account."""

    async def action(
        client: Client, stub: accounts_pb2_grpc.AccountsServiceAsyncStub
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page_token = ""
        while True:
            page: accounts_pb2.ListAccountsResponse = await client.unary(
                stub.ListAccounts,
                accounts_pb2.ListAccountsRequest(page_token=page_token),
                idempotent=True,
            )
            rows.extend(to_dict(a) for a in page.accounts)
            page_token = page.next_page_token
            if not page_token:
                return rows

    emit_rows(_accounts_call(target, key_file, action), output, ACCOUNT_COLUMNS)


@account.command("register")
@click.argument("public_key", required=False)
@click.option(
    "--public-key",
    "public_key_option",
    metavar="KEY",
    help="The key as an option: use it (or put -- before PUBLIC_KEY) when the key starts with '-'.",
)
@click.option("--role", "roles", multiple=True, help="admin, user or viewer (repeatable).")
@target_option
@key_option
@output_option
def account_register(
    public_key: str | None,
    public_key_option: str | None,
    roles: tuple[str, ...],
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Register PUBLIC_KEY (base64url, base64 or hex) as an account.

    A base64url key may start with '-': pass it as --public-key=KEY or after --.
    """
    if (public_key is None) == (public_key_option is None):
        raise click.UsageError("give the public key once: as PUBLIC_KEY or as --public-key=KEY")
    try:
        raw = parse_public_key(public_key or public_key_option or "")
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="PUBLIC_KEY") from None

    async def action(
        client: Client, stub: accounts_pb2_grpc.AccountsServiceAsyncStub
    ) -> auth_pb2.Account:
        created: auth_pb2.Account = await client.unary(
            stub.CreateAccount,
            accounts_pb2.CreateAccountRequest(
                account=auth_pb2.Account(public_key=raw, roles=list(roles))
            ),
            idempotent=False,
        )
        return created

    emit(to_dict(_accounts_call(target, key_file, action)), output, ACCOUNT_COLUMNS)


def _update(
    target: str | None,
    key_file: str | None,
    name: str,
    account_fields: auth_pb2.Account,
    paths: list[str],
    output: str,
) -> None:
    account_fields.name = name if name.startswith("accounts/") else f"accounts/{name}"

    async def action(
        client: Client, stub: accounts_pb2_grpc.AccountsServiceAsyncStub
    ) -> auth_pb2.Account:
        updated: auth_pb2.Account = await client.unary(
            stub.UpdateAccount,
            accounts_pb2.UpdateAccountRequest(
                account=account_fields, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
            idempotent=True,
        )
        return updated

    emit(to_dict(_accounts_call(target, key_file, action)), output, ACCOUNT_COLUMNS)


@account.command("disable")
@click.argument("name")
@target_option
@key_option
@output_option
def account_disable(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Disable NAME (accounts/KEY_ID or KEY_ID): no login, its tokens stop working."""
    _update(target, key_file, name, auth_pb2.Account(disabled=True), ["disabled"], output)


@account.command("enable")
@click.argument("name")
@target_option
@key_option
@output_option
def account_enable(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Enable NAME again."""
    _update(target, key_file, name, auth_pb2.Account(disabled=False), ["disabled"], output)


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
    _update(target, key_file, name, auth_pb2.Account(roles=list(roles)), ["roles"], output)
