"""`fmcp console`: a one-time sign-in link for the web console."""

from __future__ import annotations

import webbrowser

import click

from formation_mcp.cli.common import key_option, run_client, target_option
from formation_mcp.client.client import Client
from formation_mcp.client.grants import ConsoleLink
from formation_mcp.settings import Settings, SettingsError


def _front_door() -> str:
    try:
        return Settings.from_env().effective_public_url
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


@click.command("console")
@target_option
@key_option
@click.option(
    "--url",
    "base",
    metavar="BASE",
    help="The front door the browser reaches (default: FMCP_PUBLIC_URL, else "
    "http:// and FMCP_ENVOY_LISTEN).",
)
@click.option("--open", "open_browser", is_flag=True, help="Also open the link in a browser.")
def console(target: str | None, key_file: str | None, base: str | None, open_browser: bool) -> None:
    """Print a one-time sign-in link for the web console at BASE/console/.

    Open it within a minute: it signs the browser in as your account (with your current
    roles) once; a second use is refused. "Sign out" in the console ends the session."""

    async def call(client: Client) -> ConsoleLink:
        return await client.grants.console_link()

    link = run_client(target, key_file, call)
    url = link.url(base or _front_door())
    click.echo(url)
    click.echo(f"(one use, until {link.expire_time:%H:%M:%S} UTC)", err=True)
    if open_browser:
        webbrowser.open(url)
