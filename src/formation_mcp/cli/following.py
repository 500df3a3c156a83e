"""Following a long operation from the command line, and what Ctrl-C does meanwhile.

Ctrl-C (SIGINT) while waiting: on a terminal, the command asks whether to cancel the operation
(default yes); yes cancels it, waits for it to end and exits 12 (CANCELLED); no leaves it
running, prints how to follow it and exits 130. Without a terminal (scripts, CI) nobody can
answer, so the operation is cancelled: a script interrupted means the work is not wanted.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from formation_mcp.cli.progress import ProgressDisplay
from formation_mcp.client.client import Client
from formation_mcp.client.models import Operation

CANCEL_GRACE_SECONDS = 60.0
"""How long to wait for a cancelled operation to end before giving up on it."""
DETACHED_EXIT_CODE = 130


async def follow_with_progress(
    client: Client, operation: Operation, *, timeout: float | None = None
) -> Operation:
    """Watch `operation` to its end with a progress display on stderr; handle Ctrl-C."""
    display = ProgressDisplay(sys.stderr, terminal=sys.stderr.isatty())
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    handling = _on_interrupt(loop, interrupted)
    watching = asyncio.ensure_future(
        client.follow(operation, on_progress=display.update, timeout=timeout)
    )
    waiting = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({watching, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            display.finish()
            return watching.result()
        display.finish()
        if not await _should_cancel(operation.name):
            watching.cancel()
            click.echo(
                f"{operation.name} keeps running; follow it with `fmcp ops watch {operation.name}`",
                err=True,
            )
            sys.exit(DETACHED_EXIT_CODE)
        click.echo(f"cancelling {operation.name}", err=True)
        await client.operations.cancel(operation.name)
        final = await asyncio.wait_for(watching, CANCEL_GRACE_SECONDS)
        display.finish()
        return final
    finally:
        waiting.cancel()
        if not watching.done():
            watching.cancel()
        if handling:
            loop.remove_signal_handler(signal.SIGINT)


def _on_interrupt(loop: asyncio.AbstractEventLoop, interrupted: asyncio.Event) -> bool:
    """SIGINT sets `interrupted`; False where signals cannot be handled (not the main thread,
    as when the CLI runs inside another program)."""
    try:
        loop.add_signal_handler(signal.SIGINT, interrupted.set)
    except (ValueError, RuntimeError, NotImplementedError):
        return False
    return True


async def _should_cancel(name: str) -> bool:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return True
    return await asyncio.to_thread(click.confirm, f"\ncancel {name}?", default=True, err=True)
