"""Calling a tool from the command line: arguments from --arg/--json, then the operation
followed to its end with progress (or returned at once with --no-wait)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from formation_mcp.cli.following import follow_with_progress
from formation_mcp.client.client import FIRST_WAIT_SECONDS, Client, result_of
from formation_mcp.client.models import Operation

F = TypeVar("F", bound=Callable[..., Any])


def wait_options(command: F) -> F:
    """--no-wait and --timeout, for commands that start long-running work."""
    command = click.option(
        "--timeout",
        type=float,
        help="Give up waiting after this many seconds (exit 11; the work goes on).",
    )(command)
    return click.option(
        "--no-wait", is_flag=True, help="Print the operation at once instead of following it."
    )(command)


def parse_arg(text: str) -> tuple[str, Any]:
    """`key=value`: the value is JSON when it parses as JSON (numbers, true, lists, objects,
    quoted strings), otherwise the text itself."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise click.BadParameter(f"{text!r} is not key=value", param_hint="--arg")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def read_arguments(json_source: str | None, pairs: tuple[str, ...]) -> dict[str, Any]:
    """The arguments object: --json FILE (or - for stdin) first, then each --arg over it."""
    arguments: dict[str, Any] = {}
    if json_source is not None:
        text = sys.stdin.read() if json_source == "-" else Path(json_source).read_text()
        try:
            loaded = json.loads(text)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--json") from None
        if not isinstance(loaded, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--json")
        arguments.update(loaded)
    arguments.update(parse_arg(pair) for pair in pairs)
    return arguments


async def call_tool(
    client: Client,
    tool: str,
    arguments: dict[str, Any],
    *,
    wait: bool = True,
    timeout: float | None = None,
    reason: str = "",
) -> Operation:
    """Call `tool` (with a request id, so the SDK may retry it) and, unless `wait` is False,
    follow it to its end; a failed operation raises its error class. The call itself waits a
    moment (FIRST_WAIT_SECONDS): work done by then takes one RPC and shows no progress bar."""
    first_wait = FIRST_WAIT_SECONDS if timeout is None else min(FIRST_WAIT_SECONDS, timeout)
    operation = await client.tools.call(
        tool,
        arguments,
        request_id=str(uuid.uuid4()),
        wait=first_wait if wait else 0.0,
        reason=reason,
    )
    if not wait:
        return operation
    # Done within the call's wait, it is still shown (its final state and recent log lines).
    operation = await follow_with_progress(client, operation, timeout=timeout)
    result_of(operation)
    return operation
