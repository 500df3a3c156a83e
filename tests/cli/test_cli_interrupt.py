"""Ctrl-C while `fmcp` waits for an operation, as a real process: without a terminal the
operation is cancelled and the command exits 12 (CANCELLED); on a terminal (a pty) it asks."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import sys
from pathlib import Path

from tests.cli.fmcp_runner import Fmcp

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


async def _read_until(master: int, marker: bytes, seen: bytearray) -> None:
    loop = asyncio.get_running_loop()
    while marker not in seen:
        chunk = await loop.run_in_executor(None, os.read, master, 4096)
        if not chunk:
            raise EOFError(bytes(seen).decode(errors="replace"))
        seen.extend(chunk)


async def test_on_a_terminal_ctrl_c_asks_and_no_leaves_the_operation_running(
    fmcp: Fmcp,
) -> None:
    master, slave = pty.openpty()
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "call",
        "test.sleep",
        "--arg",
        "steps=1000",
        "--arg",
        "delay_ms=50",
        env={**fmcp.env, "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    seen = bytearray()
    try:
        await asyncio.wait_for(_read_until(master, b"%", seen), 30)  # the progress bar
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(_read_until(master, b"[Y/n]", seen), 30)
        os.write(master, b"n\n")
        await asyncio.wait_for(_read_until(master, b"keeps running", seen), 30)
        assert await asyncio.wait_for(process.wait(), 30) == 130
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(master)
    async with fmcp.client() as client:
        [operation] = [op async for op in client.operations.list('tool = "test.sleep"')]
        assert not operation.done
        await client.operations.cancel(operation.name)
