"""`fmcp` commands as subprocesses for the TypeScript client's harness: `fmcp serve --envoy`
and `fmcp worker`, each ready once it says so on stderr (written to a file, so a chatty
process never blocks on a full pipe), stopped with SIGTERM (SIGKILL past a deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

FMCP = str(Path(sys.executable).parent / "fmcp")
REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 90.0


def fmcp_env(**settings: str) -> dict[str, str]:
    """This process's environment without its FMCP_* variables, plus `settings`, with the
    repository on PYTHONPATH (the test tools: `examples.demo_tools`, `tests.support.tools`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env.update(PYTHONPATH=str(REPO), FMCP_LOG_FORMAT="text", FMCP_LOG_LEVEL="WARNING")
    env.update(settings)
    return env


class FmcpProcess:
    """One `fmcp` subprocess; `start` returns the first match of `ready` in its stderr."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path) -> None:
        self.args = args
        self.env = dict(env)
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, ready: str) -> re.Match[str]:
        with self.log.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                FMCP,
                *self.args,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
            )
        pattern = re.compile(ready)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while True:
            text = self.log.read_text(errors="replace")
            if match := pattern.search(text):
                return match
            if self.process.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"fmcp {' '.join(self.args)} did not get ready:\n{text}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 0.1)  # a poll with a deadline

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.terminate()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
