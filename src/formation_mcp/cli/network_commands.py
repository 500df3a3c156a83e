"""`fmcp net expose | list | rm`: the network tools (an instance's URL on the front door)."""

from __future__ import annotations

from typing import Any

import click

from formation_mcp.cli.calling import call_tool
from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.models import Operation

ROUTE_COLUMNS = ("url", "instance_name", "port", "auth", "state", "target")
LIST_COLUMNS = ("path", "url", "instance_name", "port", "auth", "state")


@click.group()
def net() -> None:
    """Your instances' URLs on the front door: expose, list, remove."""


def _call(tool: str, arguments: dict[str, Any], target: str | None, key_file: str | None) -> Any:
    async def action(client: Client) -> Operation:
        return await call_tool(client, tool, arguments)

    return run_client(target, key_file, action).result or {}


@net.command("expose")
@click.argument("instance")
@click.option("--port", type=int, help="One of its EXPOSE ports (default: the first).")
@click.option("--path", help="The path prefix, e.g. /web/ (default: /apps/NAME/).")
@click.option(
    "--auth",
    type=click.Choice(["public", "token"]),
    default="public",
    show_default=True,
    help="token: only your bearer access token (or an admin's) gets through.",
)
@client_options
def net_expose(
    instance: str,
    port: int | None,
    path: str | None,
    auth: str,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Give INSTANCE (id or name) a URL on the front door; prints the route."""
    arguments: dict[str, Any] = {"id": instance, "auth": auth}
    if port is not None:
        arguments["port"] = port
    if path is not None:
        arguments["path"] = path
    emit(_call("network.expose", arguments, target, key_file), output, ROUTE_COLUMNS)


@net.command("list")
@click.option("--all-users", is_flag=True, help="Every owner's routes (admins).")
@client_options
def net_list(all_users: bool, target: str | None, key_file: str | None, output: str) -> None:
    """List your routes with their URLs and the state of their instances."""
    result = _call("network.list", {"all_users": True} if all_users else {}, target, key_file)
    if output == "json":
        emit(result, output)
        return
    emit_rows(list(result.get("routes", [])), output, LIST_COLUMNS)
    if result.get("truncated"):
        click.echo("(more routes than listed)", err=True)


@net.command("rm")
@click.argument("instance")
@click.option("--path", help="The route to remove (default: all of INSTANCE's).")
@client_options
def net_rm(
    instance: str, path: str | None, target: str | None, key_file: str | None, output: str
) -> None:
    """Remove INSTANCE's route at --path (all its routes without it)."""
    arguments: dict[str, Any] = {"id": instance}
    if path is not None:
        arguments["path"] = path
    result = _call("network.unexpose", arguments, target, key_file)
    if output == "json":
        emit(result, output)
        return
    emit_rows(list(result.get("routes", [])), output, LIST_COLUMNS)
