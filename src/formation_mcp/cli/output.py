"""Printing results and errors: a table for people, stable JSON for programs, and one exit code
per error class."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from formation_mcp.client.errors import FmcpClientError

EXIT_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.UNAUTHENTICATED: 4,
    grpc.StatusCode.PERMISSION_DENIED: 5,
    grpc.StatusCode.NOT_FOUND: 6,
    grpc.StatusCode.ALREADY_EXISTS: 7,
    grpc.StatusCode.FAILED_PRECONDITION: 8,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 9,
    grpc.StatusCode.UNAVAILABLE: 10,
    grpc.StatusCode.DEADLINE_EXCEEDED: 11,
    grpc.StatusCode.CANCELLED: 12,
}
"""Exit codes: 0 ok, 1 any other error, 2 usage (click), then one per gRPC error class."""


def to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def emit(data: dict[str, Any], output: str, columns: Sequence[str] = ()) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    for key in columns or list(data):
        label = key + ":"
        click.echo(f"{label:<14}" if len(label) < 14 else f"{label} ", nl=False)
        click.echo(_cell(data.get(key, "")))


def emit_rows(rows: list[dict[str, Any]], output: str, columns: Sequence[str]) -> None:
    if output == "json":
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = [[_cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in table)]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _cell(value: Any) -> str:
    """Lists as `a, b`, maps as `k=v, k=v`, None as nothing."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def exit_code(code: grpc.StatusCode) -> int:
    return EXIT_CODES.get(code, 1)


def fail_with_client_error(error: FmcpClientError) -> NoReturn:
    """The SDK's error: code, reason, operation, message and bad fields to stderr, then exit
    with the class's code."""
    label = error.code.name + (f" ({error.reason})" if error.reason else "")
    click.echo(f"error: {label}: {error.message}", err=True)
    if error.operation:
        click.echo(f"  operation: {error.operation}", err=True)
    for violation in error.field_violations:
        click.echo(f"  {violation.field}: {violation.description}", err=True)
    sys.exit(exit_code(error.code))
