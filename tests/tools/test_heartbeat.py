"""A long silent stretch of a tool still shows progress: the worker repeats the last progress
every FMCP_PROGRESS_HEARTBEAT with the time since and the latest output line, on every front
door (watchers here; MCP hosts as rising progress notifications)."""

from __future__ import annotations

import asyncio

import anyio
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc, tools_pb2, tools_pb2_grpc
from google.longrunning import operations_pb2 as lro_pb2
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.auth import Md
from tests.support.mcp import ProgressLog, http_client
from tests.support.operations import metadata_of, struct
from tests.support.servers import StartApp

from formation_mcp.app import Application
from formation_mcp.client.auth import bearer, login

HEARTBEAT = 0.2


@pytest.fixture
async def beating(start_app: StartApp) -> tuple[Application, str]:
    """A server whose worker repeats progress after 0.2 s of silence, and a caller's token."""
    application = await start_app(progress_heartbeat_seconds=HEARTBEAT)
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        session = await login(channel, Ed25519PrivateKey.generate())
    return application, session.access_token


async def watched(
    application: Application, token: str, tool: str, **arguments: object
) -> list[lro_pb2.Operation]:
    """Every message of the call's watch, to the end."""
    md: Md = bearer(token)
    async with grpc.aio.insecure_channel(application.grpc.address) as channel:
        operation = await tools_pb2_grpc.ToolsServiceStub(channel).CallTool(
            tools_pb2.CallToolRequest(name=f"tools/{tool}", arguments=struct(arguments)),
            metadata=md,
        )
        watch = operations_pb2_grpc.OperationsServiceStub(channel).WatchOperation(
            operations_pb2.WatchOperationRequest(name=operation.name), metadata=md
        )
        async with asyncio.timeout(60):
            return [message async for message in watch]


async def test_a_silent_tool_repeats_its_progress_while_it_runs(
    beating: tuple[Application, str],
) -> None:
    application, token = beating
    messages = await watched(application, token, "test.sleep", steps=1, delay_ms=1500)

    beats = [
        m
        for m in map(metadata_of, messages)
        if "so far" in m.status_message or (m.status_message.startswith("still working"))
    ]
    assert len(beats) >= 3
    assert all(beat.progress_percent == 0 for beat in beats)
    assert messages[-1].done and not messages[-1].HasField("error")


async def test_a_long_build_step_reports_its_time_and_latest_output(
    beating: tuple[Application, str],
) -> None:
    application, token = beating
    formfile = "NAME slow\nRUN echo compiling && sleep 1.5 && echo done\n"
    messages = await watched(
        application, token, "pack.build", formfile=formfile, context_files={"a": "b"}
    )

    statuses = [metadata_of(m).status_message for m in messages]
    beats = [status for status in statuses if "so far; latest output: compiling" in status]
    assert beats, statuses
    assert beats[0].startswith("step 1/1: RUN echo compiling")
    assert messages[-1].done and not messages[-1].HasField("error")


async def test_mcp_hosts_get_rising_progress_during_a_silent_step(
    beating: tuple[Application, str],
) -> None:
    application, api_token = beating
    progress = ProgressLog()
    url = f"http://{application.http.address}/mcp"
    async with http_client(url, mcp_token(application, api_token, url)) as client:
        with anyio.fail_after(60):
            result = await client.call_tool(
                "test_sleep", {"steps": 1, "delay_ms": 1500}, progress_callback=progress
            )

    assert result.is_error is False
    values = [value for value, _total, _message in progress.steps]
    assert len(values) >= 4  # heartbeats, then the end
    assert values == sorted(set(values))  # every notification rises
    assert values[-1] == 100 and all(0 < value < 1 for value in values[:-1])
