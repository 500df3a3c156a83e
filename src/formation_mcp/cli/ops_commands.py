"""`fmcp ops list | get | wait | watch | cancel | approve | deny | delete`: the operations
tool calls start (approve and deny: another account's call AWAITING_APPROVAL).

`ops wait` and `ops get` print the operation; `ops wait` exits with the error class's code
when the operation failed (12 when it was cancelled) and 11 when --timeout passed first.
`ops watch -o json` prints one JSON object per line (newline-delimited JSON, one per change),
the only command whose JSON output is more than one document.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.following import follow_with_progress
from formation_mcp.cli.output import emit, emit_rows, exit_code
from formation_mcp.client.client import Client, operation_resource
from formation_mcp.client.models import Operation

LIST_COLUMNS = ("name", "tool", "state", "progress", "create_time")
DETAIL_COLUMNS = (
    "name",
    "tool",
    "state",
    "progress",
    "stage",
    "status_message",
    "approval",
    "create_time",
    "update_time",
    "end_time",
    "error",
    "result",
)


@click.group()
def ops() -> None:
    """Follow and manage your operations."""


def _flat(operation: Operation) -> dict[str, Any]:
    """One operation as a table row: metadata fields lifted to the top."""
    data = operation.to_dict()
    meta = data.pop("metadata")
    error = operation.error
    return {
        **meta,
        **data,
        "progress": f"{meta['progress_percent']}%",
        "error": f"{error.code} ({error.reason}): {error.message}" if error else "",
        "result": json.dumps(operation.result, sort_keys=True) if operation.result else "",
        "create_time": meta["create_time"] or "",
        "update_time": meta["update_time"] or "",
        "end_time": meta["end_time"] or "",
        "approval": _approval(meta["approval"]),
    }


def _approval(approval: dict[str, Any]) -> str:
    if not approval:
        return ""
    by = f" by {approval['decided_by']}" if approval.get("decided_by") else ""
    why = f" ({approval['reason']})" if approval.get("reason") else ""
    return f"{approval.get('state', '')}{by}{why}"


def show_operation(operation: Operation, output: str) -> None:
    if output == "json":
        emit(operation.to_dict(), output)
    else:
        emit(_flat(operation), output, DETAIL_COLUMNS)


def exit_for(operation: Operation) -> None:
    """Exit with the error class's code when the operation failed."""
    error = operation.exception()
    if error is not None:
        sys.exit(exit_code(error.code))


@ops.command("list")
@click.option("--filter", "filter_", default="", help="e.g. 'state = \"RUNNING\"'.")
@click.option("--limit", type=int, default=None, help="At most this many (newest first).")
@client_options
def ops_list(
    filter_: str, limit: int | None, target: str | None, key_file: str | None, output: str
) -> None:
    """List your operations, newest first (every page, or up to --limit)."""

    async def action(client: Client) -> list[Operation]:
        return [op async for op in client.operations.list(filter_, limit=limit)]

    found = run_client(target, key_file, action)
    if output == "json":
        emit_rows([op.to_dict() for op in found], output, LIST_COLUMNS)
    else:
        emit_rows([_flat(op) for op in found], output, LIST_COLUMNS)


@ops.command("get")
@click.argument("name")
@client_options
def ops_get(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Show operation NAME (operations/ID or ID)."""

    async def action(client: Client) -> Operation:
        return await client.operations.get(name)

    show_operation(run_client(target, key_file, action), output)


@ops.command("wait")
@click.argument("name")
@click.option("--timeout", type=float, help="Give up after this many seconds (exit 11).")
@client_options
def ops_wait(
    name: str, timeout: float | None, target: str | None, key_file: str | None, output: str
) -> None:
    """Wait for NAME to end, showing its progress; print it; exit with its error's code."""

    async def action(client: Client) -> Operation:
        current = await client.operations.get(name)
        return await follow_with_progress(client, current, timeout=timeout)

    operation = run_client(target, key_file, action)
    show_operation(operation, output)
    exit_for(operation)


@ops.command("watch")
@click.argument("name")
@click.option("--after-sequence", type=int, default=0, help="Replay the changes after this.")
@client_options
def ops_watch(
    name: str, after_sequence: int, target: str | None, key_file: str | None, output: str
) -> None:
    """Print NAME now and at every change until it ends (-o json: one object per line)."""

    async def action(client: Client) -> Operation | None:
        last: Operation | None = None
        async for snapshot in client.operations.watch(name, after_sequence):
            last = snapshot
            if output == "json":
                click.echo(json.dumps(snapshot.to_dict(), sort_keys=True))
            else:
                _print_change(snapshot)
        return last

    last = run_client(target, key_file, action)
    if last is not None:
        exit_for(last)


def _print_change(snapshot: Operation) -> None:
    meta = snapshot.metadata
    detail = " ".join(p for p in (meta.stage, meta.status_message) if p)
    click.echo(f"#{meta.sequence} {meta.state} {meta.progress_percent}% {detail}".rstrip())
    for line in meta.logs:
        click.echo(f"  | {line.text}")
    if snapshot.done:
        if snapshot.error is not None:
            click.echo(
                f"error: {snapshot.error.code} ({snapshot.error.reason}): {snapshot.error.message}"
            )
        else:
            click.echo(json.dumps(snapshot.result, indent=2, sort_keys=True))


@ops.command("cancel")
@click.argument("name")
@client_options
def ops_cancel(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Ask NAME to stop (it ends CANCELLED once the work has stopped)."""

    async def action(client: Client) -> Operation:
        return await client.operations.cancel(name)

    show_operation(run_client(target, key_file, action), output)


@ops.command("approve")
@click.argument("name")
@click.option("--comment", default="", help="Why it is approved (kept with the operation).")
@client_options
def ops_approve(
    name: str, comment: str, target: str | None, key_file: str | None, output: str
) -> None:
    """Approve NAME, another account's call AWAITING_APPROVAL: its work is queued and it runs
    (approvers and admins)."""

    async def action(client: Client) -> Operation:
        return await client.operations.approve(name, comment)

    show_operation(run_client(target, key_file, action), output)


@ops.command("deny")
@click.argument("name")
@click.option("--comment", required=True, help="Why it is denied (the caller reads it).")
@client_options
def ops_deny(
    name: str, comment: str, target: str | None, key_file: str | None, output: str
) -> None:
    """Deny NAME, another account's call AWAITING_APPROVAL: it fails PERMISSION_DENIED with
    the comment (approvers and admins)."""

    async def action(client: Client) -> Operation:
        return await client.operations.deny(name, comment)

    show_operation(run_client(target, key_file, action), output)


@ops.command("delete")
@click.argument("name")
@client_options
def ops_delete(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """Forget NAME (does not stop the work: use cancel)."""

    async def action(client: Client) -> None:
        await client.operations.delete(name)

    run_client(target, key_file, action)
    resource = operation_resource(name)
    if output == "json":
        emit({"name": resource, "deleted": True}, output)
    else:
        click.echo(f"deleted {resource}")
