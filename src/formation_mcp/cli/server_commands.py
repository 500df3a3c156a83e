"""`fmcp serve` and `fmcp worker`: the server and worker processes, one or several.

With `--processes N` (N > 1) the command supervises N children (`cli.processes`): the API's
children share the gRPC and HTTP ports (SO_REUSEPORT, the one deliberate case of a shared
port: the parent checks the ports are free first), each worker child is a node of its own
(`FMCP_NODE_ID` + `-1`, `-2`, ...). Several processes need what they share to be shared:
PostgreSQL (changes reach every process through NOTIFY) and RabbitMQ (work and cancels reach
every worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from formation_mcp.cli.processes import Child, ChildProcesses
from formation_mcp.gc_tuning import tune_collector
from formation_mcp.listening import ListenError, check_free
from formation_mcp.settings import Settings, SettingsError

log = logging.getLogger("formation_mcp.cli")

SHARED_PORTS_OPTION = "--shared-ports"
BRIDGE_SECRET_OPTION = "--bridge-secret-file"
PROXY_SECRET_FILE = "proxy-secret"
BRIDGE_SECRET_FILE = "bridge-secret"


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise click.UsageError(str(exc)) from None


def _processes_option(command: Any) -> Any:
    return click.option(
        "--processes",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Run this many processes, supervised by this one (needs PostgreSQL and RabbitMQ).",
    )(command)


@click.command()
@click.option("--grpc-listen", help="Override FMCP_GRPC_LISTEN (host:port).")
@click.option("--http-listen", help="Override FMCP_HTTP_LISTEN (host:port).")
@click.option("--no-worker", is_flag=True, help="Do not run a worker inside this process.")
@click.option(
    "--envoy",
    "with_envoy",
    is_flag=True,
    help="Also run Envoy (REST + gRPC front door on FMCP_ENVOY_LISTEN) and supervise both.",
)
@_processes_option
@click.option(SHARED_PORTS_OPTION, "shared_ports", is_flag=True, hidden=True)
@click.option(
    BRIDGE_SECRET_OPTION, "bridge_secret_file", type=click.Path(path_type=Path), hidden=True
)
def serve(
    grpc_listen: str | None,
    http_listen: str | None,
    no_worker: bool,
    with_envoy: bool,
    processes: int,
    shared_ports: bool,
    bridge_secret_file: Path | None,
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
    tune_collector(settings.gc_young_threshold)
    try:
        if processes > 1:
            _check_shared(settings, "fmcp serve")
            code = asyncio.run(_serve_children(settings, processes, no_worker, with_envoy))
        else:
            bridge = bridge_secret_file.read_text().strip() if bridge_secret_file else ""
            code = asyncio.run(_serve(settings, not no_worker, with_envoy, shared_ports, bridge))
    except ListenError as error:
        click.echo(f"fmcp: {error}", err=True)
        code = 1
    raise SystemExit(code)


def _stop_on_signals() -> asyncio.Event:
    """Set on SIGINT/SIGTERM. Installed before anything starts: a signal that arrives while the
    server starts (its ports may already answer) stops it cleanly instead of killing it."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _with_proxy_secret(settings: Settings) -> Settings:
    """Our Envoy proves itself with a secret made up for this run (its x-forwarded-for is
    believed only with it): no other local client can claim another address."""
    if settings.proxy_secret:
        return settings
    return replace(settings, proxy_secret=secrets.token_urlsafe(32))


async def _serve(
    settings: Settings, run_worker: bool, with_envoy: bool, shared: bool, bridge_secret: str
) -> int:
    """Runs until SIGINT/SIGTERM (exit 0) or, with --envoy, until Envoy exits (exit 1):
    the two start and stop together."""
    from formation_mcp.app import Application

    stop = _stop_on_signals()
    if with_envoy:
        settings = _with_proxy_secret(settings)
        check_free("FMCP_ENVOY_LISTEN", settings.envoy_listen)
    app = Application(
        settings, run_worker=run_worker, shared_ports=shared, bridge_secret=bridge_secret
    )
    await app.start()
    click.echo(f"fmcp: gRPC on {app.grpc.address}, HTTP on {app.http.address}", err=True)
    try:
        return await _until_stopped(settings, stop, with_envoy, app.grpc.address, app.http.address)
    finally:
        log.info("stopping: draining calls for up to %.0fs", settings.shutdown_grace_seconds)
        await app.stop()


async def _until_stopped(
    settings: Settings, stop: asyncio.Event, with_envoy: bool, grpc: str, http: str
) -> int:
    """Until SIGINT/SIGTERM (0) or, with Envoy, until Envoy exits (1); Envoy is stopped."""
    from formation_mcp.envoy import EnvoyProcess, write_config

    envoy: EnvoyProcess | None = None
    try:
        if with_envoy and not stop.is_set():
            config = write_config(
                settings.data_dir,
                listen=settings.envoy_listen,
                grpc_upstream=grpc,
                http_upstream=http,
                xds_dir=settings.xds_dir,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
            )
            envoy = EnvoyProcess(config, settings.envoy_listen, settings.proxy_secret)
            await envoy.start()
            click.echo(f"fmcp: Envoy (REST and gRPC) on {settings.envoy_listen}", err=True)
        signalled = asyncio.ensure_future(stop.wait())
        waiting: set[asyncio.Future[Any]] = {signalled}
        if envoy is not None:
            waiting.add(asyncio.ensure_future(envoy.wait()))
        done, _pending = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if signalled in done:
            return 0
        click.echo("fmcp: Envoy exited; stopping the server too", err=True)
        return 1
    finally:
        if envoy is not None:
            await envoy.stop()


def _check_shared(settings: Settings, command: str) -> None:
    if not settings.effective_database_url.startswith("postgresql"):
        raise click.UsageError(
            f"{command} --processes needs a database every process shares: set "
            "FMCP_DATABASE_URL=postgresql+asyncpg://..."
        )
    if not settings.broker_url.startswith(("amqp://", "amqps://")):
        raise click.UsageError(
            f"{command} --processes needs a broker every process shares: set "
            "FMCP_BROKER_URL=amqp://..."
        )


def _concrete(setting: str, address: str) -> str:
    """`address` checked free; port 0 becomes a free port (every child must use the same)."""
    check_free(setting, address)
    host, _, port = address.rpartition(":")
    if int(port) != 0:
        return address
    with socket.create_server((host.strip("[]"), 0)) as probe:
        return f"{host}:{probe.getsockname()[1]}"


async def _serve_children(
    settings: Settings, processes: int, no_worker: bool, with_envoy: bool
) -> int:
    stop = _stop_on_signals()
    grpc = _concrete("FMCP_GRPC_LISTEN", settings.grpc_listen)
    http = _concrete("FMCP_HTTP_LISTEN", settings.http_listen)
    env = {**os.environ, "FMCP_GRPC_LISTEN": grpc, "FMCP_HTTP_LISTEN": http}
    if with_envoy:
        settings = _with_proxy_secret(settings)
        check_free("FMCP_ENVOY_LISTEN", settings.envoy_listen)
        env["FMCP_PROXY_SECRET_FILE"] = str(
            _write_secret(settings, PROXY_SECRET_FILE, settings.proxy_secret)
        )
    # The MCP endpoint of one child may reach the gRPC API of another (the port is shared):
    # they all accept the same bridge secret.
    bridge = _write_secret(settings, BRIDGE_SECRET_FILE, secrets.token_urlsafe(32))
    argv = [
        "serve",
        SHARED_PORTS_OPTION,
        BRIDGE_SECRET_OPTION,
        str(bridge),
        *(["--no-worker"] if no_worker else []),
    ]
    node = settings.effective_node_id
    children = [
        Child(f"fmcp serve #{i}", argv, {**env, "FMCP_NODE_ID": f"{node}-{i}"})
        for i in range(1, processes + 1)
    ]
    group = ChildProcesses(children, settings.shutdown_grace_seconds)
    running = asyncio.ensure_future(group.run(handle_signals=False))
    click.echo(f"fmcp: {processes} processes on gRPC {grpc}, HTTP {http}", err=True)
    try:
        code = await _until_stopped(settings, stop, with_envoy, grpc, http)
    finally:
        group.stop()
        await running
    return code


def _write_secret(settings: Settings, name: str, secret: str) -> Path:
    """A secret the children read, in the data directory, 0600."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secret)
    return path


@click.command()
@_processes_option
def worker(processes: int) -> None:
    """Run a worker: take work from FMCP_BROKER_URL (RabbitMQ), run tools, report events."""
    from formation_mcp.logging_setup import configure_logging
    from formation_mcp.worker_app import WorkerApplication

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format)
    tune_collector(settings.gc_young_threshold)
    if processes > 1:
        _check_shared(settings, "fmcp worker")
        asyncio.run(_worker_children(settings, processes))
        return
    try:
        application = WorkerApplication(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except ListenError as error:
        click.echo(f"fmcp: {error}", err=True)
        raise SystemExit(1) from None

    async def run() -> None:
        stop = _stop_on_signals()
        await application.start()
        click.echo(
            f"fmcp worker {application.worker.node_id}: ready (/metrics on "
            f"{application.http.address})",
            err=True,
        )
        await stop.wait()
        await application.stop()

    asyncio.run(run())


async def _worker_children(settings: Settings, processes: int) -> None:
    node = settings.effective_node_id
    host, _, port = settings.worker_http_listen.rpartition(":")

    def listen(i: int) -> str:
        """Each child is a node of its own with its own /metrics: the next port up."""
        return f"{host}:{int(port) + i - 1 if int(port) else 0}"

    children = [
        Child(
            f"fmcp worker #{i}",
            ["worker"],
            {**os.environ, "FMCP_NODE_ID": f"{node}-{i}", "FMCP_WORKER_HTTP_LISTEN": listen(i)},
        )
        for i in range(1, processes + 1)
    ]
    nodes = f"{node}-1 to {node}-{processes}"
    click.echo(f"fmcp worker: {processes} processes, nodes {nodes}", err=True)
    await ChildProcesses(children, settings.shutdown_grace_seconds).run()
