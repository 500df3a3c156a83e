"""Tasks over operations, through Envoy, with the SDK's client: 2025-11-25's task-augmented
`tools/call` and `tasks/*`, and 2026-07-28's `io.modelcontextprotocol/tasks` extension."""

from __future__ import annotations

import anyio
import grpc
import mcp_types as types
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from formation.mcp.v1 import operations_pb2, operations_pb2_grpc
from google.rpc import code_pb2
from mcp.shared.exceptions import MCPError
from tests.mcp_server.mcp_tokens import mcp_token
from tests.support.auth import Md
from tests.support.mcp import MODERN, http_client
from tests.support.mcp_tasks import (
    TASKS_EXTENSION,
    ListTasks,
    TaskHandle,
    TaskParams,
    TaskResult,
    TasksClient,
    UpdateTask,
    call_as_task,
    cancel_task,
    get_task,
    request,
)
from tests.support.waiting import DEADLINE, eventually

from formation_mcp.app import Application
from formation_mcp.client.auth import login

FORMFILE = "NAME task-hello\nRUN echo one\nRUN echo two\n"
SLOW = {"steps": 1000, "delay_ms": 20}


async def test_2025_11_25_advertises_tasks_for_tool_calls(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        tasks = client.server_capabilities.tasks
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tasks is not None and tasks.list is not None and tasks.cancel is not None
    assert tasks.requests is not None and tasks.requests.tools is not None
    build = tools["pack_build"].execution
    assert build is not None and build.task_support == "optional"
    assert tools["test_echo"].execution is None


async def test_2026_07_28_advertises_the_tasks_extension(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN) as client:
        discovered = await client.session.send_discover(MODERN)
    assert TASKS_EXTENSION in discovered["capabilities"]["extensions"]


async def test_a_task_augmented_build_returns_the_task_at_once_then_the_pack(
    mcp_url: str, token: str
) -> None:
    arguments = {"formfile": FORMFILE, "context_files": {"app.py": "print('hi')\n"}}
    async with http_client(mcp_url, token) as client:
        created = await call_as_task(client, "pack_build", arguments)
        task = created["task"]
        assert task["taskId"].startswith("operations/")
        assert task["status"] in ("working", "completed")
        assert task["ttl"] > 0 and task["pollInterval"] > 0
        seen = await get_task(client, task["taskId"])
        assert seen["taskId"] == task["taskId"] and seen["createdAt"] == task["createdAt"]
        with anyio.fail_after(60):
            result = await request(client, TaskResult(params=TaskParams(task_id=task["taskId"])))
        final = await get_task(client, task["taskId"])
    assert result["isError"] is False
    assert result["structuredContent"]["name"] == "task-hello"
    assert result["structuredContent"]["build_id"]
    assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
    assert final["status"] == "completed"


async def test_tasks_get_shows_the_operations_progress(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        task_id = (await call_as_task(client, "test.sleep", SLOW))["task"]["taskId"]

        async def progressed() -> bool:
            task = await get_task(client, task_id)
            return task["status"] == "working" and "step" in task.get("statusMessage", "")

        await eventually(progressed)
        await cancel_task(client, task_id)


async def test_tasks_cancel_cancels_the_operation(
    mcp_url: str,
    token: str,
    operations_stub: operations_pb2_grpc.OperationsServiceAsyncStub,
    as_account: Md,
) -> None:
    async with http_client(mcp_url, token) as client:
        task_id = (await call_as_task(client, "test.sleep", SLOW))["task"]["taskId"]
        await cancel_task(client, task_id)

        async def cancelled() -> bool:
            return str((await get_task(client, task_id))["status"]) == "cancelled"

        await eventually(cancelled)
        with pytest.raises(MCPError) as refused:
            await cancel_task(client, task_id)
    operation = await operations_stub.GetOperation(
        operations_pb2.GetOperationRequest(name=task_id), metadata=as_account
    )
    assert operation.error.code == code_pb2.CANCELLED
    assert refused.value.error.code == -32602 and "already cancelled" in refused.value.error.message


async def test_tasks_list_pages_the_callers_tasks_newest_first(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        first = (await call_as_task(client, "test.echo", {"text": "a"}))["task"]["taskId"]
        second = (await call_as_task(client, "test.echo", {"text": "b"}))["task"]["taskId"]
        listed = await request(client, ListTasks(params=types.PaginatedRequestParams()))
    ids = [task["taskId"] for task in listed["tasks"]]
    assert ids.index(second) < ids.index(first)
    assert all(
        task["status"] in ("working", "completed", "failed", "cancelled")
        for task in listed["tasks"]
    )


async def test_another_callers_task_is_not_found(
    app: Application, mcp_url: str, token: str, channel: grpc.aio.Channel
) -> None:
    other_session = await login(channel, Ed25519PrivateKey.generate())
    other = mcp_token(app, other_session.access_token, mcp_url)
    async with http_client(mcp_url, token) as client:
        task_id = (await call_as_task(client, "test.echo", {"text": "mine"}))["task"]["taskId"]
    async with http_client(mcp_url, other) as client:
        with pytest.raises(MCPError) as missing:
            await get_task(client, task_id)
    assert missing.value.error.code == -32602 and "not found" in missing.value.error.message


async def test_an_unknown_task_is_invalid_params(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token) as client:
        with pytest.raises(MCPError) as missing:
            await get_task(client, "operations/no-such-operation")
        with pytest.raises(MCPError) as malformed:
            await get_task(client, "not-a-task")
    assert missing.value.error.code == -32602
    assert malformed.value.error.code == -32602


async def test_2026_07_28_a_long_call_becomes_a_task_polled_to_its_result(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token, mode=MODERN, extensions=[TasksClient()]) as client:
        with anyio.fail_after(DEADLINE):
            result = await client.call_tool("test.sleep", {"steps": 5, "delay_ms": 50})
    assert result.is_error is False and result.structured_content == {"steps": 5}
    assert result.meta is not None
    assert result.meta["io.modelcontextprotocol/related-task"]["taskId"].startswith("operations/")


async def test_2026_07_28_the_handle_is_read_cancelled_and_updated(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token, mode=MODERN, extensions=[TasksClient()]) as client:
        handle = await client.session.call_tool("test.sleep", SLOW, allow_claimed=True)
        assert isinstance(handle, TaskHandle) and handle.status == "working"
        assert handle.ttl_ms is not None and handle.poll_interval_ms is not None
        working = await get_task(client, handle.task_id)
        acknowledged = await request(
            client,
            UpdateTask(
                params=TaskParams.model_validate({"taskId": handle.task_id, "inputResponses": {}})
            ),
        )
        cancelled_ack = await cancel_task(client, handle.task_id)
        assert set(cancelled_ack) <= {"resultType", "_meta"}

        async def cancelled() -> bool:
            return str((await get_task(client, handle.task_id))["status"]) == "cancelled"

        await eventually(cancelled)
    assert working["status"] == "working" and working["resultType"] == "complete"
    assert acknowledged["resultType"] == "complete"
    assert cancelled_ack["resultType"] == "complete"


async def test_2026_07_28_a_quick_call_is_answered_as_usual(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN, extensions=[TasksClient()]) as client:
        result = await client.session.call_tool("test.echo", {"text": "now"}, allow_claimed=True)
    assert not isinstance(result, TaskHandle)


async def test_2026_07_28_no_task_for_a_client_that_did_not_declare_the_extension(
    mcp_url: str, token: str
) -> None:
    async with http_client(mcp_url, token, mode=MODERN) as client:
        with anyio.fail_after(DEADLINE):
            result = await client.call_tool("test.sleep", {"steps": 3, "delay_ms": 50})
    assert result.structured_content == {"steps": 3}


async def test_2026_07_28_has_no_tasks_result_or_list(mcp_url: str, token: str) -> None:
    async with http_client(mcp_url, token, mode=MODERN, extensions=[TasksClient()]) as client:
        with pytest.raises(MCPError) as no_list:
            await request(client, ListTasks(params=types.PaginatedRequestParams()))
    assert no_list.value.error.code == -32601
