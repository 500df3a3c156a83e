"""Routes: an instance's EXPOSE port reachable through the front door under a path prefix.

`RouteManager` is the domain behind the network.* tools: expose, unexpose and list, with the
ownership rules of the instance tools (another owner's instance is NOT_FOUND unless the caller
is an admin). The routes table is the one source every replica renders its Envoy's dynamic
configuration from (`network.xds`, `network.publisher`); a route whose instance was deleted
goes from Envoy at once and from the table at the next expose or sweep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from formation_mcp.clock import now_us
from formation_mcp.db.database import Database
from formation_mcp.db.schema import instances, routes
from formation_mcp.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from formation_mcp.events.manager import EventManager
from formation_mcp.events.model import NewEvent
from formation_mcp.network.route_events import exposed_event, unexposed_event
from formation_mcp.workloads.instances import (
    RESOURCE_PREFIX,
    InstanceRecord,
    InstanceState,
    InstanceStore,
    Resources,
)
from formation_mcp.workloads.packs import PackStore

PUBLIC: Final = "public"
TOKEN: Final = "token"
AUTH_MODES: Final = (PUBLIC, TOKEN)
DEFAULT_PATH: Final = "/apps/{name}/"
MAX_PATH_CHARS: Final = 200
MAX_ROUTES_PER_INSTANCE: Final = 16
MAX_LISTED: Final = 500
"""network.list answers at most this many routes (and says when there are more)."""
PATH_PATTERN: Final = r"^/([A-Za-z0-9._~-]+/){1,8}$"
_PATH: Final = re.compile(PATH_PATTERN)
RESERVED_SEGMENTS: Final = frozenset(
    {"v1", "mcp", "oauth", ".well-known", "healthz", "openapi.json", "console"}
)
"""First path segments the front door serves itself: no route may take them."""
_RESERVED_PREFIXES: Final = ("formation.", "grpc.")
"""gRPC paths (/formation.mcp.v1.ToolsService/..., /grpc.health.v1.Health/...)."""


@dataclass(frozen=True, slots=True)
class RouteRecord:
    path: str
    instance_id: str
    owner: str
    port: int
    auth: str
    create_time: int


@dataclass(frozen=True, slots=True)
class RouteView:
    """A route with the instance behind it (None once the instance was deleted)."""

    route: RouteRecord
    instance: InstanceRecord | None

    @property
    def state(self) -> str:
        return InstanceState.DELETED.value if self.instance is None else self.instance.state.value

    def to_output(self, base_url: str) -> dict[str, Any]:
        """The JSON the network tools return for a route (ROUTE_SCHEMA)."""
        route = self.route
        output: dict[str, Any] = {
            "path": route.path,
            "url": base_url.rstrip("/") + route.path,
            "instance_id": route.instance_id,
            "instance": RESOURCE_PREFIX + route.instance_id,
            "owner": route.owner,
            "port": route.port,
            "auth": route.auth,
            "state": self.state,
        }
        if self.instance is not None:
            output["instance_name"] = self.instance.name
            target = self.instance.ports.get(str(route.port))
            if target is not None and self.instance.state is InstanceState.RUNNING:
                output["target"] = f"127.0.0.1:{target}"
        return output


def check_path(path: str) -> str:
    """The path as stored, or INVALID_ARGUMENT saying what a path must look like."""
    field = "arguments.path"
    dots = any(segment in (".", "..") for segment in path.split("/"))
    if len(path) > MAX_PATH_CHARS or not _PATH.fullmatch(path) or dots:
        raise InvalidArgument.for_field(
            field,
            f"{path[:MAX_PATH_CHARS]!r} is not a route path: it starts and ends with / and has "
            "1 to 8 segments of letters, digits, . _ ~ - (not . or ..), e.g. /apps/web/",
            reason="ROUTE_PATH_INVALID",
        )
    first = path.split("/")[1]
    if first in RESERVED_SEGMENTS or first.startswith(_RESERVED_PREFIXES):
        raise InvalidArgument.for_field(
            field,
            f"/{first}/ belongs to the front door itself; pick another path (e.g. /apps/web/)",
            reason="ROUTE_PATH_RESERVED",
        )
    return path


def _record(row: sa.Row[Any]) -> RouteRecord:
    return RouteRecord(
        path=row.path,
        instance_id=row.instance_id,
        owner=row.owner,
        port=row.port,
        auth=row.auth,
        create_time=row.create_time,
    )


class RouteStore:
    """The routes table, and routes joined with their instances."""

    def __init__(self, database: Database, events: EventManager | None = None) -> None:
        """`events`: where the events of route changes are recorded (in their transaction)."""
        self._db = database
        self._events = events

    async def insert(self, route: RouteRecord, told: Sequence[NewEvent] = ()) -> bool:
        """False when the path is taken already; `told` is recorded with the route."""
        recorded = []
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    routes.insert().values(
                        path=route.path,
                        instance_id=route.instance_id,
                        owner=route.owner,
                        port=route.port,
                        auth=route.auth,
                        create_time=route.create_time,
                    )
                )
                if self._events is not None:
                    recorded = await self._events.record_in_transaction(conn, told)
        except IntegrityError:
            return False
        if self._events is not None:
            self._events.committed(recorded)
        return True

    async def get(self, path: str) -> RouteRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(routes).where(routes.c.path == path))).first()
        return None if row is None else _record(row)

    async def delete(self, paths: list[str], told: Sequence[NewEvent] = ()) -> int:
        """Remove the routes at `paths`; `told` is recorded in the same transaction."""
        if not paths:
            return 0
        recorded = []
        async with self._db.write() as conn:
            result = await conn.execute(routes.delete().where(routes.c.path.in_(paths)))
            if self._events is not None:
                recorded = await self._events.record_in_transaction(conn, told)
        if self._events is not None:
            self._events.committed(recorded)
        return int(result.rowcount)

    async def of_instance(self, instance_id: str) -> list[RouteRecord]:
        query = sa.select(routes).where(routes.c.instance_id == instance_id).order_by(routes.c.path)
        async with self._db.read() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def views(self, owner: str | None = None, limit: int | None = None) -> list[RouteView]:
        """Routes (an owner's, or all) with their instances, by path."""
        query = (
            sa.select(routes, instances)
            .select_from(
                routes.outerjoin(instances, instances.c.instance_id == routes.c.instance_id)
            )
            .order_by(routes.c.path)
        )
        if owner is not None:
            query = query.where(routes.c.owner == owner)
        if limit is not None:
            query = query.limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_view(row) for row in rows]

    async def sweep_deleted(self) -> int:
        """Forget the routes whose instance was deleted (or is gone)."""
        live = sa.select(instances.c.instance_id).where(
            instances.c.state != InstanceState.DELETED.value
        )
        async with self._db.write() as conn:
            result = await conn.execute(routes.delete().where(routes.c.instance_id.not_in(live)))
        return int(result.rowcount)


def _view(row: sa.Row[Any]) -> RouteView:
    mapping = row._mapping
    route = RouteRecord(
        path=mapping[routes.c.path],
        instance_id=mapping[routes.c.instance_id],
        owner=mapping[routes.c.owner],
        port=mapping[routes.c.port],
        auth=mapping[routes.c.auth],
        create_time=mapping[routes.c.create_time],
    )
    if mapping[instances.c.instance_id] is None:
        return RouteView(route, None)
    state = InstanceState(mapping[instances.c.state])
    if state is InstanceState.DELETED:
        return RouteView(route, None)
    instance = InstanceRecord(
        instance_id=route.instance_id,
        owner=mapping[instances.c.owner],
        name=mapping[instances.c.name],
        build_id=mapping[instances.c.build_id],
        node=mapping[instances.c.node],
        state=state,
        resources=Resources(**json.loads(mapping[instances.c.resources])),
        ports={k: int(v) for k, v in json.loads(mapping[instances.c.ports]).items()},
        status_message=mapping[instances.c.status_message],
        create_time=mapping[instances.c.create_time],
        update_time=mapping[instances.c.update_time],
    )
    return RouteView(route, instance)


class RouteManager:
    """expose / unexpose / list for a caller; `base_url` is the front door's public URL."""

    def __init__(
        self,
        database: Database,
        base_url: str,
        on_change: Callable[[], None] = lambda: None,
        events: EventManager | None = None,
    ) -> None:
        """`on_change` runs after a route was written or removed (this process's publisher
        renders at once instead of at its next poll); `events` records network.exposed and
        network.unexposed."""
        self._store = RouteStore(database, events)
        self._instances = InstanceStore(database)
        self._packs = PackStore(database)
        self.base_url = base_url
        self._on_change = on_change

    async def expose(
        self,
        owner: str,
        is_admin: bool,
        reference: str,
        *,
        port: int | None = None,
        path: str | None = None,
        auth: str = PUBLIC,
    ) -> RouteView:
        instance = await self._instances.find(reference, owner, any_owner=is_admin)
        port = await self._port(instance, port)
        path = check_path(path or DEFAULT_PATH.format(name=instance.name))
        route = RouteRecord(path, instance.instance_id, instance.owner, port, auth, now_us())
        held = await self._store.of_instance(instance.instance_id)
        if len(held) >= MAX_ROUTES_PER_INSTANCE and path not in {r.path for r in held}:
            raise ResourceExhausted(
                f"instance {instance.name} has {len(held)} routes, the most one may have; "
                "remove one first (network.unexpose)",
                reason="TOO_MANY_ROUTES",
                metadata={"instance": instance.resource_name},
            )
        url = self.base_url.rstrip("/") + path
        told = [exposed_event(instance, path, port, auth, url, route.create_time)]
        if not await self._store.insert(route, told):
            existing = await self._store.get(path)
            if existing is not None and not await self._instance_live(existing.instance_id):
                await self._store.delete([path])  # its instance was deleted: the path is free
                return await self.expose(
                    owner, is_admin, reference, port=port, path=path, auth=auth
                )
            if existing is not None and (existing.instance_id, existing.port, existing.auth) == (
                route.instance_id,
                route.port,
                route.auth,
            ):
                return RouteView(existing, instance)  # the same route again: nothing to do
            raise AlreadyExists(
                f"the path {path} is taken by another route; pick another path",
                reason="ROUTE_PATH_TAKEN",
                metadata={"path": path},
            )
        self._on_change()
        return RouteView(route, instance)

    async def unexpose(
        self, owner: str, is_admin: bool, reference: str, path: str | None = None
    ) -> list[RouteView]:
        """The instance's route at `path` (every route of the instance without one)."""
        instance = await self._instances.find(reference, owner, any_owner=is_admin)
        found = [
            r
            for r in await self._store.of_instance(instance.instance_id)
            if path is None or r.path == path
        ]
        if not found:
            where = f" at {path}" if path else ""
            raise NotFound(
                f"instance {instance.name} has no route{where}; network.list shows the routes",
                reason="ROUTE_NOT_FOUND",
                metadata={"instance": instance.resource_name, "path": path or ""},
            )
        now = now_us()
        told = [unexposed_event(instance, r.path, r.port, r.create_time, now) for r in found]
        await self._store.delete([r.path for r in found], told)
        self._on_change()
        return [RouteView(r, instance) for r in found]

    async def routes(self, owner: str | None) -> tuple[list[RouteView], bool]:
        """An owner's routes (every owner's with None) whose instance lives, by path; and
        whether there were more than MAX_LISTED."""
        views = await self._store.views(owner, MAX_LISTED + 1)
        live = [v for v in views if v.instance is not None]
        return live[:MAX_LISTED], len(views) > MAX_LISTED

    async def _instance_live(self, instance_id: str) -> bool:
        instance = await self._instances.get(instance_id)
        return instance is not None and instance.state is not InstanceState.DELETED

    async def _port(self, instance: InstanceRecord, port: int | None) -> int:
        exposed = await self._exposed_ports(instance)
        if not exposed:
            raise InvalidArgument.for_field(
                "arguments.id",
                f"instance {instance.name} exposes no ports (its Formfile has no EXPOSE)",
                reason="NO_EXPOSED_PORTS",
            )
        if port is None:
            return exposed[0]
        if port not in exposed:
            listed = ", ".join(str(p) for p in exposed)
            raise InvalidArgument.for_field(
                "arguments.port",
                f"instance {instance.name} does not expose port {port}; its EXPOSE ports: {listed}",
                reason="PORT_NOT_EXPOSED",
            )
        return port

    async def _exposed_ports(self, instance: InstanceRecord) -> list[int]:
        """The Formfile's EXPOSE ports in its order (the instance's own ports if its pack is
        not readable)."""
        ports = sorted(int(p) for p in instance.ports)
        pack = await self._packs.find(instance.build_id, instance.owner)
        if pack is not None:
            declared = json.loads(pack.formfile).get("expose") or []
            ordered = [int(p) for p in declared if int(p) in ports]
            return ordered + [p for p in ports if p not in ordered]
        return ports
