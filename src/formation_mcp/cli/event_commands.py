"""`fmcp events list | watch` (the events of your resources) and `fmcp vm logs | events`
(one instance's output and events).

`events watch` runs until interrupted; `-o json` prints one JSON object per event (newline-
delimited JSON). `vm logs -f` follows new lines until --duration ends or the instance stops.
"""

from __future__ import annotations

import json
from typing import Any

import click

from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.models import Event, Operation

LIST_COLUMNS = ("time", "severity", "type", "resource", "message")
_FILTER_HELP = "e.g. 'type = \"instance.*\" AND severity = ERROR'."


@click.group()
def events() -> None:
    """What happened to your instances, packs and operations."""


def _row(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "time": event.get("time") or ""}


def _line(event: Event) -> str:
    when = event.time.isoformat().replace("+00:00", "Z") if event.time else ""
    return f"{when} {event.severity:<7} {event.type:<20} {event.resource} {event.message}"


@events.command("list")
@click.option("--filter", "filter_", default="", help=_FILTER_HELP)
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@click.option("--all-users", is_flag=True, help="Every account's events (admins).")
@client_options
def events_list(
    filter_: str,
    limit: int,
    all_users: bool,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """List events, newest first."""

    async def action(client: Client) -> list[Event]:
        return [
            event async for event in client.events.list(filter_, limit=limit, all_users=all_users)
        ]

    found = run_client(target, key_file, action)
    emit_rows([_row(event.to_dict()) for event in found], output, LIST_COLUMNS)


@events.command("watch")
@click.option("--filter", "filter_", default="", help=_FILTER_HELP)
@click.option("--after", default="", help="Start after this event (its name); default: now.")
@click.option("--all-users", is_flag=True, help="Every account's events (admins).")
@client_options
def events_watch(
    filter_: str,
    after: str,
    all_users: bool,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Print each new event as it happens (-o json: one object per line) until interrupted."""

    async def action(client: Client) -> None:
        async for event in client.events.watch(filter_, after=after, all_users=all_users):
            if output == "json":
                click.echo(json.dumps(event.to_dict(), sort_keys=True))
            else:
                click.echo(_line(event))

    run_client(target, key_file, action)


@click.command("logs")
@click.argument("instance")
@click.option("--tail", type=int, help="The last N lines (default 200, at most 5000).")
@click.option("--since", help="Only lines from this RFC 3339 time or this long ago (10m).")
@click.option("--stream", type=click.Choice(["stdout", "stderr", "all"]), help="Default all.")
@click.option("--cursor", help="Continue where an earlier answer ended (its next_cursor).")
@click.option("--max-bytes", type=int, help="Cap on the answer (default 16384).")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--duration", help="With -f: how long (default 60s, at most 10m).")
@client_options
def vm_logs(
    instance: str,
    tail: int | None,
    since: str | None,
    stream: str | None,
    cursor: str | None,
    max_bytes: int | None,
    follow: bool,
    duration: str | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Print INSTANCE's output lines (time, stream, text), bounded; says what it left out."""

    def printed(operation: Operation) -> None:
        for line in operation.metadata.logs:
            click.echo(line.text)

    async def action(client: Client) -> dict[str, Any]:
        return await client.instance_logs(
            instance,
            tail=tail,
            since=since,
            stream=stream,
            cursor=cursor,
            max_bytes=max_bytes,
            follow=follow,
            duration=duration,
            on_progress=printed if follow and output != "json" else None,
        )

    result = run_client(target, key_file, action)
    if output == "json":
        emit(result, output)
        return
    for line in result.get("lines", []):
        click.echo(f"{line.get('time', '-')} {line['stream']:<6} {line['text']}")
    if result.get("hint"):
        click.echo(f"# {result['hint']}", err=True)
    if result.get("truncated") or result.get("followed_lines") is not None:
        click.echo(f"# next cursor: {result['next_cursor']}", err=True)


@click.command("events")
@click.argument("instance")
@click.option("--filter", "filter_", default="", help=_FILTER_HELP)
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@click.option("--cursor", default="", help="next_cursor of an earlier page.")
@client_options
def vm_events(
    instance: str,
    filter_: str,
    limit: int,
    cursor: str,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """List INSTANCE's events, newest first."""

    async def action(client: Client) -> dict[str, Any]:
        return await client.instance_events(
            instance, filter=filter_, page_size=min(max(limit, 1), 200), cursor=cursor
        )

    result = run_client(target, key_file, action)
    if output == "json":
        emit(result, output)
        return
    emit_rows([_row(event) for event in result.get("events", [])], output, LIST_COLUMNS)
    if result.get("next_cursor"):
        click.echo(f"# more: --cursor {result['next_cursor']}", err=True)
