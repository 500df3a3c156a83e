"""`fmcp`: the command line."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import sys
from dataclasses import replace
from typing import Any

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
from formation_mcp.cli.ops_commands import ops
from formation_mcp.cli.tool_commands import call, tools
from formation_mcp.cli.workload_commands import pack, vm
from formation_mcp.listening import ListenError, check_free
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


@main.command()
@click.option("--grpc-listen", help="Override FMCP_GRPC_LISTEN (host:port).")
@click.option("--http-listen", help="Override FMCP_HTTP_LISTEN (host:port).")
@click.option("--no-worker", is_flag=True, help="Do not run a worker inside this process.")
@click.option(
    "--envoy",
    "with_envoy",
    is_flag=True,
    help="Also run Envoy (REST + gRPC front door on FMCP_ENVOY_LISTEN) and supervise both.",
)
def serve(
    grpc_listen: str | None, http_listen: str | None, no_worker: bool, with_envoy: bool
) -> None:
    """Run the API server (gRPC with health and reflection, plus /metrics and /healthz),
    with an in-process worker unless --no-worker."""
    from formation_mcp.logging_setup import configure_logging

    settings = _settings()
    if grpc_listen:
        settings = replace(settings, grpc_listen=grpc_listen)
    if http_listen:
        settings = replace(settings, http_listen=http_listen)
    configure_logging(settings.log_level, settings.log_format)
    try:
        code = asyncio.run(_serve(settings, run_worker=not no_worker, with_envoy=with_envoy))
    except ListenError as error:
        click.echo(f"fmcp: {error}", err=True)
        code = 1
    sys.exit(code)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(settings: Settings, run_worker: bool, with_envoy: bool) -> int:
    """Runs until SIGINT/SIGTERM (exit 0) or, with --envoy, until Envoy exits (exit 1):
    the two start and stop together."""
    from formation_mcp.app import Application
    from formation_mcp.envoy import EnvoyProcess, write_config

    if with_envoy and not settings.proxy_secret:
        # Our Envoy proves itself with a secret made up for this run (its x-forwarded-for is
        # believed only with it): no other local client can claim another address.
        settings = replace(settings, proxy_secret=secrets.token_urlsafe(32))
    if with_envoy:
        check_free("FMCP_ENVOY_LISTEN", settings.envoy_listen)
    app = Application(settings, run_worker=run_worker)
    await app.start()
    click.echo(f"fmcp: gRPC on {app.grpc.address}, HTTP on {app.http.address}", err=True)
    envoy: EnvoyProcess | None = None
    try:
        if with_envoy:
            config = write_config(
                settings.data_dir,
                listen=settings.envoy_listen,
                grpc_upstream=app.grpc.address,
                http_upstream=app.http.address,
            )
            envoy = EnvoyProcess(config, settings.envoy_listen, settings.proxy_secret)
            await envoy.start()
            click.echo(f"fmcp: Envoy (REST and gRPC) on {settings.envoy_listen}", err=True)
        signalled = asyncio.ensure_future(_until_signalled())
        waiting: set[asyncio.Future[Any]] = {signalled}
        if envoy is not None:
            waiting.add(asyncio.ensure_future(envoy.wait()))
        done, _pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if signalled not in done:
            click.echo("fmcp: Envoy exited; stopping the server too", err=True)
            code = 1
    finally:
        if envoy is not None:
            await envoy.stop()
        log.info("stopping: draining calls for up to %.0fs", settings.shutdown_grace_seconds)
        await app.stop()
    return code


@main.command()
def worker() -> None:
    """Run a worker: take work from FMCP_BROKER_URL (RabbitMQ), run tools, report events."""
    from formation_mcp.logging_setup import configure_logging
    from formation_mcp.worker_app import WorkerApplication

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        application = WorkerApplication(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None

    async def run() -> None:
        await application.start()
        click.echo(f"fmcp worker {application.worker.node_id}: ready", err=True)
        await _until_signalled()
        await application.stop()

    asyncio.run(run())


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
    asyncio.run(serve_stdio(make_client(config), config.key_file))


main.add_command(keygen)
main.add_command(login_command)
main.add_command(whoami)
main.add_command(logout)
main.add_command(token)
main.add_command(pubkey)
main.add_command(sign)
main.add_command(account)
main.add_command(tools)
main.add_command(call)
main.add_command(ops)
main.add_command(pack)
main.add_command(vm)


if __name__ == "__main__":
    sys.exit(main())
