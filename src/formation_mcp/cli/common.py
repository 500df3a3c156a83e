"""What every client command shares: the --target/--key-file/--output options and running one
SDK action, with SDK errors turned into a message and their class's exit code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from formation_mcp.cli.output import fail_with_client_error
from formation_mcp.client.client import Client
from formation_mcp.client.config import ClientConfig
from formation_mcp.client.errors import FmcpClientError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

target_option = click.option("--target", help="Server address (env FMCP_TARGET).")
key_option = click.option("--key-file", help="Ed25519 private key, PEM (env FMCP_KEY_FILE).")
output_option = click.option(
    "--output", "-o", type=click.Choice(["table", "json"]), default="table", show_default=True
)


def client_options(command: F) -> F:
    """--target, --key-file and --output."""
    return target_option(key_option(output_option(command)))


def make_client(config: ClientConfig) -> Client:
    if not config.key_file.exists():
        raise click.ClickException(
            f"no key at {config.key_file}: run `fmcp keygen` and `fmcp login`, or set FMCP_KEY_FILE"
        )
    try:
        return Client.from_config(config)
    except ValueError as error:
        raise click.ClickException(f"{config.key_file}: {error}") from None


def run_client(
    target: str | None, key_file: str | None, action: Callable[[Client], Awaitable[T]]
) -> T:
    """Run `action` with a client for the resolved configuration; SDK errors exit with their
    class's code (see `output.EXIT_CODES`)."""
    config = ClientConfig.resolve(target, key_file)

    async def main() -> T:
        async with make_client(config) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except FmcpClientError as error:
        fail_with_client_error(error)
        raise  # unreachable: fail_with_client_error exits
