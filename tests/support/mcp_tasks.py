"""MCP tasks from the SDK's client: the task methods as requests (with `Mcp-Name`, as the
tasks extension asks), a 2026-07-28 client extension that claims `resultType: "task"`, and
2025-11-25's task-augmented `tools/call`.

The SDK's client types the task methods (2025-11-25) but sends none of them itself, and checks
a 2025-11-25 `tools/call` result as a `CallToolResult`, which a `CreateTaskResult` is not: a
task-augmented call therefore goes through the session's dispatcher as a raw request."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import anyio
import mcp_types as types
from mcp.client import Client
from mcp.client.extension import ClaimContext, ClientExtension, NotificationBinding, ResultClaim
from tests.support.waiting import DEADLINE

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class TaskParams(types.RequestParams):
    task_id: str


class _TaskRequest(types.Request[TaskParams, str]):
    name_param: ClassVar[str | None] = "taskId"


class GetTask(_TaskRequest):
    method: str = "tasks/get"


class CancelTask(_TaskRequest):
    method: str = "tasks/cancel"


class TaskResult(_TaskRequest):
    method: str = "tasks/result"


class UpdateTask(_TaskRequest):
    method: str = "tasks/update"


class ListTasks(types.Request[types.PaginatedRequestParams, str]):
    method: str = "tasks/list"


class Raw(types.Result):
    """Any result, every field kept (the task shapes differ by revision)."""

    model_config = types.Result.model_config | {"extra": "allow"}

    def fields(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json", exclude_none=True)


async def request(client: Client, message: types.Request[Any, Any]) -> dict[str, Any]:
    return (await client.session.send_request(message, Raw)).fields()


async def get_task(client: Client, task_id: str) -> dict[str, Any]:
    return await request(client, GetTask(params=TaskParams(task_id=task_id)))


async def cancel_task(client: Client, task_id: str) -> dict[str, Any]:
    return await request(client, CancelTask(params=TaskParams(task_id=task_id)))


async def call_as_task(
    client: Client, name: str, arguments: dict[str, Any], ttl_ms: int = 60_000
) -> dict[str, Any]:
    """2025-11-25: `tools/call` with `params.task`; the raw `CreateTaskResult`."""
    dispatcher = client.session._dispatcher
    params = {"name": name, "arguments": arguments, "task": {"ttl": ttl_ms}}
    return await dispatcher.send_raw_request("tools/call", params, {})


class TaskHandle(types.Result):
    """2026-07-28 `CreateTaskResult`."""

    model_config = types.Result.model_config | {"extra": "allow"}
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None


async def _poll_to_end(handle: TaskHandle, ctx: ClaimContext) -> types.CallToolResult:
    with anyio.fail_after(DEADLINE):
        while True:
            task = await ctx.session.send_request(
                GetTask(params=TaskParams(task_id=handle.task_id)), Raw
            )
            fields = task.fields()
            if fields["status"] in TERMINAL:
                assert fields["status"] == "completed", fields
                return types.CallToolResult.model_validate(fields["result"])
            await anyio.sleep((handle.poll_interval_ms or 1000) / 1000 / 20)


class TaskStatus(types.NotificationParams):
    model_config = types.NotificationParams.model_config | {"extra": "allow"}
    task_id: str
    status: str


class TasksClient(ClientExtension):
    """Declares the extension; `client.call_tool` then polls a task to its result.
    `notifications/tasks` (2026-07-28) and `notifications/tasks/status` (2025-11-25) received
    are kept in `statuses`."""

    identifier = TASKS_EXTENSION

    def __init__(self) -> None:
        self.statuses: list[TaskStatus] = []
        self.terminal = anyio.Event()

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=TaskHandle, resolve=_poll_to_end),)

    def notifications(self) -> Sequence[NotificationBinding[Any]]:
        return tuple(
            NotificationBinding(method=method, params_type=TaskStatus, handler=self._status)
            for method in ("notifications/tasks", "notifications/tasks/status")
        )

    async def _status(self, params: TaskStatus) -> None:
        self.statuses.append(params)
        if params.status in TERMINAL:
            self.terminal.set()
