"""Several processes of one command, supervised by their parent (`fmcp serve --processes N`,
`fmcp worker --processes N`): each child is `fmcp` again with its own environment; a child that
dies is started again (after a pause that grows while it keeps dying young); SIGTERM or SIGINT
to the parent is passed on, every child drains, and children still there after the grace
period are killed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FMCP = str(Path(sys.executable).parent / "fmcp")
FIRST_RESTART_DELAY = 0.5
LONGEST_RESTART_DELAY = 30.0
HEALTHY_AFTER_SECONDS = 60.0
"""A child that ran this long before it died is restarted at once (the pause starts over)."""
STOP_MARGIN_SECONDS = 5.0


@dataclass
class Child:
    """One supervised child: what it runs and, while it runs, its process."""

    label: str
    argv: Sequence[str]
    env: Mapping[str, str]
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    delay: float = FIRST_RESTART_DELAY
    started_at: float = field(default=0.0)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            FMCP, *self.argv, env=dict(self.env), stdin=asyncio.subprocess.DEVNULL
        )
        self.started_at = asyncio.get_running_loop().time()

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)


class ChildProcesses:
    def __init__(self, children: Sequence[Child], grace_seconds: float) -> None:
        self.children = list(children)
        self._grace = grace_seconds
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Drain every child (SIGTERM now, SIGKILL after the grace period)."""
        self._stopping.set()

    async def run(self, handle_signals: bool = True) -> None:
        """Start every child and keep them running until `stop()` (or SIGTERM/SIGINT to this
        process, when `handle_signals` and it runs in the main thread); returns once every
        child has ended."""
        loop = asyncio.get_running_loop()
        handled = []
        for signum in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signum, self._stopping.set)
                handled.append(signum)
        try:
            for child in self.children:
                await child.start()
            keepers = [asyncio.ensure_future(self._keep(child)) for child in self.children]
            await self._stopping.wait()
            for child in self.children:
                child.signal(signal.SIGTERM)
            _done, late = await asyncio.wait(keepers, timeout=self._grace + STOP_MARGIN_SECONDS)
            for child in self.children:
                child.signal(signal.SIGKILL)
            await asyncio.gather(*late, return_exceptions=True)
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)

    async def _keep(self, child: Child) -> None:
        """Wait for `child` to end; start it again unless we are stopping."""
        loop = asyncio.get_running_loop()
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            ran = loop.time() - child.started_at
            child.delay = FIRST_RESTART_DELAY if ran >= HEALTHY_AFTER_SECONDS else child.delay
            log.warning(
                "%s exited with %s after %.1fs; starting it again in %.1fs",
                child.label,
                code,
                ran,
                child.delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), child.delay)
            if self._stopping.is_set():
                return
            child.delay = min(child.delay * 2, LONGEST_RESTART_DELAY)
            child.restarts += 1
            await child.start()
