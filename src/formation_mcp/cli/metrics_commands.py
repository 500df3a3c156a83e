"""`fmcp vm metrics ID` (a small text chart per series, JSON with -o json) and
`fmcp vm recommend [ID]` (the findings of vm.recommend as a table); `main` adds both to
`fmcp vm`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import click

from formation_mcp.cli.calling import call_tool
from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.models import Operation

BARS: Final = "▁▂▃▄▅▆▇█"
CHARTED: Final = ("cpu_percent", "memory_mb", "memory_percent", "disk_mb", "processes")
FINDING_COLUMNS: Final = ("name", "kind", "severity", "current", "recommended", "reason")


def sparkline(values: Sequence[float | None]) -> str:
    """One character per point, scaled from 0 to the series' maximum (a gap: a space)."""
    present = [v for v in values if v is not None]
    top = max(present, default=0.0)
    line = []
    for value in values:
        if value is None:
            line.append(" ")
        elif top <= 0:
            line.append(BARS[0])
        else:
            line.append(BARS[min(len(BARS) - 1, int(value / top * (len(BARS) - 1) + 0.5))])
    return "".join(line)


def chart(answer: dict[str, Any]) -> list[str]:
    """The text form of a vm.metrics answer."""
    limits = " ".join(f"{k}={v}" for k, v in sorted(answer["limits"].items()))
    lines = [
        f"{answer['name']} ({answer.get('state', '')}): {answer['samples']} samples over "
        f"{answer['window_seconds']:g}s, {answer['step_seconds']}s per point; limits {limits}"
    ]
    if answer.get("message"):
        lines.append(answer["message"])
    for name in CHARTED:
        values = answer["series"].get(name)
        summary = answer["summary"].get(name)
        if values is None or summary is None:
            continue
        numbers = "  ".join(f"{k} {summary[k]:g}" for k in ("avg", "p95", "max", "last"))
        lines.append(f"{name:<15}|{sparkline(values)}|  {numbers}")
    latest = answer.get("latest")
    if latest:
        ports = ", ".join(str(p) for p in latest["listening_ports"]) or "none"
        lines.append(
            f"ports {ports}; restarts {latest['restarts']}; failures {latest['failures']}; "
            f"last exit code {latest['exit_code'] if latest['exit_code'] is not None else '-'}"
        )
    return lines


@click.command("metrics")
@click.argument("instance")
@click.option("--window", default="15m", show_default=True, help="How far back (15m, 1h, 24h).")
@click.option("--step", help="One point per step (default: at most 60 points).")
@client_options
def vm_metrics(
    instance: str,
    window: str,
    step: str | None,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """CPU, memory, disk and processes of INSTANCE (id or name) over a window."""
    arguments: dict[str, Any] = {"id": instance, "window": window}
    if step:
        arguments["step"] = step

    async def action(client: Client) -> Operation:
        return await call_tool(client, "vm.metrics", arguments)

    answer = run_client(target, key_file, action).result or {}
    if output == "json":
        emit(answer, output)
        return
    for line in chart(answer):
        click.echo(line)


@click.command("recommend")
@click.argument("instance", required=False)
@click.option("--window", default="1h", show_default=True, help="How far back to judge.")
@client_options
def vm_recommend(
    instance: str | None, window: str, target: str | None, key_file: str | None, output: str
) -> None:
    """Resource findings for INSTANCE, or for all your live instances."""
    arguments: dict[str, Any] = {"window": window}
    if instance:
        arguments["id"] = instance

    async def action(client: Client) -> Operation:
        return await call_tool(client, "vm.recommend", arguments)

    answer = run_client(target, key_file, action).result or {}
    if output == "json":
        emit(answer, output)
        return
    findings = list(answer.get("findings", []))
    if not findings:
        click.echo(f"no findings for {answer.get('instances_checked', 0)} instance(s)")
        return
    emit_rows(findings, output, FINDING_COLUMNS)
    if answer.get("truncated"):
        click.echo("(more findings or instances than shown: ask about one instance)")
