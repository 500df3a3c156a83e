"""Ctrl-C while `fmcp` waits for an operation, as a real process: without a terminal the
operation is cancelled and the command exits 12 (CANCELLED); on a terminal (a pty) it asks."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.cli import Fmcp
from tests.support.waiting import eventually

from formation_mcp.client.models import Operation

FMCP = str(Path(sys.executable).parent / "fmcp")


async def test_sigint_during_a_wait_cancels_the_operation_and_exits_12(fmcp: Fmcp) -> None:
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "call",
        "test.sleep",
        "--arg",
        "steps=1000",
        "--arg",
        "delay_ms=50",
        env={**fmcp.env, "PATH": "/usr/bin:/bin"},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    progress = await asyncio.wait_for(process.stderr.readline(), 30)  # the first snapshot
    assert progress.startswith(b"[")
    process.send_signal(signal.SIGINT)
    _, rest = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 12, rest.decode()
    assert b"cancelling operations/" in rest
    async with fmcp.client() as client:
        operations = [op async for op in client.operations.list('tool = "test.sleep"')]
    assert [op.state for op in operations] == ["CANCELLED"]


class Terminal:
    """`fmcp ARGS` on a pseudo-terminal (stdin, stdout and stderr), as a person runs it."""

    def __init__(self, fmcp: Fmcp) -> None:
        self.fmcp = fmcp
        self.seen = bytearray()
        self.master = -1
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *args: str) -> None:
        self.master, slave = pty.openpty()
        self.process = await asyncio.create_subprocess_exec(
            FMCP,
            *args,
            env={**self.fmcp.env, "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
            stdin=slave,
            stdout=slave,
            stderr=slave,
        )
        os.close(slave)

    async def read_until(self, marker: bytes) -> bytes:
        """Everything shown up to `marker` (inclusive), waiting for it with a deadline."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            while marker not in self.seen:
                chunk = await loop.run_in_executor(None, os.read, self.master, 4096)
                if not chunk:
                    raise EOFError(bytes(self.seen).decode(errors="replace"))
                self.seen.extend(chunk)
        return bytes(self.seen)

    def interrupt(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    async def exit_code(self) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), 30)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self.master >= 0:
            os.close(self.master)


@pytest.fixture
async def terminal(fmcp: Fmcp) -> AsyncIterator[Terminal]:
    shown = Terminal(fmcp)
    try:
        yield shown
    finally:
        await shown.close()


async def the_sleep(fmcp: Fmcp) -> Operation:
    async with fmcp.client() as client:
        [operation] = [op async for op in client.operations.list('tool = "test.sleep"')]
        return operation


async def cancel_the_sleep(fmcp: Fmcp) -> None:
    async with fmcp.client() as client:
        await client.operations.cancel((await the_sleep(fmcp)).name)


SLOW = ("call", "test.sleep", "--arg", "steps=1000", "--arg", "delay_ms=50")


async def test_on_a_terminal_ctrl_c_asks_and_no_leaves_the_operation_running(
    fmcp: Fmcp, terminal: Terminal
) -> None:
    await terminal.start(*SLOW)
    await terminal.read_until(b"%")  # the progress bar
    terminal.interrupt()
    await terminal.read_until(b"[Y/n]")
    terminal.type("n\n")
    await terminal.read_until(b"keeps running")
    assert await terminal.exit_code() == 130
    assert not (await the_sleep(fmcp)).done
    await cancel_the_sleep(fmcp)


async def test_the_question_is_not_drawn_over_by_the_progress_bar(
    fmcp: Fmcp, terminal: Terminal
) -> None:
    await terminal.start(*SLOW)
    await terminal.read_until(b"%")
    terminal.interrupt()
    asked = len(await terminal.read_until(b"[Y/n]"))
    async with fmcp.client() as client:
        sleep = await the_sleep(fmcp)

        async def advanced() -> bool:  # the bar would have been redrawn by now
            now = await client.operations.get(sleep.name)
            return now.metadata.progress_percent >= sleep.metadata.progress_percent + 2

        await eventually(advanced, deadline=30)
    terminal.type("n\n")
    shown = await terminal.read_until(b"keeps running")
    assert b"\x1b[K" not in shown[asked:]
    await cancel_the_sleep(fmcp)


async def test_a_second_ctrl_c_leaves_the_operation_running(fmcp: Fmcp, terminal: Terminal) -> None:
    await terminal.start(*SLOW)
    await terminal.read_until(b"%")
    terminal.interrupt()
    await terminal.read_until(b"[Y/n]")
    terminal.interrupt()
    await terminal.read_until(b"keeps running")
    assert await terminal.exit_code() == 130
    assert not (await the_sleep(fmcp)).done
    await cancel_the_sleep(fmcp)


async def test_an_operation_that_ends_while_asking_ends_the_question(
    fmcp: Fmcp, terminal: Terminal
) -> None:
    await terminal.start("call", "test.sleep", "--arg", "steps=20", "--arg", "delay_ms=100")
    await terminal.read_until(b"%")
    terminal.interrupt()
    await terminal.read_until(b"[Y/n]")
    shown = await terminal.read_until(b"ended meanwhile")
    assert await terminal.exit_code() == 0, shown.decode(errors="replace")
    assert (await the_sleep(fmcp)).state == "SUCCEEDED"
