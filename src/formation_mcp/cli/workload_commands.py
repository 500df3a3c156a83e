"""`fmcp pack build | ship` and `fmcp vm list | status | control | delete`: the workload tools,
with progress for the long-running ones.

`pack build DIR` reads DIR's Formfile (`Formfile`, `Formfile.json`, `Formfile.yaml`,
`Formfile.yml`, first found; or --formfile) and sends every other regular file of DIR as the
build context (a .tar.gz). The Formfile itself is left out of the context; symbolic links are
skipped.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from formation_mcp.cli.calling import call_tool, parse_arg, wait_options
from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.cli.tool_commands import print_operation_result
from formation_mcp.client.client import Client
from formation_mcp.client.models import Operation
from formation_mcp.client.workloads import find_formfile, pack_context

BUILD_COLUMNS = ("build_id", "name", "digest", "size_bytes", "cached", "not_applied", "note")
INSTANCE_COLUMNS = (
    "instance_id",
    "name",
    "state",
    "build_id",
    "node",
    "pid",
    "ports",
    "resources",
    "create_time",
)
LIST_COLUMNS = ("instance_id", "name", "state", "build_id", "ports", "create_time")


@click.group()
def pack() -> None:
    """Build packs from a Formfile and ship them as instances."""


@pack.command("build")
@click.argument(
    "directory", type=click.Path(exists=True, file_okay=False, path_type=Path), default="."
)
@click.option(
    "--formfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The Formfile (default: DIRECTORY/Formfile[.json|.yaml|.yml]).",
)
@wait_options
@client_options
def pack_build(
    directory: Path,
    formfile: Path | None,
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Build a pack from DIRECTORY: its Formfile, and its other files as the build context."""
    try:
        formfile = formfile or find_formfile(directory)
    except FileNotFoundError as error:
        raise click.UsageError(str(error)) from None
    exclude = _excluded(formfile, directory)

    async def action(client: Client) -> Operation:
        context = await asyncio.to_thread(pack_context, directory, exclude)
        arguments = {"formfile": formfile.read_text(), "context_tar_gz": context}
        return await call_tool(client, "pack.build", arguments, wait=not no_wait, timeout=timeout)

    print_operation_result(
        run_client(target, key_file, action), output, BUILD_COLUMNS, as_operation=no_wait
    )


def _excluded(formfile: Path, directory: Path) -> tuple[str, ...]:
    try:
        return (formfile.resolve().relative_to(directory.resolve()).as_posix(),)
    except ValueError:
        return ()


@pack.command("ship")
@click.argument("build_id")
@click.argument("name")
@click.option("--vcpus", type=int)
@click.option("--memory-mb", type=int)
@click.option("--disk-gb", type=int)
@click.option(
    "--metadata",
    "metadata",
    multiple=True,
    metavar="KEY=VALUE",
    help="Instance metadata (repeatable).",
)
@wait_options
@client_options
def pack_ship(
    build_id: str,
    name: str,
    vcpus: int | None,
    memory_mb: int | None,
    disk_gb: int | None,
    metadata: tuple[str, ...],
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Run pack BUILD_ID as instance NAME."""
    config: dict[str, Any] = {
        k: v
        for k, v in (("vcpus", vcpus), ("memory_mb", memory_mb), ("disk_gb", disk_gb))
        if v is not None
    }
    if metadata:
        config["metadata"] = {k: str(v) for k, v in (parse_arg(m) for m in metadata)}
    arguments: dict[str, Any] = {"build_id": build_id, "instance_name": name}
    if config:
        arguments["vm_config"] = config
    _run_tool("pack.ship", arguments, no_wait, timeout, target, key_file, output)


def _run_tool(
    tool: str,
    arguments: dict[str, Any],
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
    columns: tuple[str, ...] = INSTANCE_COLUMNS,
) -> None:
    async def action(client: Client) -> Operation:
        return await call_tool(client, tool, arguments, wait=not no_wait, timeout=timeout)

    print_operation_result(
        run_client(target, key_file, action), output, columns, as_operation=no_wait
    )


@click.group()
def vm() -> None:
    """Your instances: list, status, start/stop/restart, delete, metrics, recommend."""


@vm.command("list")
@click.option("--all-users", is_flag=True, help="Every owner's instances (admins).")
@client_options
def vm_list(all_users: bool, target: str | None, key_file: str | None, output: str) -> None:
    """List your instances."""

    async def action(client: Client) -> Operation:
        return await call_tool(client, "vm.list", {"all_users": True} if all_users else {})

    operation = run_client(target, key_file, action)
    result = operation.result or {}
    if output == "json":
        emit(result, output)
    else:
        emit_rows(list(result.get("instances", [])), output, LIST_COLUMNS)


@vm.command("status")
@click.argument("instance")
@client_options
def vm_status(instance: str, target: str | None, key_file: str | None, output: str) -> None:
    """Show INSTANCE (id or name): state, pid, uptime, ports, resources, recent logs."""

    async def action(client: Client) -> Operation:
        return await call_tool(client, "vm.status", {"id": instance})

    operation = run_client(target, key_file, action)
    result = operation.result or {}
    if output == "json":
        emit(result, output)
        return
    emit(result, output, (*INSTANCE_COLUMNS, "exit_code", "uptime_seconds"))
    for line in result.get("logs", []):
        click.echo(f"  | {line}")


@vm.command("control")
@click.argument("instance")
@click.argument(
    "action_name", metavar="start|stop|restart", type=click.Choice(["start", "stop", "restart"])
)
@wait_options
@client_options
def vm_control(
    instance: str,
    action_name: str,
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Start, stop or restart INSTANCE."""
    arguments = {"id": instance, "operation": action_name}
    _run_tool("vm.control", arguments, no_wait, timeout, target, key_file, output)


@vm.command("delete")
@click.argument("instance")
@click.option("--force", is_flag=True, help="Remove it even if it does not stop cleanly.")
@wait_options
@client_options
def vm_delete(
    instance: str,
    force: bool,
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Stop and remove INSTANCE."""
    arguments: dict[str, Any] = {"id": instance}
    if force:
        arguments["force"] = True
    _run_tool(
        "vm.delete",
        arguments,
        no_wait,
        timeout,
        target,
        key_file,
        output,
        ("instance_id", "name", "state"),
    )
