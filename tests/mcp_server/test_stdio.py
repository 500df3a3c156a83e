"""`fmcp mcp` over stdio, spawned as an MCP host would, with the SDK's own stdio client: it logs
in with the key file (like `fmcp login`) and calls the API as that key's account."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from mcp.client import Client
from mcp.client.extension import ClientExtension
from mcp.client.stdio import StdioServerParameters
from tests.support.mcp import LEGACY, MODERN, ProgressLog, operation_of
from tests.support.mcp_tasks import (
    TaskHandle,
    TaskParams,
    TaskResult,
    TasksClient,
    call_as_task,
    get_task,
    request,
)

from formation_mcp.app import Application
from formation_mcp.auth.keys import key_id, public_bytes, write_private_key
from formation_mcp.client.auth import bearer, login


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "key.pem"
    write_private_key(path, Ed25519PrivateKey.generate())
    return path


@asynccontextmanager
async def stdio_client(
    app: Application,
    key_file: Path,
    home: Path,
    mode: str = LEGACY,
    extensions: Sequence[ClientExtension] = (),
) -> AsyncIterator[Client]:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "formation_mcp.cli.main", "mcp"],
        env={
            "FMCP_TARGET": app.grpc.address,
            "FMCP_KEY_FILE": str(key_file),
            "FMCP_CONFIG_DIR": str(home),
        },
    )
    async with Client(parameters, mode=mode, extensions=list(extensions) or None) as client:
        yield client


async def test_stdio_lists_tools_and_calls_a_quick_one(
    app: Application, key_file: Path, tmp_path: Path
) -> None:
    async with stdio_client(app, key_file, tmp_path / "config") as client:
        assert client.protocol_version == "2025-11-25"
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("test.echo", {"text": "over stdio"})
    assert names == sorted(names) and "pack_build" in names
    assert result.is_error is False and result.structured_content == {"echo": "over stdio"}
    assert (tmp_path / "config" / "sessions.json").exists()  # the session is cached, as the CLI's


async def test_stdio_reports_progress_and_acts_as_the_key_files_account(
    app: Application, key_file: Path, tmp_path: Path
) -> None:
    from formation_mcp.auth.keys import load_private_key

    progress = ProgressLog()
    async with stdio_client(app, key_file, tmp_path / "config") as client:
        with anyio.fail_after(30):
            result = await client.call_tool(
                "test.sleep", {"steps": 4, "delay_ms": 10}, progress_callback=progress
            )
    assert result.is_error is False and result.structured_content == {"steps": 4}
    assert progress.steps == [
        (0.5, 100, "Running."),  # picked up by a worker: a new message at 0 %
        (25, 100, "sleeping: step 1 of 4"),
        (50, 100, "sleeping: step 2 of 4"),
        (75, 100, "sleeping: step 3 of 4"),
        (100, 100, "sleeping: step 4 of 4"),
    ]
    key = load_private_key(key_file)
    async with grpc.aio.insecure_channel(app.grpc.address) as channel:
        session = await login(channel, key)
        operation = await operations_pb2_grpc.OperationsServiceStub(channel).GetOperation(
            operations_pb2.GetOperationRequest(name=operation_of(result)),
            metadata=bearer(session.access_token),
        )
    assert operation.done
    assert session.account.name == f"accounts/{key_id(public_bytes(key))}"


async def test_stdio_without_a_key_says_so_on_stderr_and_exits(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "formation_mcp.cli.main",
        "mcp",
        env={**os.environ, "FMCP_KEY_FILE": str(tmp_path / "absent.pem")},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode == 1
    assert stdout == b""  # stdout is only ever MCP
    assert b"run `fmcp keygen`" in stderr


async def test_stdio_2025_11_25_runs_a_task_and_reads_resources_and_prompts(
    app: Application, key_file: Path, tmp_path: Path
) -> None:
    async with stdio_client(app, key_file, tmp_path / "config") as client:
        created = await call_as_task(client, "test.sleep", {"steps": 3, "delay_ms": 10})
        task_id = created["task"]["taskId"]
        with anyio.fail_after(30):
            result = await request(client, TaskResult(params=TaskParams(task_id=task_id)))
        read = await client.read_resource(f"formation://{task_id}")
        prompts = await client.list_prompts()
    assert result["structuredContent"] == {"steps": 3}
    assert read.contents[0].uri == f"formation://{task_id}"
    assert {prompt.name for prompt in prompts.prompts} == {"deploy-web-app", "diagnose-instance"}


async def test_stdio_2026_07_28_serves_tasks_without_a_handshake(
    app: Application, key_file: Path, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    async with stdio_client(
        app, key_file, config, mode=MODERN, extensions=[TasksClient()]
    ) as client:
        handle = await client.session.call_tool(
            "test.sleep", {"steps": 50, "delay_ms": 20}, allow_claimed=True
        )
        assert isinstance(handle, TaskHandle)
        task = await get_task(client, handle.task_id)
        with anyio.fail_after(30):
            final = await client.call_tool("test.sleep", {"steps": 2, "delay_ms": 10})
    assert task["taskId"] == handle.task_id and task["resultType"] == "complete"
    assert final.structured_content == {"steps": 2}
