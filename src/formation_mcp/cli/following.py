"""Following a long operation from the command line, and what Ctrl-C does meanwhile.

Ctrl-C (SIGINT) while waiting: on a terminal, the command asks whether to cancel the operation
(default yes), with the progress display paused; yes cancels it, waits for it to end and exits
12 (CANCELLED); no, or a second Ctrl-C, leaves it running, prints how to follow it and exits
130; an operation that ends while the question is open ends the question too (its result is
the command's). Without a terminal (scripts, CI) nobody can answer, so the operation is
cancelled: a script interrupted means the work is not wanted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

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
        client.follow(operation, on_progress=display.update, timeout=timeout, from_start=True)
    )
    waiting = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({watching, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if watching.done():
            display.finish()
            return watching.result()
        display.pause()
        interrupted.clear()
        if not await _should_cancel(operation.name, watching, interrupted):
            if watching.done():
                click.echo(f"{operation.name} ended meanwhile", err=True)
                return watching.result()
            watching.cancel()
            click.echo(
                f"{operation.name} keeps running; follow it with `fmcp ops watch {operation.name}`",
                err=True,
            )
            sys.exit(DETACHED_EXIT_CODE)
        click.echo(f"cancelling {operation.name}", err=True)
        display.resume()
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


async def _should_cancel(
    name: str, watching: asyncio.Future[Operation], interrupted: asyncio.Event
) -> bool:
    """Whether to cancel: yes without a terminal; on one, the answer to the question, unless a
    second Ctrl-C (no) or the operation's end (no: nothing left to cancel) comes first."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return True
    asking = asyncio.ensure_future(_confirm(f"cancel {name}?"))
    again = asyncio.ensure_future(interrupted.wait())
    try:
        racing: list[asyncio.Future[Any]] = [asking, again, watching]
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    finally:
        asking.cancel()
        again.cancel()
    if asking.done() and not asking.cancelled():
        return asking.result() and not watching.done()
    click.echo("", err=True)  # end the unanswered question's line
    return False


async def _confirm(question: str) -> bool:
    """Ask on the terminal, reading stdin without blocking the loop (so the question can be
    dropped): y/yes/Enter is yes, n/no is no, end of input is the default (yes)."""
    while True:
        click.echo(f"\n{question} [Y/n]: ", err=True, nl=False)
        line = await _read_line()
        answer = (line or "").strip().lower()
        if line is None or answer in ("", "y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        click.echo("please answer y or n", err=True, nl=False)


async def _read_line() -> str | None:
    """One line from stdin (a terminal in canonical mode gives a whole line per read); None at
    its end."""
    loop = asyncio.get_running_loop()
    descriptor = sys.stdin.fileno()
    arrived: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        if not arrived.done():
            arrived.set_result(os.read(descriptor, 4096))

    loop.add_reader(descriptor, readable)
    try:
        data = await arrived
    finally:
        loop.remove_reader(descriptor)
    return data.decode("utf-8", "replace") if data else None
