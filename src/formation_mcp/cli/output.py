"""Printing results and errors: a table for people, stable JSON for programs, and one exit code
per error class."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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
        value = data.get(key, "")
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        click.echo(f"{key + ':':<14}{value}")


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
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def fail_with_rpc_error(error: grpc.aio.AioRpcError) -> None:
    """Print code, reason, message and bad fields to stderr, and exit with the class's code."""
    reason = ""
    fields: list[str] = []
    status = rpc_status.from_call(error)
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(f"  {v.field}: {v.description}" for v in bad.field_violations)
    code = error.code()
    label = f"{code.name}" + (f" ({reason})" if reason else "")
    click.echo(f"error: {label}: {error.details()}", err=True)
    for line in fields:
        click.echo(line, err=True)
    sys.exit(EXIT_CODES.get(code, 1))
