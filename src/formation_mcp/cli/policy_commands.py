"""`fmcp policy get|set|effective`: the guardrails on tool calls (admins get and set an
account's or a role's policy; anyone sees what applies to them and their quota usage)."""

from __future__ import annotations

from typing import Any

import click

from formation_mcp.cli.common import client_options, run_client
from formation_mcp.cli.output import emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.policies import EffectivePolicy, Policy
from formation_mcp.policies.rules import QUOTAS

POLICY_COLUMNS = (
    "name",
    "allow_tools",
    "deny_tools",
    "read_only",
    *QUOTAS,
    "tool_calls_per_minute",
    "update_time",
    "update_account",
)
CLEARABLE = ("allow_tools", "deny_tools", "read_only", *QUOTAS, "tool_calls_per_minute")


@click.group()
def policy() -> None:
    """Policies: which tools an account may call, read-only, quotas and rate limits."""


@policy.command("get")
@click.argument("name")
@client_options
def get(name: str, target: str | None, key_file: str | None, output: str) -> None:
    """An account's (accounts/KID, or KID) or a role's (roles/ROLE) policy. Admins only."""

    async def read(client: Client) -> Policy:
        return await client.policies.get(name)

    emit(run_client(target, key_file, read).to_dict(), output, POLICY_COLUMNS)


@policy.command("set")
@click.argument("name")
@click.option("--allow", "allow", multiple=True, help="Allow only tools matching (repeat).")
@click.option("--deny", "deny", multiple=True, help="Deny tools matching, e.g. vm.* (repeat).")
@click.option("--read-only/--not-read-only", default=None, help="Only read-only tools.")
@click.option("--max-instances", type=int, help="Live instances at most.")
@click.option("--max-vcpus", type=int, help="vCPUs over the live instances at most.")
@click.option("--max-memory-mb", type=int, help="Memory (MiB) over the live instances at most.")
@click.option("--max-disk-gb", type=int, help="Disk (GB) over the live instances at most.")
@click.option("--max-builds-per-hour", type=int, help="Builds started in an hour at most.")
@click.option("--max-running-operations", type=int, help="Operations not done at once at most.")
@click.option("--rate", "rates", multiple=True, help="PATTERN=N calls per minute (repeat).")
@click.option(
    "--clear",
    "cleared",
    multiple=True,
    type=click.Choice(CLEARABLE),
    help="Remove this rule (repeat).",
)
@client_options
def set_policy(
    name: str,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    read_only: bool | None,
    rates: tuple[str, ...],
    cleared: tuple[str, ...],
    target: str | None,
    key_file: str | None,
    output: str,
    **quotas: int | None,
) -> None:
    """Change the rules given (others stay as they are); admins only. Example:
    fmcp policy set accounts/KID --deny vm.delete --max-instances 2 --rate 'pack.*=10'"""
    changes: dict[str, Any] = {field: None for field in cleared}
    if allow:
        changes["allow_tools"] = list(allow)
    if deny:
        changes["deny_tools"] = list(deny)
    if read_only is not None:
        changes["read_only"] = read_only
    changes.update({q: v for q, v in quotas.items() if v is not None})
    if rates:
        changes["tool_calls_per_minute"] = _rates(rates)
    if not changes:
        raise click.UsageError("nothing to change: give a rule (see --help) or --clear")

    async def update(client: Client) -> Policy:
        return await client.policies.update(name, **changes)

    emit(run_client(target, key_file, update).to_dict(), output, POLICY_COLUMNS)


@policy.command("effective")
@client_options
def effective(target: str | None, key_file: str | None, output: str) -> None:
    """What applies to you (your roles' defaults and your account's policy) and your usage of
    each quota."""

    async def read(client: Client) -> EffectivePolicy:
        return await client.policies.effective()

    found = run_client(target, key_file, read)
    if output == "json":
        emit(found.to_dict(), output)
        return
    emit(found.policy.to_dict(), output, POLICY_COLUMNS[:-2])
    click.echo(f"sources:      {', '.join(found.sources) or '(none: no rules)'}")
    if found.usage:
        click.echo("")
        emit_rows([u.to_dict() for u in found.usage], output, ("quota", "used", "limit"))


def _rates(given: tuple[str, ...]) -> dict[str, int]:
    rates: dict[str, int] = {}
    for item in given:
        pattern, _, calls = item.partition("=")
        if not pattern or not calls.isdigit():
            raise click.BadParameter(
                f"{item!r}: expected PATTERN=N, e.g. pack.*=10", param_hint="--rate"
            )
        rates[pattern] = int(calls)
    return rates
