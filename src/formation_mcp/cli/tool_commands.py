"""`fmcp tools list | describe` and `fmcp call TOOL`."""

from __future__ import annotations

import json
from typing import Any

import click

from formation_mcp.cli.calling import call_tool, read_arguments, wait_options
from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.models import Operation, Tool

TOOL_COLUMNS = ("name", "category", "kind", "title")


@click.group()
def tools() -> None:
    """Discover the tools you may call."""


def _row(tool: Tool) -> dict[str, Any]:
    kind = "long-running" if tool.annotations.long_running else "quick"
    return {**tool.to_dict(), "kind": kind}


@tools.command("list")
@click.option("--filter", "filter_", default="", help="e.g. 'category = \"vm\"'.")
@client_options
def tools_list(filter_: str, target: str | None, key_file: str | None, output: str) -> None:
    """List the tools (name, category, quick or long-running, title)."""

    async def action(client: Client) -> list[Tool]:
        return await client.tools.list(filter_)

    found = run_client(target, key_file, action)
    if output == "json":
        emit_rows([t.to_dict() for t in found], output, TOOL_COLUMNS)
    else:
        emit_rows([_row(t) for t in found], output, TOOL_COLUMNS)


@tools.command("describe")
@click.argument("name")
@client_options
def tools_describe(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Show a tool: description, annotations, permission and its arguments."""

    async def action(client: Client) -> Tool:
        return await client.tools.get(name)

    tool = run_client(target, key_file, action)
    if output == "json":
        emit(tool.to_dict(), output)
        return
    data = _row(tool)
    data["annotations"] = [k for k, v in tool.annotations.to_dict().items() if v]
    emit(
        data,
        output,
        (
            "name",
            "title",
            "description",
            "version",
            "category",
            "kind",
            "permission",
            "annotations",
            "aliases",
        ),
    )
    click.echo("arguments:")
    required = set(tool.input_schema.get("required", []))
    for field, schema in tool.input_schema.get("properties", {}).items():
        kind = _kind(schema)
        mark = " (required)" if field in required else ""
        about = schema.get("description", "") if isinstance(schema, dict) else ""
        click.echo(f"  {field}: {kind}{mark}" + (f"  {about}" if about else ""))


def _kind(schema: object) -> str:
    """A JSON Schema's type in a few words: `integer`, `one of start|stop`, `any`."""
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return "one of " + "|".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    return "|".join(kind) if isinstance(kind, list) else str(kind)


def print_operation_result(
    operation: Operation, output: str, columns: tuple[str, ...] = (), *, as_operation: bool = False
) -> None:
    """The tool's output of a done operation; with `as_operation` (--no-wait), the operation
    itself (its name only, as a table)."""
    if as_operation or not operation.done:
        if output == "json":
            emit(operation.to_dict(), output)
        else:
            click.echo(operation.name)
        return
    result = operation.result or {}
    if output == "json" or not columns:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        emit(result, output, columns)


@click.command("call")
@click.argument("tool")
@click.option(
    "--arg",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="An argument (repeatable); VALUE is parsed as JSON when it is JSON.",
)
@click.option(
    "--json",
    "json_source",
    metavar="FILE",
    help="The arguments as a JSON object from FILE, or - for stdin.",
)
@click.option("--validate-only", is_flag=True, help="Check the call without running it.")
@click.option("--reason", default="", help="Why: an approver reads it if the call needs one.")
@wait_options
@client_options
def call(
    tool: str,
    pairs: tuple[str, ...],
    json_source: str | None,
    validate_only: bool,
    reason: str,
    no_wait: bool,
    timeout: float | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Call TOOL and print its result (JSON); long-running tools show progress on stderr."""
    arguments = read_arguments(json_source, pairs)

    async def action(client: Client) -> Operation:
        if validate_only:
            return await client.tools.call(tool, arguments, validate_only=True)
        return await call_tool(
            client, tool, arguments, wait=not no_wait, timeout=timeout, reason=reason
        )

    operation = run_client(target, key_file, action)
    if validate_only:
        click.echo(json.dumps({"valid": True}) if output == "json" else "valid")
        return
    print_operation_result(operation, output, as_operation=no_wait)
