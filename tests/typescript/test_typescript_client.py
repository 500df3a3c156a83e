"""The TypeScript client (clients/typescript) against the real servers: this harness starts
`fmcp serve --envoy --no-worker` on PostgreSQL and RabbitMQ with a separate `fmcp worker`, a
second server whose access tokens live 1 s (for the expiry test), and writes a key with
`fmcp keygen`; then `npm test` (tsc in strict mode, then `node --test`) runs the client's own
tests with their addresses in the environment: login, tools, quick and long calls, every
progress event, cancel, a dropped watch resumed, typed errors, token renewal, over gRPC and
through Envoy's REST, and the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.servers import TEST_TOOL_MODULES, free_port
from tests.typescript.processes import FMCP, REPO, FmcpProcess, fmcp_env

from formation_mcp.broker.rabbitmq import RabbitBroker
from formation_mcp.errors import ERROR_CLASSES
from formation_mcp.settings import Settings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
PACKAGE = REPO / "clients" / "typescript"
SERVING = (  # what `fmcp serve --envoy` says once both listen
    r"gRPC on (?P<grpc>\S+), HTTP on .*\n(?:.*\n)*?fmcp: Envoy \(REST and gRPC\) on (?P<envoy>\S+)"
)
NODE_SECONDS = 240


def python_errors() -> str:
    """formation_mcp.errors' classes, for the client's parity test."""
    return json.dumps(
        [
            {"name": cls.__name__, "code": cls.code.value[0], "http_status": cls.http_status}
            for cls in ERROR_CLASSES.values()
        ]
    )


@contextlib.asynccontextmanager
async def running(process: FmcpProcess, ready: str) -> AsyncIterator[re.Match[str]]:
    try:
        yield await process.start(ready)
    finally:
        await process.stop()


async def keygen(key_file: Path) -> str:
    """`fmcp keygen` into `key_file`; the key id it printed."""
    process = await asyncio.create_subprocess_exec(
        FMCP,
        "keygen",
        env=fmcp_env(FMCP_KEY_FILE=str(key_file)),
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    match = re.search(r"key id:\s+(\S+)", stdout.decode())
    assert match is not None, stdout
    return match.group(1)


@pytest.mark.timeout(NODE_SECONDS + 120)
async def test_the_typescript_client_against_the_real_servers(
    postgres_url: str, rabbitmq_url: str, tmp_path: Path
) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is not installed"
    assert (PACKAGE / "node_modules").is_dir(), "clients/typescript has no node_modules: make setup"
    prefix = f"fmcp-test-{uuid.uuid4().hex[:8]}"
    cluster = {
        "FMCP_DATABASE_URL": postgres_url,
        "FMCP_BROKER_URL": rabbitmq_url,
        "FMCP_BROKER_PREFIX": prefix,
        "FMCP_TOOL_MODULES": ",".join(TEST_TOOL_MODULES),
        "FMCP_LOGIN_RATE": "100000",  # every test logs in from 127.0.0.1
    }
    server = FmcpProcess(
        ["serve", "--envoy", "--no-worker"],
        fmcp_env(
            **cluster,
            FMCP_DATA_DIR=str(tmp_path / "server"),
            FMCP_GRPC_LISTEN="127.0.0.1:0",
            FMCP_HTTP_LISTEN="127.0.0.1:0",
            FMCP_ENVOY_LISTEN=f"127.0.0.1:{free_port()}",
        ),
        tmp_path / "server.log",
    )
    worker_dir = tmp_path / "worker"
    worker = FmcpProcess(
        ["worker"],
        fmcp_env(**cluster, FMCP_DATA_DIR=str(worker_dir), FMCP_WORKER_HTTP_LISTEN="127.0.0.1:0"),
        tmp_path / "worker.log",
    )
    short_lived = FmcpProcess(  # embedded: SQLite, in-memory broker, its own worker
        ["serve", "--envoy"],
        fmcp_env(
            FMCP_DATA_DIR=str(tmp_path / "short"),
            FMCP_GRPC_LISTEN="127.0.0.1:0",
            FMCP_HTTP_LISTEN="127.0.0.1:0",
            FMCP_ENVOY_LISTEN=f"127.0.0.1:{free_port()}",
            FMCP_ACCESS_TOKEN_TTL="1s",
            FMCP_LOGIN_RATE="100000",
        ),
        tmp_path / "short.log",
    )
    key_file = tmp_path / "key.pem"
    try:
        async with contextlib.AsyncExitStack() as stack:
            serving, short, _ready, key_id = await asyncio.gather(
                stack.enter_async_context(running(server, SERVING)),
                stack.enter_async_context(running(short_lived, SERVING)),
                stack.enter_async_context(running(worker, r"ready")),
                keygen(key_file),
            )
            env = {
                **fmcp_env(),
                "FMCP_TS_GRPC": serving["grpc"],
                "FMCP_TS_ENVOY": f"http://{serving['envoy']}",
                "FMCP_TS_KEY_FILE": str(key_file),
                "FMCP_TS_KEY_ID": key_id,
                "FMCP_TS_SHORT_TTL_GRPC": short["grpc"],
                "FMCP_TS_SHORT_TTL_ENVOY": f"http://{short['envoy']}",
                "FMCP_TS_PYTHON_ERRORS": python_errors(),
            }
            node = await asyncio.create_subprocess_exec(
                npm,
                "--prefix",
                str(PACKAGE),
                "test",
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(node.communicate(), NODE_SECONDS)
    finally:
        await _delete_queues(rabbitmq_url, prefix, worker_dir)
    report = output.decode(errors="replace")
    print(report)  # shown with -s, or on failure
    assert node.returncode == 0, report
    counts = dict(re.findall(r"^# (tests|pass|fail) (\d+)$", report, re.MULTILINE))
    assert int(counts["tests"]) > 0 and counts["fail"] == "0", report


async def _delete_queues(rabbitmq_url: str, prefix: str, worker_dir: Path) -> None:
    """The queues and exchanges of this run (the worker declared a queue for its node)."""
    broker = RabbitBroker(rabbitmq_url, 3, prefix)
    await broker.delete_node_queues([Settings(data_dir=worker_dir).effective_node_id])
    await broker.delete_topology()
