"""2026-07-28 `subscriptions/listen`: change notifications for what can be watched through our
API, on the listen request's own stream (so any replica serves it: the watch is the API's).

- `resourceSubscriptions`: `formation://operations/{id}` URIs get
  `notifications/resources/updated` at every change of the operation;
  `formation://instances/{id}` and `.../logs` at every event of the instance or when its
  output grew (instance_watches.py; an instance the caller does not have is left out).
- `taskIds` (the tasks extension; the request must declare it, else -32003): each change of
  the task sends `notifications/tasks` with the task as `tasks/get` would return it.

Other URIs and the list-changed kinds (our lists do not change while a client is connected)
are left out of the acknowledgement, as the spec lets a server honor a subset. At most
MAX_WATCHED operations and instances per stream; the stream ends (with its result) once every
watched operation is done and every watched instance deleted.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import anyio
import grpc
import mcp_types as types
from formation.mcp.v1 import operations_pb2
from google.longrunning import operations_pb2 as lro_pb2
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import SUBSCRIPTION_ID_META_KEY

from formation_mcp.mcp_server import instance_watches
from formation_mcp.mcp_server.backend import Api, Context, Metadata
from formation_mcp.mcp_server.instance_watches import InstanceTarget
from formation_mcp.mcp_server.tasks import TASKS_EXTENSION, detailed_task, is_task_id

MAX_WATCHED: Final = 32
_OPERATION_URI = re.compile(r"^formation://(operations/[A-Za-z0-9_-]{1,128})$")


class TaskStatusParams(types.NotificationParams):
    model_config = types.NotificationParams.model_config | {"extra": "allow"}


class TaskStatusNotification(types.Notification[TaskStatusParams, Literal["notifications/tasks"]]):
    method: Literal["notifications/tasks"] = "notifications/tasks"
    params: TaskStatusParams


class Listen:
    def __init__(self, api: Api, retention_seconds: float) -> None:
        self._api = api
        self._retention = retention_seconds

    async def __call__(
        self, ctx: Context, params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        subscription_id = ctx.request_id
        if subscription_id is None:
            raise MCPError(types.INVALID_REQUEST, "subscriptions/listen requires a request id")
        requested = params.notifications
        asked = list(dict.fromkeys(requested.resource_subscriptions or ()))
        uris = [uri for uri in asked if _OPERATION_URI.fullmatch(uri)]
        task_ids = _task_ids(ctx, requested)
        names = [uri.removeprefix("formation://") for uri in uris]
        watched = list(dict.fromkeys([*names, *task_ids]))
        instance_uris = [uri for uri in asked if instance_watches.is_instance_uri(uri)]
        if len(watched) + len(instance_uris) > MAX_WATCHED:
            raise MCPError(
                types.INVALID_PARAMS,
                f"at most {MAX_WATCHED} operations, instances and tasks per stream",
            )
        instances = await self._instances(ctx, instance_uris)
        honored: dict[str, Any] = {}
        if uris or instances:
            honored["resourceSubscriptions"] = [*uris, *(target.uri for target in instances)]
        if task_ids:
            honored["taskIds"] = task_ids
        meta: dict[str, Any] = {SUBSCRIPTION_ID_META_KEY: subscription_id}
        await ctx.session.send_notification(
            types.SubscriptionsAcknowledgedNotification(
                params=types.SubscriptionsAcknowledgedNotificationParams(
                    notifications=types.SubscriptionFilter.model_validate(honored), _meta=meta
                )
            ),
            related_request_id=subscription_id,
        )
        metadata = await self._api.metadata(ctx)
        async with anyio.create_task_group() as group:
            for name in watched:
                group.start_soon(
                    self._watch,
                    ctx,
                    name,
                    metadata,
                    f"formation://{name}" in uris,
                    name in task_ids,
                    meta,
                )
            for target in instances:
                group.start_soon(self._watch_instance, ctx, target, metadata, meta)
        return types.SubscriptionsListenResult(_meta=meta)

    async def _instances(self, ctx: Context, uris: list[str]) -> list[InstanceTarget]:
        """The instances of these URIs the caller has (the others are not honored)."""
        found: list[InstanceTarget] = []
        for uri in uris:
            try:
                found.append(await instance_watches.resolve(self._api, ctx, uri))
            except MCPError:
                continue
        return found

    async def _watch_instance(
        self, ctx: Context, target: InstanceTarget, metadata: Metadata, meta: dict[str, Any]
    ) -> None:
        async for _ in instance_watches.changes(self._api, metadata, target):
            await ctx.session.send_notification(
                types.ResourceUpdatedNotification(
                    params=types.ResourceUpdatedNotificationParams(uri=target.uri, _meta=meta)
                ),
                related_request_id=ctx.request_id,
            )

    async def _watch(
        self,
        ctx: Context,
        name: str,
        metadata: Metadata,
        resource: bool,
        task: bool,
        meta: dict[str, Any],
    ) -> None:
        """Every change of one operation, until it is done (a deleted or unknown one: none)."""
        watch = self._api.operations().WatchOperation(
            operations_pb2.WatchOperationRequest(name=name), metadata=metadata
        )
        try:
            async for change in watch:
                await self._notify(ctx, change, resource, task, meta)
                if change.done:
                    return
        except grpc.aio.AioRpcError:
            return  # not found, not the caller's, or expired: nothing (more) to send
        finally:
            watch.cancel()

    async def _notify(
        self,
        ctx: Context,
        change: lro_pb2.Operation,
        resource: bool,
        task: bool,
        meta: dict[str, Any],
    ) -> None:
        if resource:
            await ctx.session.send_notification(
                types.ResourceUpdatedNotification(
                    params=types.ResourceUpdatedNotificationParams(
                        uri=f"formation://{change.name}", _meta=meta
                    )
                ),
                related_request_id=ctx.request_id,
            )
        if task:
            fields = {**detailed_task(change, self._retention), "_meta": meta}
            notification = TaskStatusNotification(params=TaskStatusParams.model_validate(fields))
            await ctx.session.send_notification(
                notification,  # type: ignore[arg-type]  # an extension's notification
                related_request_id=ctx.request_id,
            )


def _task_ids(ctx: Context, requested: types.SubscriptionFilter) -> list[str]:
    extra = requested.model_extra or {}
    raw = extra.get("taskIds") or extra.get("task_ids")
    if not raw:
        return []
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities is not None else None
    if not extensions or TASKS_EXTENSION not in extensions:
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            "Missing required client capability",
            {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
        )
    if not isinstance(raw, list) or not all(isinstance(t, str) and is_task_id(t) for t in raw):
        raise MCPError(types.INVALID_PARAMS, "taskIds must be task ids (operations/{id})")
    return list(dict.fromkeys(raw))
