"""Server subprocesses: started pinned to a core, ready when their log says so, always stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

from bench.common import FMCP, ROOT, SERVER_CORE

FMCP_READY = re.compile(r"fmcp: gRPC on (\S+), HTTP on (\S+)")


def pinned(argv: Sequence[str], core: int | None) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if core is not None else list(argv)


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ServerProcess:
    """One server subprocess in its own session (so Ctrl-C reaches only us and we stop it)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready: re.Pattern[str],
        env: Mapping[str, str] | None = None,
        core: int | None = SERVER_CORE,
        ready_count: int = 1,
    ) -> None:
        self.argv = pinned(argv, core)
        self.ready_count = ready_count
        """How many `ready` lines to wait for (one per child of `--processes N`)."""
        self.log_path = log_path
        self.ready = ready
        self.env = dict(env) if env is not None else None
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> re.Match[str]:
        """Start it and wait for the `ready` line in its log; its match is returned."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matches = list(self.ready.finditer(self.log_path.read_text(errors="replace")))
            if len(matches) >= self.ready_count:
                return matches[0]
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await self.stop(timeout=0)
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(self.argv)} did not become ready:\n{tail}")

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        process = self.process
        if process is None:
            return
        if process.returncode is None:
            process.send_signal(signal.SIGTERM if timeout > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(process.wait(), timeout if timeout > 0 else None)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def running(server: ServerProcess) -> AsyncIterator[re.Match[str]]:
    """Start `server`, and stop it however the block ends (Ctrl-C and errors included)."""
    try:
        yield await server.start()
    finally:
        await server.stop()


def fmcp_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """Environment for `fmcp serve` on loopback, ports chosen by the OS, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env.update(
        FMCP_GRPC_LISTEN="127.0.0.1:0",
        FMCP_HTTP_LISTEN="127.0.0.1:0",
        FMCP_DATA_DIR=str(data_dir),
        FMCP_LOG_LEVEL="WARNING",
        FMCP_SHUTDOWN_GRACE="1s",
    )
    if database_url:
        env["FMCP_DATABASE_URL"] = database_url
    return env


def fmcp_server(
    data_dir: Path, database_url: str | None, core: int | None = SERVER_CORE
) -> ServerProcess:
    """`fmcp serve` (the console script), ready when it prints its addresses."""
    return ServerProcess(
        [FMCP, "serve"],
        log_path=data_dir / "fmcp.log",
        ready=FMCP_READY,
        env=fmcp_env(data_dir, database_url),
        core=core,
    )
