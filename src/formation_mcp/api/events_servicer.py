"""EventsService: thin over `EventManager`; requests in, messages out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from formation.mcp.v1 import events_pb2, events_pb2_grpc

from formation_mcp.api.wrapping import Context
from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import to_proto
from formation_mcp.identity import current_caller
from formation_mcp.metrics import Metrics


class EventsServicer(events_pb2_grpc.EventsServiceServicer):
    def __init__(self, events: EventManager, metrics: Metrics) -> None:
        self._events = events
        self._metrics = metrics

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: Context
    ) -> events_pb2.ListEventsResponse:
        found, next_token = await self._events.list(
            current_caller(),
            request.filter,
            request.page_size,
            request.page_token,
            all_users=request.all_users,
        )
        return events_pb2.ListEventsResponse(
            events=[to_proto(record) for record in found], next_page_token=next_token
        )

    async def WatchEvents(
        self, request: events_pb2.WatchEventsRequest, context: Context
    ) -> AsyncIterator[events_pb2.Event]:
        self._metrics.watchers.inc()
        try:
            async for record in self._events.watch(
                current_caller(), request.filter, request.after, all_users=request.all_users
            ):
                yield to_proto(record)
        finally:
            self._metrics.watchers.dec()
