"""`fmcp`: the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import click

from formation_mcp.cli.auth_commands import (
    account,
    keygen,
    login_command,
    logout,
    pubkey,
    sign,
    token,
    whoami,
)
from formation_mcp.cli.console_commands import console
from formation_mcp.cli.event_commands import events, vm_events, vm_logs
from formation_mcp.cli.grant_commands import authorize, sessions
from formation_mcp.cli.metrics_commands import vm_metrics, vm_recommend
from formation_mcp.cli.network_commands import net
from formation_mcp.cli.ops_commands import ops
from formation_mcp.cli.policy_commands import policy
from formation_mcp.cli.server_commands import serve, worker
from formation_mcp.cli.tool_commands import call, tools
from formation_mcp.cli.workload_commands import pack, vm
from formation_mcp.settings import Settings, SettingsError

log = logging.getLogger("formation_mcp.cli")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def main() -> None:
    """Formation MCP control plane."""


@main.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration to FMCP_DATABASE_URL."""
    from formation_mcp.db import migrate
    from formation_mcp.db.database import Database

    settings = _settings()

    async def run() -> str | None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(settings.effective_database_url)
        try:
            await migrate.upgrade(database)
            return await migrate.current_revision(database)
        finally:
            await database.close()

    revision = asyncio.run(run())
    click.echo(f"database at revision {revision}")


@main.command("mcp")
@click.option("--target", help="Server address (env FMCP_TARGET).")
@click.option("--key-file", help="Ed25519 private key, PEM (env FMCP_KEY_FILE).")
def mcp_command(target: str | None, key_file: str | None) -> None:
    """Serve the tools to an MCP host over stdio (stdout carries only MCP; logs go to stderr),
    as the account of your key file, through the API at FMCP_TARGET."""
    from formation_mcp.cli.common import make_client
    from formation_mcp.client.config import ClientConfig
    from formation_mcp.mcp_server.stdio import serve_stdio

    level = (os.environ.get("FMCP_LOG_LEVEL") or "WARNING").upper()
    logging.basicConfig(
        stream=sys.stderr, level=level, format="fmcp mcp: %(levelname)s %(message)s"
    )
    config = ClientConfig.resolve(target, key_file)
    if not config.key_file.exists():
        raise click.ClickException(f"no key at {config.key_file}: run `fmcp keygen` first")
    from formation_mcp.settings import Settings

    retention = Settings.from_env().operation_ttl_seconds
    asyncio.run(serve_stdio(make_client(config), config.key_file, retention))


main.add_command(serve)
main.add_command(worker)
main.add_command(keygen)
main.add_command(login_command)
main.add_command(whoami)
main.add_command(logout)
main.add_command(token)
main.add_command(pubkey)
main.add_command(sign)
account.add_command(sessions)
main.add_command(account)
main.add_command(authorize)
main.add_command(console)
main.add_command(tools)
main.add_command(call)
main.add_command(ops)
main.add_command(policy)
main.add_command(pack)
vm.add_command(vm_metrics)
vm.add_command(vm_recommend)
main.add_command(vm)
main.add_command(net)
vm.add_command(vm_logs)
vm.add_command(vm_events)
main.add_command(vm)
main.add_command(events)


if __name__ == "__main__":
    sys.exit(main())
