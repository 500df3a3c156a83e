"""`fmcp serve --processes N` and `fmcp worker --processes N`, as real processes: the children
share the ports, a killed child is started again, SIGTERM drains them all; several processes
need PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.auth import AUDIENCE, ISSUER, token_claims
from tests.support.mcp import LEGACY, MODERN, http_client
from tests.support.servers import free_port
from tests.support.waiting import eventually

from formation_mcp.auth.keys import load_or_create_signing_key
from formation_mcp.auth.tokens import TokenIssuer
from formation_mcp.client.auth import login
from formation_mcp.permissions import FULL_SCOPE

FMCP = str(Path(sys.executable).parent / "fmcp")

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]


def children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


LOOPBACK = {"tcp": "0100007F", "tcp6": "0000000000000000FFFF00000100007F"}
"""127.0.0.1 as /proc/net/tcp writes it, and as an IPv4-mapped IPv6 address (gRPC's way)."""


def listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:`port` (state 0A in /proc/net/tcp*)."""
    inodes = set()
    for table, address in LOOPBACK.items():
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if local == f"{address}:{port:04X}" and state == "0A":
                inodes.add(inode)
    return inodes


def listens_on(pid: int, port: int) -> bool:
    wanted = {f"socket:[{inode}]" for inode in listening_inodes(port)}
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(descriptor) in wanted:
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def shared_env(tmp_path: Path, database_url: str, rabbitmq_url: str) -> dict[str, str]:
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share PostgreSQL")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env.update(
        FMCP_DATA_DIR=str(tmp_path / "data"),
        FMCP_DATABASE_URL=database_url,
        FMCP_BROKER_URL=rabbitmq_url,
        FMCP_BROKER_PREFIX=f"fmcp-test-{uuid.uuid4().hex[:8]}",
        FMCP_LOG_FORMAT="text",
        FMCP_LOG_LEVEL="WARNING",
        FMCP_SHUTDOWN_GRACE="1s",
        FMCP_GRPC_LISTEN=f"127.0.0.1:{free_port()}",
        FMCP_HTTP_LISTEN=f"127.0.0.1:{free_port()}",
        FMCP_WORKER_HTTP_LISTEN="127.0.0.1:0",
    )
    return env


@pytest.fixture
async def started() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Each parent runs in a session of its own: whatever is left of it and its children is
    killed at the end (a child would otherwise hold the pipes and outlive the test)."""
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def start(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        FMCP,
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )


async def healthy(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.TransportError:
        return False
    return response.status_code == 200


async def test_serve_runs_its_processes_on_one_pair_of_ports(
    shared_env: dict[str, str], started: list[asyncio.subprocess.Process]
) -> None:
    parent = await start(shared_env, "serve", "--processes", "2", "--no-worker")
    started.append(parent)
    grpc_port = int(shared_env["FMCP_GRPC_LISTEN"].rsplit(":", 1)[1])
    http_port = int(shared_env["FMCP_HTTP_LISTEN"].rsplit(":", 1)[1])

    async def both_listen() -> bool:
        children = children_of(parent.pid)
        return len(children) == 2 and all(
            listens_on(child, grpc_port) and listens_on(child, http_port) for child in children
        )

    await eventually(both_listen, deadline=60)
    assert await healthy(http_port)


async def test_a_killed_child_is_started_again(
    shared_env: dict[str, str], started: list[asyncio.subprocess.Process]
) -> None:
    parent = await start(shared_env, "serve", "--processes", "2", "--no-worker")
    started.append(parent)
    http_port = int(shared_env["FMCP_HTTP_LISTEN"].rsplit(":", 1)[1])

    async def two_children_listening() -> bool:
        children = children_of(parent.pid)
        return len(children) == 2 and all(listens_on(c, http_port) for c in children)

    await eventually(two_children_listening, deadline=60)
    victim = min(children_of(parent.pid))
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        children = children_of(parent.pid)
        return victim not in children and await two_children_listening()

    await eventually(replaced, deadline=60)
    assert await healthy(http_port)


async def test_sigterm_drains_every_child_and_the_parent_exits_0(
    shared_env: dict[str, str], started: list[asyncio.subprocess.Process]
) -> None:
    parent = await start(shared_env, "serve", "--processes", "2", "--no-worker")
    started.append(parent)
    http_port = int(shared_env["FMCP_HTTP_LISTEN"].rsplit(":", 1)[1])

    async def two_children() -> bool:
        return len(children_of(parent.pid)) == 2 and await healthy(http_port)

    await eventually(two_children, deadline=60)
    children = children_of(parent.pid)
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(parent.wait(), 60) == 0
    assert not any(os.path.exists(f"/proc/{child}") for child in children)  # noqa: ASYNC240


async def test_worker_processes_are_nodes_of_their_own(
    shared_env: dict[str, str], started: list[asyncio.subprocess.Process]
) -> None:
    node = f"n{uuid.uuid4().hex[:8]}"
    parent = await start({**shared_env, "FMCP_NODE_ID": node}, "worker", "--processes", "2")
    started.append(parent)
    assert parent.stderr is not None
    said: list[bytes] = []

    async def both_ready() -> bool:
        line = await parent.stderr.readline()  # type: ignore[union-attr]
        said.append(line)
        text = b"".join(said)
        return f"fmcp worker {node}-1: ready".encode() in text and (
            f"fmcp worker {node}-2: ready".encode() in text
        )

    await eventually(both_ready, deadline=60)
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(parent.wait(), 60) == 0


async def test_several_processes_on_sqlite_are_refused_naming_the_setting(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FMCP_")}
    env["FMCP_DATA_DIR"] = str(tmp_path / "data")
    process = await asyncio.create_subprocess_exec(
        FMCP, "serve", "--processes", "2", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "FMCP_DATABASE_URL=postgresql" in stderr.decode()


async def test_every_process_serves_mcp_whichever_process_its_api_calls_reach(
    shared_env: dict[str, str], started: list[asyncio.subprocess.Process]
) -> None:
    """The MCP endpoint of each child calls the gRPC API on the shared port, where the kernel
    may hand the connection to another child: they all trust the same bridge."""
    parent = await start(shared_env, "serve", "--processes", "2", "--no-worker")
    started.append(parent)
    http_port = int(shared_env["FMCP_HTTP_LISTEN"].rsplit(":", 1)[1])

    async def two_children_listening() -> bool:
        children = children_of(parent.pid)
        return len(children) == 2 and all(listens_on(c, http_port) for c in children)

    await eventually(two_children_listening, deadline=60)
    async with grpc.aio.insecure_channel(shared_env["FMCP_GRPC_LISTEN"]) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
    url = f"http://127.0.0.1:{http_port}/mcp"
    signing_key = load_or_create_signing_key(Path(shared_env["FMCP_DATA_DIR"]) / "signing-key.pem")
    subject = token_claims(session.access_token)["sub"]
    token = TokenIssuer(signing_key, ISSUER, AUDIENCE, 300).issue(
        subject, ("user",), audience=url, scope=FULL_SCOPE
    )
    # 2026-07-28 is stateless; 2025-11-25 is served without sessions when processes share a
    # port (a session in one child's memory would be missing in the next).
    for attempt in range(8):  # new connections: both children answer, each over either API
        async with http_client(url, token.token, (LEGACY, MODERN)[attempt % 2]) as client:
            listed = await client.list_tools()
        assert any(tool.name == "pack_build" for tool in listed.tools)
