"""The command line in tests: `Fmcp` runs `fmcp` in-process (click's CliRunner, in a thread) as
one test's account."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from formation_mcp.cli.main import main
from formation_mcp.client import Client


@dataclass
class Fmcp:
    """`fmcp ARGS` against `cli_app` as this test's account."""

    target: str
    key_file: Path
    config_dir: Path
    runner: CliRunner = field(default_factory=CliRunner)

    @property
    def env(self) -> dict[str, str]:
        return {
            "FMCP_TARGET": self.target,
            "FMCP_KEY_FILE": str(self.key_file),
            "FMCP_CONFIG_DIR": str(self.config_dir),
        }

    async def __call__(self, *args: str, stdin: str | None = None) -> Result:
        return await asyncio.to_thread(
            self.runner.invoke, main, list(args), input=stdin, env=self.env
        )

    def client(self) -> Client:
        """An SDK client with the same key and session cache."""
        return Client(self.target, key_file=self.key_file, deadline=20)
