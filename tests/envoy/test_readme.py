"""The README's worked example, run for real.

Convention (stated in the README): a fenced block with info string `sh` right after a line
`<!-- tested -->` is run with `bash -euo pipefail` from the repository root, and a line
`#> text` in it shows text that the command above it prints (stdout and stderr). The block's
variables are the test servers': `GRPC` (the server's gRPC host:port), `ENVOY` (Envoy's
host:port), `TOKEN` (an access token of the test's account) and `OP` (a finished `test.sleep`
operation of that account). The CLI gets `FMCP_TARGET` = `GRPC` and a config dir of its own.
A `python` block is run the same way by the project's Python, with `FMCP_KEY_FILE` naming a
fresh key (a new account), as a reader's `fmcp keygen` would have made.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import auth_pb2
from tests.support.operations import Worker, new_operation
from tests.support.waiting import DEADLINE

from formation_mcp.app import Application
from formation_mcp.auth.keys import write_private_key

REPOSITORY = Path(__file__).resolve().parents[2]
README = REPOSITORY / "README.md"
TESTED_BLOCK = re.compile(r"^<!-- tested -->\n```(sh|python)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXPECTED_LINE = re.compile(r"^#> (.+)$", re.MULTILINE)
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
MIN_BLOCKS = 5


def readme_blocks() -> list[tuple[str, str]]:
    """(language, code) of every tested block."""
    return TESTED_BLOCK.findall(README.read_text())


def block_id(number: int, language: str, block: str) -> str:
    """`2-grpcurl`: the block's place in the README and its first command's program."""
    if language == "python":
        return f"{number}-python"
    commands = (line for line in block.splitlines() if line and not line.startswith("#"))
    program = next(line for line in commands if not ASSIGNMENT.match(line)).split()[0]
    return f"{number}-{program}"


BLOCKS = readme_blocks()


@pytest.fixture
async def finished_operation(app: Application, session: auth_pb2.Session) -> str:
    """`OP`: a `test.sleep` operation of the test's account that has run to the end."""
    name = await new_operation(app, session.account.name, tool="test.sleep")
    worker = Worker(app, name)
    await worker.start()
    await worker.progress(50, "sleeping", "step 1 of 2")
    await worker.log("step 1 of 2")
    await worker.succeed({"steps": 2})
    return name


async def run_block(language: str, block: str, env: dict[str, str]) -> tuple[int, str]:
    command = [sys.executable, "-c"] if language == "python" else ["bash", "-euo", "pipefail", "-c"]
    process = await asyncio.create_subprocess_exec(
        *command,
        block,
        cwd=REPOSITORY,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(3 * DEADLINE):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize(
    ("language", "block"),
    BLOCKS,
    ids=[block_id(n, language, block) for n, (language, block) in enumerate(BLOCKS, 1)],
)
async def test_readme_block_runs_and_prints_what_it_says(
    language: str,
    block: str,
    app: Application,
    envoy: str,
    session: auth_pb2.Session,
    finished_operation: str,
    tmp_path: Path,
) -> None:
    assert len(BLOCKS) >= MIN_BLOCKS, "the README lost tested blocks"
    expected = EXPECTED_LINE.findall(block)
    assert expected, "a tested block shows what it prints (`#> text` lines)"
    env = {key: value for key, value in os.environ.items() if not key.startswith("FMCP_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path),
        FMCP_CONFIG_DIR=str(tmp_path / "fmcp"),
        FMCP_TARGET=app.grpc.address,
        GRPC=app.grpc.address,
        ENVOY=envoy.removeprefix("http://"),
        TOKEN=session.access_token,
        OP=finished_operation,
    )
    if language == "python":
        env["FMCP_KEY_FILE"] = str(tmp_path / "key.pem")
        write_private_key(tmp_path / "key.pem", Ed25519PrivateKey.generate())
    code, output = await run_block(language, block, env)
    assert code == 0, output
    missing = [text for text in expected if text not in output]
    assert not missing, f"not printed: {missing}\n{output}"
