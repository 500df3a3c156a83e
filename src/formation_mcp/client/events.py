"""`client.events`: list the events of your resources, and watch them live (a watch that
breaks is resumed after the last event it delivered: nothing missed, nothing twice)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import grpc
from formation.mcp.v1 import events_pb2, events_pb2_grpc

from formation_mcp.client.auth import bearer
from formation_mcp.client.errors import Unauthenticated, Unavailable, error_from_rpc
from formation_mcp.client.models import Event

if TYPE_CHECKING:
    from formation_mcp.client.client import Client


class EventsAPI:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _stub(self) -> events_pb2_grpc.EventsServiceAsyncStub:
        return events_pb2_grpc.EventsServiceStub(self._client.channel)

    async def list(
        self,
        filter: str = "",
        *,
        page_size: int = 0,
        limit: int | None = None,
        all_users: bool = False,
    ) -> AsyncIterator[Event]:
        """Newest first, fetching pages as you iterate (stops after `limit`). `filter`:
        `type = "instance.*" AND severity = ERROR`, `resource = "instances/ID"`,
        `time >= "2026-12-04T10:00:00Z"`."""
        page_token = ""
        seen = 0
        while True:
            page: events_pb2.ListEventsResponse = await self._client.unary(
                self._stub().ListEvents,
                events_pb2.ListEventsRequest(
                    filter=filter, page_size=page_size, page_token=page_token, all_users=all_users
                ),
                idempotent=True,
            )
            for message in page.events:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield Event.from_proto(message)
            page_token = page.next_page_token
            if not page_token:
                return

    async def watch(
        self, filter: str = "", *, after: str = "", all_users: bool = False
    ) -> AsyncGenerator[Event, None]:
        """The events recorded after `after` (an event's name; empty: from now on), then
        each new one as it is recorded, until you stop iterating."""
        client = self._client
        tokens = client.token_source
        last = after
        attempt = 0
        renewed = False
        while True:
            try:
                token = await tokens.token(client.channel)
            except Unavailable as unavailable:
                attempt += 1
                if attempt >= client.retry.max_attempts:
                    raise
                await asyncio.sleep(client.retry.delay(attempt, unavailable.retry_after_seconds))
                continue
            call = self._stub().WatchEvents(
                events_pb2.WatchEventsRequest(filter=filter, after=last, all_users=all_users),
                metadata=bearer(token),
            )
            try:
                async for message in call:
                    attempt = 0
                    last = message.name
                    yield Event.from_proto(message)
                return
            except grpc.aio.AioRpcError as rpc_error:
                error = error_from_rpc(rpc_error)
            finally:
                call.cancel()
            if isinstance(error, Unauthenticated) and not renewed and tokens.can_renew:
                renewed = True
                await tokens.invalidate(client.channel, token)
                continue
            attempt += 1
            if isinstance(error, Unavailable) and attempt < client.retry.max_attempts:
                await asyncio.sleep(client.retry.delay(attempt, error.retry_after_seconds))
                continue
            raise error
