"""What changes an instance resource, for subscriptions in both revisions (`resources/subscribe`
at 2025-11-25, `subscriptions/listen` at 2026-07-28):

- `formation://instances/{id}`: every event recorded about the instance (`instance.*` from
  the node that runs it: created, running, exited, failed, restarted, stopped, deleted, lost;
  `network.exposed` / `unexposed`), from the API's event watch (WatchEvents with the filter
  `resource = "instances/{id}"`, the caller's credentials). Ends with `instance.deleted`.
- `formation://instances/{id}/logs`: events carry no output lines, so new output is noticed
  by asking `vm.logs` where the output ends (one small call: the last line, at most 1 KiB)
  every LOG_POLL_SECONDS; when that position moved, one notification, however much was
  written since (the client reads the resource for the lines). Ends when the instance is gone.

An instance named by its name is resolved to its id once, when the subscription starts
(`vm.status`); that read also makes another caller's instance "not found", as reading it is.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import grpc
from formation.mcp.v1 import events_pb2
from google.rpc import code_pb2
from mcp.shared.exceptions import MCPError

from formation_mcp.mcp_server.backend import Api, Context, Metadata, ToolError
from formation_mcp.mcp_server.resources import RESOURCE_NOT_FOUND

log = logging.getLogger(__name__)

INSTANCE_URI: Final = re.compile(r"^formation://instances/([A-Za-z0-9_.-]{1,255})(/logs)?$")
LOG_POLL_SECONDS: Final = 2.0
INSTANCE_DELETED: Final = "instance.deleted"
_LOG_END = {"tail": 1, "max_bytes": 1024}


@dataclass(frozen=True)
class InstanceTarget:
    """A subscribed instance URI, its instance's id resolved."""

    uri: str
    instance_id: str
    logs: bool


def is_instance_uri(uri: str) -> bool:
    return INSTANCE_URI.fullmatch(uri) is not None


async def resolve(api: Api, ctx: Context, uri: str) -> InstanceTarget:
    """The instance behind an instance URI; -32002 (resource not found) when the caller has
    no such instance."""
    match = INSTANCE_URI.fullmatch(uri)
    if match is None:
        raise MCPError(RESOURCE_NOT_FOUND, f"Resource not found: {uri}", {"uri": uri})
    try:
        status = await api.call(ctx, "vm.status", {"id": match[1]})
    except (grpc.aio.AioRpcError, ToolError) as error:
        raise MCPError(
            RESOURCE_NOT_FOUND, f"Resource not found: {uri} ({error})", {"uri": uri}
        ) from None
    return InstanceTarget(uri, str(status["instance_id"]), logs=match[2] is not None)


async def changes(api: Api, metadata: Metadata, target: InstanceTarget) -> AsyncIterator[None]:
    """One item per change of the target, until the instance is gone (or the caller's
    credentials stop working)."""
    source = _log_moves if target.logs else _events
    async for _ in source(api, metadata, target.instance_id):
        yield None


async def _events(api: Api, metadata: Metadata, instance_id: str) -> AsyncIterator[None]:
    request = events_pb2.WatchEventsRequest(filter=f'resource = "instances/{instance_id}"')
    watch = api.events().WatchEvents(request, metadata=metadata)
    try:
        async for event in watch:
            yield None
            if event.type == INSTANCE_DELETED:
                return
    except grpc.aio.AioRpcError as error:
        log.info("stopped watching instances/%s: %s", instance_id, error.code().name)
    finally:
        watch.cancel()


async def _log_moves(api: Api, metadata: Metadata, instance_id: str) -> AsyncIterator[None]:
    last = await _log_end(api, metadata, instance_id)
    while last is not None:
        await asyncio.sleep(LOG_POLL_SECONDS)  # the poll's period: output has no feed
        now = await _log_end(api, metadata, instance_id)
        if now is not None and now != last:
            yield None
        last = now


async def _log_end(api: Api, metadata: Metadata, instance_id: str) -> str | None:
    """Where the instance's output ends (a vm.logs cursor); None once it is gone."""
    try:
        answer = await api.call_as(metadata, "vm.logs", {"id": instance_id, **_LOG_END})
    except grpc.aio.AioRpcError as error:
        log.info("stopped watching the output of instances/%s: %s", instance_id, error.code())
        return None
    except ToolError as error:
        if error.code != code_pb2.NOT_FOUND:
            log.info("stopped watching the output of instances/%s: %s", instance_id, error)
        return None
    return str(answer["next_cursor"])
