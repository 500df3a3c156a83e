"""A PostgreSQL cluster of a test's own, for tests that stop and start the database server.

The shared PostgreSQL (127.0.0.1:5432) serves every other test running at the same time, so a
test that shuts PostgreSQL down gets a private cluster: `initdb` in a temporary directory, one
port, 127.0.0.1 only, no Unix socket elsewhere than its own directory. `initdb` refuses to run
as root, so under root the cluster belongs to the `postgres` user.

Tests get one from the `private_postgres` fixture (tests/db/conftest.py); outside CI it skips
when no PostgreSQL binaries are installed, under CI=true it fails.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import asyncpg
from tests.support.servers import free_port

PG_BIN_DIRS = tuple(
    Path(path)
    for path in (
        os.environ.get("FMCP_TEST_PG_BIN", ""),
        "/usr/lib/postgresql/17/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/15/bin",
    )
    if path
)
CLUSTER_USER = "postgres"
"""Who owns the cluster when the tests run as root."""
COMMAND_TIMEOUT_SECONDS = 120.0
StopMode = Literal["smart", "fast", "immediate"]


def bin_dir() -> Path | None:
    """Where the PostgreSQL server binaries are (None: not installed)."""
    for directory in PG_BIN_DIRS:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


class PrivatePostgres:
    """One cluster: `init()` once, then `start()` / `stop(mode)` as often as a test needs."""

    def __init__(self, bin_dir: Path) -> None:
        self._bin = bin_dir
        self.port = free_port()
        owner = pwd.getpwnam(CLUSTER_USER) if os.geteuid() == 0 else None
        self._root = Path(tempfile.mkdtemp(prefix="fmcp-private-pg-"))
        self.data_dir = self._root / "data"
        self.log_file = self._root / "postgres.log"
        self._as_user: Sequence[str] = ()
        if owner is not None:
            os.chown(self._root, owner.pw_uid, owner.pw_gid)
            self._as_user = (
                "setpriv",
                f"--reuid={CLUSTER_USER}",
                f"--regid={CLUSTER_USER}",
                "--init-groups",
            )

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of one of this cluster's databases."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def init(self) -> None:
        await self._run(
            self._bin / "initdb",
            "--pgdata",
            str(self.data_dir),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-sync",
        )
        settings = (
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self._root}'",
            "fsync = off",
            "full_page_writes = off",
            "max_connections = 100",
        )
        config = self.data_dir / "postgresql.conf"
        with config.open("a") as file:  # the file belongs to the cluster's user; we may append
            file.write("\n" + "\n".join(settings) + "\n")

    async def start(self) -> None:
        await self._run(
            self._bin / "pg_ctl",
            "start",
            "--pgdata",
            str(self.data_dir),
            "--log",
            str(self.log_file),
            "--wait",
            "--timeout",
            "60",
        )

    async def stop(self, mode: StopMode = "fast") -> None:
        await self._run(
            self._bin / "pg_ctl",
            "stop",
            "--pgdata",
            str(self.data_dir),
            "--mode",
            mode,
            "--wait",
            "--timeout",
            "60",
        )

    async def create_database(self, name: str) -> None:
        admin = await asyncpg.connect(self.admin_dsn, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    async def destroy(self) -> None:
        """Stop the cluster if it runs (immediately: nothing in it is kept) and delete it."""
        if self.running():
            await self.stop("immediate")
        shutil.rmtree(self._root, ignore_errors=True)

    async def _run(self, *command: str | Path) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._as_user,
            *map(str, command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self._root,
        )
        async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
            output, _ = await process.communicate()
        if process.returncode != 0:
            log = (
                self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            )
            raise RuntimeError(
                f"{' '.join(map(str, command))} exited with {process.returncode}:\n"
                f"{output.decode(errors='replace')}\n{log}"
            )
