"""`fmcp authorize CODE` (approve or deny an MCP host's sign-in with your key) and
`fmcp account sessions` (your login sessions and MCP hosts: list, revoke)."""

from __future__ import annotations

import sys
from typing import Any

import click
import grpc
import jwt

from formation_mcp.auth.keys import account_name, key_id, public_bytes
from formation_mcp.cli.common import key_option, output_option, run_client, target_option
from formation_mcp.cli.output import EXIT_CODES, emit, emit_rows
from formation_mcp.client.client import Client
from formation_mcp.client.models import AuthorizationRequest, Grant
from formation_mcp.permissions import READ_ONLY_SCOPE

REQUEST_COLUMNS = (
    "user_code",
    "state",
    "client_name",
    "client_id",
    "redirect_uri",
    "resource",
    "scope",
    "account",
    "granted_scope",
    "expire_time",
)
SESSION_COLUMNS = ("id", "current", "kind", "client", "scope", "state", "created", "last_used")


def _describe(request: AuthorizationRequest, account: str) -> None:
    """The request as the user must judge it, on stderr (stdout stays the result)."""
    lines = [
        f"Sign-in request {request.user_code}",
        f"  client:        {request.client_name} ({request.client_id})",
        f"  sends you to:  {request.redirect_uri}",
        f"  for:           {request.resource}",
        f"  access:        {request.scope}",
        f"  account:       {account} (this key)",
        f"  expires:       {request.expire_time:%Y-%m-%d %H:%M:%S} UTC"
        if request.expire_time
        else "",
    ]
    if request.requested_account and request.requested_account != account:
        lines.append(f"  note: the client asked for {request.requested_account}")
    click.echo("\n".join(line for line in lines if line), err=True)


@click.command("authorize")
@click.argument("code")
@click.option("--read-only", is_flag=True, help="Grant read-only access, whatever was asked.")
@click.option("--deny", "deny_it", is_flag=True, help="Deny the request without asking.")
@click.option("--yes", "-y", is_flag=True, help="Approve without asking (for scripts).")
@target_option
@key_option
@output_option
def authorize(
    code: str,
    read_only: bool,
    deny_it: bool,
    yes: bool,
    target: str | None,
    key_file: str | None,
    output: str,
) -> None:
    """Approve an MCP host's sign-in with your key. CODE is the one its sign-in page shows
    (BCDF-GHJK): the command shows which client asks, where it sends you back, for which
    resource and scope, and asks; answering no denies the request."""
    if deny_it and (yes or read_only):
        raise click.UsageError("--deny cannot be combined with --yes or --read-only")

    async def decide(client: Client) -> AuthorizationRequest | None:
        request = await client.authorizations.get(code)
        key = client.token_source.key
        if key is None:  # pragma: no cover - the CLI always has a key file
            raise click.ClickException("approving needs your key file")
        account = account_name(key_id(public_bytes(key)))
        _describe(request, account)
        if request.state != "PENDING":
            click.echo(f"This request is {request.state.lower()}: nothing to decide.", err=True)
            return None
        scope = READ_ONLY_SCOPE if read_only else request.scope
        if deny_it:
            return await client.authorizations.deny(code, shown=request)
        if not yes and not click.confirm(
            f"Give {request.client_name} {scope} access as {account}?", default=False, err=True
        ):
            return await client.authorizations.deny(code, shown=request)
        return await client.authorizations.approve(code, scope=scope, shown=request)

    decided = run_client(target, key_file, decide)
    if decided is None:
        sys.exit(EXIT_CODES[grpc.StatusCode.FAILED_PRECONDITION])
    if output == "json":
        emit(decided.to_dict(), output)
    elif decided.state == "DENIED":
        click.echo(f"denied: {decided.client_name} gets no access")
    else:
        click.echo(
            f"approved: {decided.client_name} has {decided.granted_scope} access as "
            f"{decided.account}; return to your browser"
        )


def _current_grant(client: Client) -> str:
    """The grant of the CLI's own session (its access token's `sid`), to mark it."""
    session = client.token_source.session
    if session is None:
        return ""
    try:
        claims = jwt.decode(session.access_token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return ""
    return str(claims.get("sid", ""))


def _row(grant: Grant, current: str) -> dict[str, Any]:
    grant_id = grant.name.removeprefix("grants/")
    return {
        "id": grant_id,
        "current": "*" if grant_id == current else "",
        "kind": grant.kind.lower(),
        "client": grant.client_name + (f" ({grant.client_id})" if grant.client_id else ""),
        "scope": grant.scope,
        "state": grant.state.lower(),
        "created": f"{grant.create_time:%Y-%m-%d %H:%M}" if grant.create_time else "",
        "last_used": f"{grant.last_use_time:%Y-%m-%d %H:%M}" if grant.last_use_time else "",
    }


@click.group("sessions", invoke_without_command=True)
@click.option("--all", "show_all", is_flag=True, help="Also revoked and expired ones.")
@target_option
@key_option
@output_option
@click.pass_context
def sessions(
    ctx: click.Context, show_all: bool, target: str | None, key_file: str | None, output: str
) -> None:
    """Your login sessions and the MCP hosts you approved (active ones; --all for every one).
    `fmcp account sessions revoke ID` ends one."""
    if ctx.invoked_subcommand is not None:
        return

    async def listing(client: Client) -> tuple[list[Grant], str]:
        await client.access_token()  # the session first, so it is listed and marked
        found = [g async for g in client.grants.list("" if show_all else "state = ACTIVE")]
        return found, _current_grant(client)

    found, current = run_client(target, key_file, listing)
    if output == "json":
        emit_rows([grant.to_dict() for grant in found], output, ())
        return
    emit_rows([_row(grant, current) for grant in found], output, SESSION_COLUMNS)


@sessions.command("revoke")
@click.argument("grant")
@target_option
@key_option
@output_option
def sessions_revoke(grant: str, target: str | None, key_file: str | None, output: str) -> None:
    """End GRANT (an ID from the list, or grants/ID): its tokens stop working at once."""

    async def revoke(client: Client) -> Grant:
        return await client.grants.revoke(grant)

    revoked = run_client(target, key_file, revoke)
    if output == "json":
        emit(revoked.to_dict(), output)
    else:
        click.echo(f"revoked: {revoked.name} ({revoked.client_name})")
