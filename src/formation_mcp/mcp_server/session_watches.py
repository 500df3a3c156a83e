"""2025-11-25 change notifications on a session's standing stream (the GET stream over HTTP,
stdout over stdio), each driven by the API's watch of one operation:

- `resources/subscribe` to `formation://operations/{id}`: `notifications/resources/updated` at
  every change, until the operation is done or `resources/unsubscribe`.
- `resources/subscribe` to `formation://instances/{id}` or `.../logs`: the same at every event
  of the instance, or when its output grew (instance_watches.py), until it is deleted.
- a task this session created (`tools/call` with `params.task`): `notifications/tasks/status`
  with the task at every change, until it is done.

A watch is a background task of this process with the credentials of the request that
started it; it ends with the operation, with `resources/unsubscribe`, or when its stream or
token does. At most MAX_PER_SESSION per session and MAX_WATCHES in all (further subscriptions
are refused with -32603, as the SDK refuses a full subscription table).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Literal

import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from mcp.shared.exceptions import MCPError
from starlette.requests import HTTPConnection

from formation_mcp.mcp_server import instance_watches
from formation_mcp.mcp_server.backend import Api, Context, Metadata
from formation_mcp.mcp_server.tasks import task_of

log = logging.getLogger(__name__)

MAX_PER_SESSION: Final = 32
MAX_WATCHES: Final = 10_000
SESSION_HEADER: Final = "mcp-session-id"
_OPERATION_URI = re.compile(r"^formation://(operations/[A-Za-z0-9_-]{1,128})$")

Send = Callable[[lro_pb2.Operation], Awaitable[None]]
Run = Callable[[Metadata], Coroutine[Any, Any, None]]


class TaskStatusParams(types.NotificationParams):
    model_config = types.NotificationParams.model_config | {"extra": "allow"}


class TaskStatusNotification(
    types.Notification[TaskStatusParams, Literal["notifications/tasks/status"]]
):
    method: Literal["notifications/tasks/status"] = "notifications/tasks/status"
    params: TaskStatusParams


def session_key(ctx: Context) -> str:
    request = ctx.request
    if isinstance(request, HTTPConnection):
        return request.headers.get(SESSION_HEADER, "")
    return ""


class SessionWatches:
    def __init__(self, api: Api, retention_seconds: float) -> None:
        self._api = api
        self._retention = retention_seconds
        self._watches: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def subscribe(
        self, ctx: Context, params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        uri = str(params.uri)
        session = ctx.session
        if match := _OPERATION_URI.fullmatch(uri):
            name = match[1]

            async def updated(_change: lro_pb2.Operation) -> None:
                await session.send_resource_updated(uri)

            await self._start(ctx, ("resource", uri), lambda md: self._watch(name, md, updated))
        elif instance_watches.is_instance_uri(uri):
            target = await instance_watches.resolve(self._api, ctx, uri)

            async def follow(metadata: Metadata) -> None:
                async for _ in instance_watches.changes(self._api, metadata, target):
                    await session.send_resource_updated(uri)

            await self._start(ctx, ("resource", uri), lambda md: _guarded(follow(md), uri))
        else:
            raise MCPError(
                types.INVALID_PARAMS,
                "only formation://operations/{id}, formation://instances/{id} and "
                f"formation://instances/{{id}}/logs can be subscribed to, not {uri}",
            )
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: Context, params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        task = self._watches.pop((session_key(ctx), f"resource {params.uri}"), None)
        if task is not None:
            task.cancel()
        return types.EmptyResult()

    async def follow_task(self, ctx: Context, name: str) -> None:
        """Send `notifications/tasks/status` for a task this session just created."""
        session = ctx.session
        retention = self._retention

        async def status(change: lro_pb2.Operation) -> None:
            fields = task_of(change, retention, modern=False)
            notification = TaskStatusNotification(params=TaskStatusParams.model_validate(fields))
            await session.send_notification(notification)  # type: ignore[arg-type]

        try:
            await self._start(ctx, ("task", name), lambda md: self._watch(name, md, status))
        except MCPError as error:  # the notifications are optional; tasks/get still answers
            log.info("no status notifications for %s: %s", name, error.error.message)

    async def _start(self, ctx: Context, what: tuple[str, str], run: Run) -> None:
        session = session_key(ctx)
        key = (session, f"{what[0]} {what[1]}")
        if key in self._watches:
            return
        mine = sum(1 for watched in self._watches if watched[0] == session)
        if mine >= MAX_PER_SESSION or len(self._watches) >= MAX_WATCHES:
            raise MCPError(types.INTERNAL_ERROR, "too many subscriptions; unsubscribe first")
        metadata = await self._api.metadata(ctx)
        task = asyncio.get_running_loop().create_task(run(metadata))
        self._watches[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[str, str], done: asyncio.Task[None]) -> None:
        if self._watches.get(key) is done:
            del self._watches[key]

    async def _watch(self, name: str, metadata: Metadata, send: Send) -> None:
        watch = self._api.operations().WatchOperation(
            operations_pb2.WatchOperationRequest(name=name), metadata=metadata
        )
        try:
            async for change in watch:
                await send(change)
                if change.done:
                    return
        except grpc.aio.AioRpcError as error:
            log.info("stopped following %s: %s", name, error.code().name)
        except Exception as error:  # the session's stream closed: nobody to tell
            log.info("stopped following %s: %s", name, error)
        finally:
            watch.cancel()

    async def close(self) -> None:
        tasks: list[asyncio.Task[Any]] = list(self._watches.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _guarded(watch: Awaitable[None], uri: str) -> None:
    try:
        await watch
    except Exception as error:  # the session's stream closed: nobody to tell
        log.info("stopped following %s: %s", uri, error)
